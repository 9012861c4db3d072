"""Settings of ``qorgau alerts`` (environment variables ``QORGAU_*``).

It reads the broker settings ingest reads (``BrokerSettings`` in ``ingest/settings.py``), and it
validates readings exactly as ingest does, so it reads ingest's validation settings too
(``QORGAU_INGEST_MAX_FUTURE_S``, ``QORGAU_INGEST_MAX_PAYLOAD_BYTES``).
"""

from __future__ import annotations

import socket

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from ingest.alerting.notifications.settings import NotificationSettings
from ingest.settings import BrokerSettings
from store.settings import DatabaseSettings
from vocabulary.protocol.topics import check_segment


# BrokerSettings first among the bases: pydantic orders inherited fields by the reversed MRO, so
# --help lists the broker's after the database's and before this class's own.
class AlertsSettings(BrokerSettings, DatabaseSettings, NotificationSettings):
    model_config = SettingsConfigDict(env_prefix="QORGAU_", extra="ignore")

    ingest_max_payload_bytes: int = Field(
        default=256 * 1024, ge=1024, description="same as ingest: larger payloads are refused"
    )
    ingest_max_future_s: float = Field(
        default=300.0, ge=0, description="same as ingest: samples later than now + this are bad"
    )
    alerts_client_id: str = Field(
        default_factory=lambda: f"qorgau-alerts-{socket.gethostname()}",
        description="MQTT client id of the (non-shared, persistent) subscription; stable across "
        "restarts so that messages queued meanwhile are delivered",
    )
    alerts_enterprises: str = Field(
        default="",
        description="comma-separated codes of the enterprises this engine watches (one topic "
        "filter each); empty: all of them. Engines of one broker must own disjoint sets",
    )
    alerts_heartbeat_s: float = Field(
        default=10.0,
        gt=0,
        description="how often the engine renews its claim on its enterprises in the database",
    )
    alerts_heartbeat_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="an engine whose claim is older than this is taken for gone: another may "
        "then take its enterprises",
    )
    alerts_session_expiry_s: int = Field(
        default=3600, ge=0, description="how long the broker queues readings for a stopped engine"
    )
    alerts_receive_maximum: int = Field(
        default=2000, ge=1, le=65535, description="unacknowledged messages the broker may send"
    )
    alerts_norms_profile: str = Field(
        default="default",
        description="norms profile (name or TOML path) of enterprises whose own "
        "(enterprises.norms_profile) is not set",
    )
    alerts_tick_s: float = Field(
        default=0.25,
        gt=0,
        description="how often clock-driven detectors run (silence, offline, escalation)",
    )
    alerts_registry_refresh_s: float = Field(
        default=60.0, gt=0, description="how often registry facts (calibration dates) reload"
    )
    alerts_warm_start: bool = Field(
        default=True,
        description="rebuild windows and shift sums from stored readings at start",
    )
    alerts_webhook_timeout_s: float = Field(
        default=5.0, gt=0, description="timeout of one webhook request"
    )
    alerts_webhook_max_attempts: int = Field(
        default=8, ge=1, description="attempts per webhook delivery before giving up"
    )
    alerts_webhook_retry_max_s: float = Field(
        default=60.0, gt=0, description="longest wait between webhook retries"
    )
    alerts_webhook_refresh_s: float = Field(
        default=10.0, gt=0, description="how often the webhook list reloads"
    )
    alerts_store_backlog_max: int = Field(
        default=100_000,
        ge=100,
        description="transitions held in memory while the database is away (oldest dropped)",
    )
    alerts_retry_max_s: float = Field(
        default=10.0, gt=0, description="longest wait between database or broker retries"
    )
    alerts_metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Prometheus metrics port (0: off)"
    )

    @field_validator("alerts_enterprises")
    @classmethod
    def _enterprise_codes(cls, value: str) -> str:
        codes = sorted({code.strip() for code in value.split(",") if code.strip()})
        for code in codes:
            # Each code becomes a topic segment of a filter: a wildcard would widen it silently.
            check_segment("enterprise", code)
        return ",".join(codes)

    @field_validator("alerts_heartbeat_timeout_s")
    @classmethod
    def _timeout_beyond_heartbeat(cls, value: float, info: ValidationInfo) -> float:
        beat = info.data.get("alerts_heartbeat_s")
        if beat is not None and value <= 2 * beat:
            raise ValueError(
                "must exceed twice QORGAU_ALERTS_HEARTBEAT_S, or a live engine whose heartbeat "
                "is a little late is taken for gone"
            )
        return value

    def owned_enterprises(self) -> frozenset[str] | None:
        """The enterprises this engine owns; ``None``: all of them."""
        return frozenset(self.alerts_enterprises.split(",")) if self.alerts_enterprises else None
