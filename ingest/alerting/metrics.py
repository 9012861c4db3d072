"""Prometheus metrics of the alert engine (its own registry, so it can share a process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info


@dataclass
class AlertMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages = Counter(
            "qorgau_alerts_messages_total", "readings and status messages received", registry=r
        )
        self.skipped = Counter(
            "qorgau_alerts_skipped_messages_total",
            "messages not fed to detectors, by reason (duplicate, old, refused, unknown_device, "
            "not_owned: another engine's enterprise)",
            ["reason"],
            registry=r,
        )
        self.samples = Counter(
            "qorgau_alerts_samples_total", "samples fed to the detectors", registry=r
        )
        self.transitions = Counter(
            "qorgau_alerts_transitions_total",
            "alert transitions, by kind and transition",
            ["kind", "transition"],
            registry=r,
        )
        self.evaluate_seconds = Histogram(
            "qorgau_alerts_evaluate_seconds",
            "time of one detector evaluation",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            registry=r,
        )
        self.batch_messages = Histogram(
            "qorgau_alerts_batch_messages",
            "messages per detector evaluation",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 1000),
            registry=r,
        )
        self.decide_seconds = Histogram(
            "qorgau_alerts_receive_to_publish_seconds",
            "from receiving a message to publishing the alert it raised",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=r,
        )
        self.publish_failures = Counter(
            "qorgau_alerts_publish_failures_total", "alert publications that failed", registry=r
        )
        self.store_backlog = Gauge(
            "qorgau_alerts_store_backlog",
            "transitions waiting to be written to the database",
            registry=r,
        )
        self.store_dropped = Counter(
            "qorgau_alerts_store_dropped_total",
            "transitions dropped because the database was away too long",
            registry=r,
        )
        self.db_retries = Counter(
            "qorgau_alerts_db_retries_total", "failed database writes that were retried", registry=r
        )
        self.webhooks = Counter(
            "qorgau_alerts_webhook_deliveries_total",
            "webhook deliveries, by outcome (delivered, retried, failed)",
            ["outcome"],
            registry=r,
        )
        self.notifications = Counter(
            "qorgau_alerts_notification_attempts_total",
            "notification delivery attempts, by channel and result (sent, retry, failed)",
            ["channel", "result"],
            registry=r,
        )
        self.escalation_late = Histogram(
            "qorgau_alerts_escalation_late_seconds",
            "escalation and reminder notifications: sent this long after their deadline",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.ready = Gauge(
            "qorgau_alerts_ready",
            "1 while the engine is subscribed to the broker and detecting",
            registry=r,
        )
        self.open_alerts = Gauge(
            "qorgau_alerts_open", "alerts currently open or acknowledged", registry=r
        )
        self.partition = Info(
            "qorgau_alerts_partition",
            "the enterprises this engine owns (QORGAU_ALERTS_ENTERPRISES; '*': all)",
            registry=r,
        )
        self.unowned_enterprises = Gauge(
            "qorgau_alerts_unowned_enterprises",
            "enterprises of the registry that no live engine owns: they get no alerts",
            registry=r,
        )
        self.ownership_conflicts = Gauge(
            "qorgau_alerts_ownership_conflicts",
            "other live engines whose enterprises overlap this engine's (alerts raised twice)",
            registry=r,
        )
        self.mqtt_reconnects = Counter(
            "qorgau_alerts_mqtt_reconnects_total", "broker connections lost and retried", registry=r
        )
