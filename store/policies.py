"""Storage policies: compression, retention, rollup refresh, and how long exactly-once lasts.

On TimescaleDB they are background jobs. Migrations create the objects once; policies are
settings that may change, so ``upgrade`` re-applies them on every run (remove, then add with the
current values). Plain PostgreSQL has no background jobs: its rollups are kept by ingest, and the
maintenance job (``store.maintenance``, run by ingest and by ``qorgau db prune``) applies the same
retention settings there. On both, that job prunes ``ingested_messages`` and the quarantine
(``MaintenancePolicy``).

The one rule that protects the rollups on TimescaleDB: it recomputes a continuous aggregate over
its refresh window from the raw rows, and raw rows that a retention policy dropped would come
back as missing buckets. So when raw readings (or minute rollups) expire, the refresh look-back
must be shorter than their retention; ``apply_timescale_policies`` refuses settings that break
that. On plain PostgreSQL nothing ever recomputes a rollup from raw rows (ingest adds each fresh
message to them once), so dropping raw partitions cannot touch them and the rule does not apply.

The rule that brings late data into the rollups on TimescaleDB: a refresh looks for changed raw
rows only within its look-back, so a reading older than that, though stored, would never reach
``readings_1m``/``readings_1h``. Ingest accepts readings as old as ``QORGAU_INGEST_MAX_PAST_S``
(and up to ``QORGAU_INGEST_MAX_FUTURE_S`` ahead of its clock), so a finite look-back must cover
that sample window; ``check_policies`` refuses less when the window is known (``sample_window_s``,
from the ingest settings). Together: sample window <= look-back < retention. The look-back costs
little however long it is: a refresh recomputes only the buckets whose raw rows changed (the
invalidation log), not the whole window.

The one rule that protects exactly-once: a redelivered message is recognised by its row in
``ingested_messages``, and those rows are pruned after the dedupe horizon. A copy arriving later
than that is no duplicate only because ingest refuses its samples as ``past_timestamp``, which
holds when the horizon exceeds the sample window (max past + max future); ``check_dedupe_horizon``
refuses settings that break that.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg

from store.connection import DatabaseError
from vocabulary.errors import ConfigurationError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoragePolicies:
    """Intervals as PostgreSQL interval text (``'7 days'``); None switches a policy off."""

    compress_after: str | None = "7 days"
    retention: str | None = None  # raw readings; None keeps them forever
    rollup_retention: str | None = None  # minute rollups; hourly rollups are always kept
    refresh_lookback: str | None = None  # None: refresh whatever changed, however old
    # Ingest's sample window (max past + max future), which a finite look-back must cover;
    # None when the caller does not know it (a service that does not ingest).
    sample_window_s: float | None = None

    @classmethod
    def from_text(
        cls,
        *,
        compress_after: str,
        retention: str,
        rollup_retention: str,
        refresh_lookback: str,
        sample_window_s: float | None = None,
    ) -> StoragePolicies:
        """From settings, where an empty string means off (or, for the look-back, unlimited)."""
        return cls(
            compress_after=compress_after.strip() or None,
            retention=retention.strip() or None,
            rollup_retention=rollup_retention.strip() or None,
            refresh_lookback=refresh_lookback.strip() or None,
            sample_window_s=sample_window_s,
        )


@dataclass(frozen=True, slots=True)
class MaintenancePolicy:
    """What the maintenance job removes. Intervals as PostgreSQL interval text; None keeps."""

    retention: str | None = None  # raw readings (plain PostgreSQL: whole day partitions)
    rollup_retention: str | None = None  # minute rollups (plain PostgreSQL); hourly are kept
    dedupe_horizon: str | None = None  # rows of ingested_messages, by received_at
    quarantine_retention: str | None = None  # refused messages, by received_at
    # The sample window ingest accepts, which the dedupe horizon must exceed.
    max_past_s: float = 0.0
    max_future_s: float = 0.0
    batch_rows: int = 10_000
    lock_timeout_ms: int = 1000

    @classmethod
    def from_text(
        cls,
        *,
        retention: str,
        rollup_retention: str,
        dedupe_horizon: str,
        quarantine_retention: str,
        max_past_s: float,
        max_future_s: float,
        batch_rows: int,
        lock_timeout_ms: int,
    ) -> MaintenancePolicy:
        """From settings, where an empty string means keep forever."""
        return cls(
            retention=retention.strip() or None,
            rollup_retention=rollup_retention.strip() or None,
            dedupe_horizon=dedupe_horizon.strip() or None,
            quarantine_retention=quarantine_retention.strip() or None,
            max_past_s=max_past_s,
            max_future_s=max_future_s,
            batch_rows=batch_rows,
            lock_timeout_ms=lock_timeout_ms,
        )


async def interval_seconds(conn: psycopg.AsyncConnection[Any], name: str, text: str) -> float:
    """An interval setting in seconds, as PostgreSQL reads it (a month counts 30 days)."""
    try:
        cur = await conn.execute("SELECT extract(epoch FROM %s::interval)::float8", [text])
        row = await cur.fetchone()
    except psycopg.errors.DataError as exc:
        raise ConfigurationError(
            f"{name}={text!r} is not a PostgreSQL interval (e.g. '30 days'): {exc}".strip()
        ) from exc
    assert row is not None
    return float(row[0])


async def check_dedupe_horizon(
    conn: psycopg.AsyncConnection[Any], policy: MaintenancePolicy
) -> None:
    """Refuse a dedupe horizon that a redelivered message could outlive while ingest would
    still accept its samples (see the module docstring)."""
    if policy.dedupe_horizon is None:
        return
    horizon_s = await interval_seconds(conn, "QORGAU_DB_DEDUPE_HORIZON", policy.dedupe_horizon)
    window_s = policy.max_past_s + policy.max_future_s
    if horizon_s <= window_s:
        raise ConfigurationError(
            f"QORGAU_DB_DEDUPE_HORIZON={policy.dedupe_horizon!r} ({_days(horizon_s)}) must be "
            f"longer than the sample window ingest accepts, QORGAU_INGEST_MAX_PAST_S + "
            f"QORGAU_INGEST_MAX_FUTURE_S = {policy.max_past_s:g} s + {policy.max_future_s:g} s "
            f"({_days(window_s)}): a message redelivered after its (device, seq) was pruned would "
            f"be stored twice. Raise QORGAU_DB_DEDUPE_HORIZON above {_days(window_s)} or lower "
            f"QORGAU_INGEST_MAX_PAST_S below {_days(horizon_s - policy.max_future_s)}"
        )


def _days(seconds: float) -> str:
    return f"{seconds / 86_400:.6g} days"


def check_policies(conn: psycopg.Connection[Any], policies: StoragePolicies) -> None:
    """Refuse policies under which a refresh would erase rollups of dropped data, or under
    which late readings ingest accepts would never reach the rollups (module docstring)."""
    if policies.refresh_lookback is not None and policies.sample_window_s is not None:
        row = conn.execute(
            "SELECT extract(epoch FROM %s::interval)::float8", [policies.refresh_lookback]
        ).fetchone()
        lookback_s = float(row[0]) if row else 0.0
        if lookback_s < policies.sample_window_s:
            raise DatabaseError(
                f"QORGAU_DB_ROLLUP_REFRESH_LOOKBACK={policies.refresh_lookback!r} "
                f"({_days(lookback_s)}) is shorter than the sample window ingest accepts, "
                f"QORGAU_INGEST_MAX_PAST_S + QORGAU_INGEST_MAX_FUTURE_S "
                f"({_days(policies.sample_window_s)}): a reading that late would be stored but "
                f"never reach the rollups. Raise the look-back to at least "
                f"{_days(policies.sample_window_s)} (and any retention above it), or lower "
                f"QORGAU_INGEST_MAX_PAST_S"
            )
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
