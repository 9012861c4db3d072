"""TimescaleDB background policies: compression, retention and rollup refresh.

Migrations create the objects once; policies are settings that may change, so ``upgrade``
re-applies them on every run (remove, then add with the current values). Plain PostgreSQL has no
background jobs: its rollups are kept by ingest and old day partitions are dropped by hand.

The one rule that protects the rollups: TimescaleDB recomputes a continuous aggregate over its
refresh window from the raw rows, and raw rows that a retention policy dropped would come back as
missing buckets. So when raw readings (or minute rollups) expire, the refresh look-back must be
shorter than their retention; ``apply_timescale_policies`` refuses settings that break that.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg

from store.connection import DatabaseError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoragePolicies:
    """Intervals as PostgreSQL interval text (``'7 days'``); None switches a policy off."""

    compress_after: str | None = "7 days"
    retention: str | None = None  # raw readings; None keeps them forever
    rollup_retention: str | None = None  # minute rollups; hourly rollups are always kept
    refresh_lookback: str | None = None  # None: refresh whatever changed, however old

    @classmethod
    def from_text(
        cls,
        *,
        compress_after: str,
        retention: str,
        rollup_retention: str,
        refresh_lookback: str,
    ) -> StoragePolicies:
        """From settings, where an empty string means off (or, for the look-back, unlimited)."""
        return cls(
            compress_after=compress_after.strip() or None,
            retention=retention.strip() or None,
            rollup_retention=rollup_retention.strip() or None,
            refresh_lookback=refresh_lookback.strip() or None,
        )


def check_policies(conn: psycopg.Connection[Any], policies: StoragePolicies) -> None:
    for name, expiry in (
        ("QORGAU_DB_RETENTION", policies.retention),
        ("QORGAU_DB_ROLLUP_RETENTION", policies.rollup_retention),
    ):
        if expiry is None:
            continue
        if policies.refresh_lookback is None:
            raise DatabaseError(
                f"{name}={expiry!r} drops old data, but QORGAU_DB_ROLLUP_REFRESH_LOOKBACK is "
                "unlimited: a refresh over dropped data would erase its rollups. Set the "
                f"look-back shorter than {expiry!r}"
            )
        row = conn.execute(
            "SELECT %s::interval < %s::interval", [policies.refresh_lookback, expiry]
        ).fetchone()
        if not (row and row[0]):
            raise DatabaseError(
                f"QORGAU_DB_ROLLUP_REFRESH_LOOKBACK={policies.refresh_lookback!r} must be shorter "
                f"than {name}={expiry!r}, or refreshes would erase rollups of dropped data"
            )


def apply_timescale_policies(conn: psycopg.Connection[Any], policies: StoragePolicies) -> None:
    """(Re)create the background jobs of the schema on the connection's search path."""
    try:
        with conn.transaction():
            check_policies(conn, policies)
            conn.execute("SELECT remove_compression_policy('readings', if_exists => true)")
            if policies.compress_after is not None:
                conn.execute(
                    "SELECT add_compression_policy('readings', compress_after => %s::interval)",
                    [policies.compress_after],
                )
            conn.execute("SELECT remove_retention_policy('readings', if_exists => true)")
            if policies.retention is not None:
                conn.execute(
                    "SELECT add_retention_policy('readings', drop_after => %s::interval)",
                    [policies.retention],
                )
            conn.execute("SELECT remove_retention_policy('readings_1m', if_exists => true)")
            if policies.rollup_retention is not None:
                conn.execute(
                    "SELECT add_retention_policy('readings_1m', drop_after => %s::interval)",
                    [policies.rollup_retention],
                )
            # The newest bucket stays out of the materialization (it is still filling); real-time
            # aggregation answers for it from the raw rows.
            for view, end_offset, every in (
                ("readings_1m", "1 minute", "1 minute"),
                ("readings_1h", "1 hour", "10 minutes"),
            ):
                conn.execute(
                    "SELECT remove_continuous_aggregate_policy(%s::regclass, if_exists => true)",
                    [view],
                )
                conn.execute(
                    "SELECT add_continuous_aggregate_policy(%s::regclass, "
                    "start_offset => %s::interval, end_offset => %s::interval, "
                    "schedule_interval => %s::interval)",
                    [view, policies.refresh_lookback, end_offset, every],
                )
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot set TimescaleDB policies: {exc}".strip()) from exc
    log.info(
        "TimescaleDB policies: compress after %s, retention %s, minute-rollup retention %s, "
        "refresh look-back %s",
        policies.compress_after or "off",
        policies.retention or "off",
        policies.rollup_retention or "off",
        policies.refresh_lookback or "unlimited",
    )
