"""Prometheus metrics of one ingest worker (its own registry, so several can share a process).

Rates are for PromQL: readings/s is ``rate(qorgau_ingest_readings_total[1m])``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class IngestMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages = Counter(
            "qorgau_ingest_messages_total", "MQTT messages received", registry=r
        )
        self.messages_committed = Counter(
            "qorgau_ingest_messages_committed_total",
            "messages committed and acknowledged (fresh, duplicate or quarantined)",
            registry=r,
        )
        self.readings = Counter(
            "qorgau_ingest_readings_total", "readings committed to the database", registry=r
        )
        self.duplicates = Counter(
            "qorgau_ingest_duplicate_messages_total",
            "redelivered messages skipped because (device, seq) was already stored",
            registry=r,
        )
        self.quarantined = Counter(
            "qorgau_ingest_quarantined_total",
            "messages, channels or samples quarantined, by reason",
            ["reason"],
            registry=r,
        )
        self.processing_failures = Counter(
            "qorgau_ingest_processing_failures_total",
            "attempts to process a message that failed for a reason other than its content or an "
            "outage, by stage (validate: registry and checks; write: the commit)",
            ["stage"],
            registry=r,
        )
        self.dead_letters = Counter(
            "qorgau_ingest_dead_letters_total",
            "messages given up on after QORGAU_INGEST_MAX_ATTEMPTS failures, written to the "
            "dead_letters table and acknowledged, by stage",
            ["stage"],
            registry=r,
        )
        self.batch_readings = Histogram(
            "qorgau_ingest_batch_readings",
            "readings per committed batch",
            buckets=(10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "qorgau_ingest_commit_seconds",
            "time to write and commit one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.ingest_latency = Histogram(
            "qorgau_ingest_latency_seconds",
            "from a message's arrival at the worker to its commit (batching delay + queue + write)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.queue_depth = Gauge(
            "qorgau_ingest_queue_messages", "messages waiting for the writer", registry=r
        )
        self.unacked = Gauge(
            "qorgau_ingest_unacknowledged_messages",
            "messages received but not yet acknowledged to the broker",
            registry=r,
        )
        self.broker_lag = Gauge(
            "qorgau_ingest_broker_lag_seconds",
            "receive time minus the device's sent_at of the latest message",
            registry=r,
        )
        self.last_commit = Gauge(
            "qorgau_ingest_last_commit_timestamp_seconds",
            "wall-clock time of the latest successful commit",
            registry=r,
        )
        self.broker_connected = Gauge(
            "qorgau_ingest_broker_connected", "1 while subscribed to the broker", registry=r
        )
        self.database_ok = Gauge(
            "qorgau_ingest_database_ok",
            "1 unless the latest database write failed (and is being retried)",
            registry=r,
        )
        self.db_retries = Counter(
            "qorgau_ingest_db_retries_total", "failed database writes that were retried", registry=r
        )
        self.mqtt_reconnects = Counter(
            "qorgau_ingest_mqtt_reconnects_total", "broker connections lost and retried", registry=r
        )
        self.listener_errors = Counter(
            "qorgau_ingest_listener_errors_total",
            "committed batches a listener raised on or timed out with",
            ["listener"],
            registry=r,
        )
        self.listener_dropped = Counter(
            "qorgau_ingest_listener_dropped_batches_total",
            "committed batches not given to a listener because its queue was full",
            ["listener"],
            registry=r,
        )
        self.maintenance_runs = Counter(
            "qorgau_ingest_maintenance_runs_total",
            "maintenance job runs by outcome: done, skipped (another worker held the lock), failed",
            ["outcome"],
            registry=r,
        )
        self.maintenance_removed = Counter(
            "qorgau_ingest_maintenance_removed_total",
            "what the maintenance job removed: day partitions, or rows of a table",
            ["what"],
            registry=r,
        )
        self.db_jobs_failing = Gauge(
            "qorgau_db_background_jobs_failing",
            "TimescaleDB background jobs of the schema whose latest run failed (refresh, "
            "compression, retention), as the maintenance job last read them; 0 on plain PostgreSQL",
            registry=r,
        )
        self.database_ok.set(1)
