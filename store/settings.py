"""Database settings shared by every service that talks to PostgreSQL."""

from __future__ import annotations

import re
from typing import Final, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from store.policies import MaintenancePolicy, StoragePolicies

# The edge outbox holds about 14 days of a standard device (128 MiB, docs/edge.md) and the broker
# keeps an offline session for 14 days, so a message can come back that late; 30 days leaves a
# margin and must stay above ingest's sample window (ingest/validate.py: DEFAULT_MAX_PAST_S).
DEFAULT_DEDUPE_HORIZON = "30 days"

# Samples older than this are refused as past_timestamp unless configured otherwise
# (QORGAU_INGEST_MAX_PAST_S): an edge outbox may deliver two weeks late (about 330 h of a standard
# device fit its 128 MiB), a device whose clock was reset reports 1970. The window also keeps
# exactly-once exact after pruning: it must stay shorter than the dedupe horizon above, or a
# message redelivered after its (device, seq) was forgotten would be stored twice. A stored shift
# assessment is final once this long has passed since the shift ended.
DEFAULT_MAX_PAST_S: Final = 28 * 86_400.0

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QORGAU_", extra="ignore")

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        description="libpq URL of the PostgreSQL/TimescaleDB server",
    )
    database_schema: str = Field(
        default="qorgau", description="schema that holds Qorgau's tables (created if missing)"
    )
    db_timescale: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="use TimescaleDB when the extension is available (auto), require it (on) "
        "or never use it (off)",
    )
    db_chunk_interval: str = Field(
        default="1 day", description="TimescaleDB chunk interval of the readings hypertable"
    )
    db_pool_max: int = Field(default=10, ge=1, description="largest connection pool size")
    db_compress_after: str = Field(
        default="7 days",
        description="TimescaleDB: compress readings chunks older than this (empty: never)",
    )
    db_retention: str = Field(
        default="",
        description="drop raw readings older than this (empty: keep forever). TimescaleDB: a "
        "retention policy; plain PostgreSQL: whole day partitions, by the maintenance job",
    )
    db_rollup_retention: str = Field(
        default="",
        description="drop 1-minute rollups older than this (empty: keep forever; hourly rollups "
        "are always kept). TimescaleDB: a retention policy; plain PostgreSQL: the maintenance job",
    )
    db_rollup_refresh_lookback: str = Field(
        default="",
        description="TimescaleDB: how far back rollup refreshes look for late data (empty: "
        "unlimited); must be shorter than any retention and, where ingest's settings are known, "
        "cover QORGAU_INGEST_MAX_PAST_S + QORGAU_INGEST_MAX_FUTURE_S (checked)",
    )
    db_dedupe_horizon: str = Field(
        default=DEFAULT_DEDUPE_HORIZON,
        description="forget the (device, seq) of messages stored longer ago than this (empty: "
        "never); must exceed QORGAU_INGEST_MAX_PAST_S + QORGAU_INGEST_MAX_FUTURE_S (checked)",
    )
    db_quarantine_retention: str = Field(
        default="90 days",
        description="delete quarantined (refused) messages recorded longer ago than this "
        "(empty: keep forever); the quarantine counter metric keeps the totals",
    )
    db_maintenance_interval_s: float = Field(
        default=3600.0,
        ge=0,
        description="how often an ingest worker runs the maintenance job (retention on plain "
        "PostgreSQL, dedupe and quarantine pruning on both); one worker at a time (0: never)",
    )
    db_maintenance_batch_rows: int = Field(
        default=10_000,
        ge=1,
        description="rows per DELETE statement of the maintenance job (bounds lock time)",
    )
    db_maintenance_lock_timeout_ms: int = Field(
        default=1000,
        ge=1,
        description="how long dropping a day partition may wait for its lock before it is left "
        "for the next run (ingest's COPY queues behind a waiting DROP)",
    )

    def storage_policies(self) -> StoragePolicies:
        return StoragePolicies.from_text(
            compress_after=self.db_compress_after,
            retention=self.db_retention,
            rollup_retention=self.db_rollup_retention,
            refresh_lookback=self.db_rollup_refresh_lookback,
        )

    def maintenance_policy(self, *, max_past_s: float, max_future_s: float) -> MaintenancePolicy:
        """What the maintenance job does, given the sample window ingest accepts (which the
        dedupe horizon must exceed)."""
        return MaintenancePolicy.from_text(
            retention=self.db_retention,
            rollup_retention=self.db_rollup_retention,
            dedupe_horizon=self.db_dedupe_horizon,
            quarantine_retention=self.db_quarantine_retention,
            max_past_s=max_past_s,
            max_future_s=max_future_s,
            batch_rows=self.db_maintenance_batch_rows,
            lock_timeout_ms=self.db_maintenance_lock_timeout_ms,
        )

    @field_validator("database_schema")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(
                "database schema must be a lower-case SQL identifier (letters, digits, '_')"
            )
        return value


class SampleWindowSettings(DatabaseSettings):
    """Ingest's sample window, read by every service that must agree with it: ingest refuses
    older samples, the assessment service and the API call a shift final once it has passed."""

    model_config = SettingsConfigDict(env_prefix="QORGAU_", extra="ignore")

    ingest_max_past_s: float = Field(
        default=DEFAULT_MAX_PAST_S,
        gt=0,
        description="samples older than now - this are quarantined (a reset device clock), and "
        "a stored shift ended longer ago than this is final; with max future it must stay "
        "below QORGAU_DB_DEDUPE_HORIZON (checked by ingest)",
    )
