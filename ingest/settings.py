"""Settings of ``qorgau ingest`` (environment variables ``QORGAU_*``), and the broker settings
it shares with ``qorgau alerts`` (``ingest/alerting/settings.py``)."""

from __future__ import annotations

import socket
from dataclasses import replace
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from store.policies import MaintenancePolicy, StoragePolicies
from store.settings import SampleWindowSettings


class BrokerSettings(BaseSettings):
    """Where the services that read the devices' messages find the broker: ingest workers and
    the alert engine read the same variables, so one setting moves both."""

    model_config = SettingsConfigDict(env_prefix="QORGAU_", extra="ignore")

    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="broker URL")
    broker: Literal["mosquitto", "rabbitmq"] = Field(
        default="mosquitto",
        description="where readings are read (and the alert engine publishes alerts): mosquitto "
        "(MQTT 5 on QORGAU_MQTT_URL) or rabbitmq (over AMQP from QORGAU_AMQP_URL, each service "
        "from a quorum queue of its own bound to amq.topic: ingest's named after "
        "QORGAU_INGEST_SHARE_GROUP, the alert engine's after QORGAU_ALERTS_CLIENT_ID); see "
        "docs/operations.md and docs/alerts.md",
    )
    amqp_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        description="with QORGAU_BROKER=rabbitmq: the cluster's AMQP URLs, comma-separated; the "
        "service moves to the next when its node goes away",
    )
    amqp_quorum_replicas: int = Field(
        default=3,
        ge=1,
        le=9,
        description="replicas of the service's quorum queue when qorgau declares it",
    )
    topic_prefix: str = Field(default="qorgau", description="first topic segment(s)")


# BrokerSettings first among the bases: pydantic orders inherited fields by the reversed MRO, so
# --help lists the broker's after the database's and before this class's own.
class IngestSettings(BrokerSettings, SampleWindowSettings):
    model_config = SettingsConfigDict(env_prefix="QORGAU_", extra="ignore")

    ingest_share_group: str = Field(
        default="qorgau-ingest", description="MQTT 5 shared-subscription group of the workers"
    )
    ingest_client_id: str = Field(
        default_factory=lambda: f"qorgau-ingest-{socket.gethostname()}",
        description="MQTT client id; stable across restarts so the persistent session returns "
        "(give each worker its own)",
    )
    ingest_session_expiry_s: int = Field(
        default=7 * 24 * 3600, ge=0, description="how long the broker keeps the session offline"
    )
    ingest_receive_maximum: int = Field(
        default=2000,
        ge=1,
        le=65535,
        description="unacknowledged messages the broker may send this worker (bounds memory)",
    )
    ingest_batch_max_readings: int = Field(
        default=50_000, ge=1, description="commit a batch once it holds this many readings"
    )
    ingest_batch_max_delay_ms: int = Field(
        default=50,
        ge=1,
        description="commit a batch at the latest this long after its first message arrived "
        "(bounds the latency that early warning sees when the load is light)",
    )
    ingest_max_payload_bytes: int = Field(
        default=256 * 1024, ge=1024, description="larger payloads are quarantined as oversized"
    )
    ingest_max_future_s: float = Field(
        default=300.0, ge=0, description="samples later than now + this are quarantined"
    )
    ingest_device_cache_s: float = Field(
        default=60.0, gt=0, description="how long registry entries are cached by a worker"
    )
    ingest_auto_register_sensors: bool = Field(
        default=True,
        description="a registered device may introduce new sensors (quantity and unit from the "
        "first message); off: unknown sensors are quarantined",
    )
    ingest_max_attempts: int = Field(
        default=5,
        ge=1,
        le=100,
        description="a message whose processing fails this many times for a reason that is "
        "neither its content (quarantined at once) nor an outage (retried while it lasts) is "
        "written to the dead_letters table and acknowledged (`qorgau deadletters`)",
    )
    ingest_quarantine_payload_bytes: int = Field(
        default=16 * 1024, ge=0, description="how much of a bad payload the quarantine keeps"
    )
    ingest_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="port of the HTTP server with /metrics (Prometheus) and /health (0: off)",
    )
    ingest_metrics_host: str = Field(
        default="0.0.0.0", description="address the metrics and health server listens on"
    )
    ingest_status_topic: str = Field(
        default="",
        description="retained MQTT topic with this worker's online/offline status (empty: "
        "{prefix}/ingest/{client id}/status)",
    )
    ingest_listener_queue_batches: int = Field(
        default=64, ge=1, description="committed batches a slow listener may fall behind"
    )
    ingest_listener_timeout_s: float = Field(
        default=10.0, gt=0, description="a listener call running longer is cancelled"
    )
    ingest_retry_max_s: float = Field(
        default=10.0, gt=0, description="longest wait between database or broker retries"
    )

    def status_topic(self) -> str:
        return self.ingest_status_topic or (
            f"{self.topic_prefix}/ingest/{self.ingest_client_id}/status"
        )

    def storage_policies(self) -> StoragePolicies:
        """The database's policies, their refresh look-back checked against this worker's
        sample window (late readings it accepts must reach the rollups)."""
        return replace(
            super().storage_policies(),
            sample_window_s=self.ingest_max_past_s + self.ingest_max_future_s,
        )

    def ingest_maintenance_policy(self) -> MaintenancePolicy:
        """The maintenance job's policy, its dedupe horizon checked against this worker's
        sample window."""
        return self.maintenance_policy(
            max_past_s=self.ingest_max_past_s, max_future_s=self.ingest_max_future_s
        )
