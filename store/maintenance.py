"""The maintenance job: retention on plain PostgreSQL, and pruning of the exactly-once records.

What it removes (``MaintenancePolicy``, from the same settings on both backends):

- raw readings older than ``QORGAU_DB_RETENTION``: on plain PostgreSQL whole day partitions
  whose upper bound is at or before ``now() - retention`` (a partition that may still hold a
  reading inside the window is kept), plus stray rows of the default partition that old;
- minute rollups older than ``QORGAU_DB_ROLLUP_RETENTION`` (plain PostgreSQL; hourly rollups
  are always kept);
- rows of ``ingested_messages`` received longer ago than ``QORGAU_DB_DEDUPE_HORIZON`` (both
  backends), only while that horizon exceeds ingest's sample window (``check_dedupe_horizon``);
- quarantined messages recorded longer ago than ``QORGAU_DB_QUARANTINE_RETENTION`` (both
  backends).

On TimescaleDB readings and minute rollups are left to its retention policies
(``store.policies``); this job touches them only on plain PostgreSQL, and reports there which
of TimescaleDB's background jobs fail (``store.jobs``).

Several ingest workers run the job on a timer, so it takes a session-level advisory lock with
``pg_try_advisory_lock``: the first comes in, the others see it held and skip this round. Every
statement is short: rows go in batches of ``batch_rows`` per autocommit statement, partitions
one per transaction with a lock timeout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
from psycopg import AsyncConnection, sql

from store.jobs import JobState, background_jobs
from store.migrate import Backend, current_backend_async
from store.policies import MaintenancePolicy, check_dedupe_horizon

log = logging.getLogger(__name__)

# Tables whose old rows go in batches, and the time column that decides their age.
ROW_PRUNES: Final[dict[str, str]] = {
    "readings_default": "time",
    "readings_1m": "bucket",
    "ingested_messages": "received_at",
    "quarantine": "received_at",
}


def lock_key(schema: str) -> str:
    """The advisory lock one maintenance run of ``schema`` holds (``hashtext`` of this)."""
    return f"qorgau-maintenance:{schema}"


@dataclass(frozen=True, slots=True)
class DayPartition:
    """A partition of ``readings`` holding [start, end)."""

    schema: str
    name: str
    start: datetime
    end: datetime
    estimated_rows: int | None  # the planner's estimate; None before the first ANALYZE


@dataclass(slots=True)
class MaintenanceReport:
    """What one run removed, or (``dry_run``) would remove. Row counts are exact, partition
    sizes estimates."""

    backend: Backend
    dry_run: bool
    acted: bool = True  # False: another run held the lock, so this one did nothing
    readings_cutoff: datetime | None = None  # None: raw readings are not pruned here
    rollup_cutoff: datetime | None = None
    dedupe_cutoff: datetime | None = None
    quarantine_cutoff: datetime | None = None
    partitions: list[DayPartition] = field(default_factory=list)  # dropped / to drop
    busy_partitions: list[DayPartition] = field(default_factory=list)  # lock not had in time
    rows: dict[str, int] = field(default_factory=dict)  # table → rows deleted / to delete
    statements: dict[str, int] = field(default_factory=dict)  # table → DELETE statements run
    jobs: list[JobState] = field(default_factory=list)  # TimescaleDB's background jobs

    @property
    def failing_jobs(self) -> list[JobState]:
        return [job for job in self.jobs if job.failing]

    @property
    def removed_anything(self) -> bool:
        return bool(self.partitions) or any(self.rows.values())


async def run_maintenance(
    conn: AsyncConnection[Any], policy: MaintenancePolicy, *, dry_run: bool = False
) -> MaintenanceReport:
    """Remove (or, with ``dry_run``, count) what the policy says has expired.

    ``conn`` must be in autocommit mode and is used for nothing else meanwhile: the advisory
    lock belongs to its session. If this raises, close ``conn``: that releases the lock. A dry
    run reads only, so it takes no lock.
    """
    if not conn.autocommit:
        raise ValueError("run_maintenance needs an autocommit connection")
    await check_dedupe_horizon(conn, policy)
    backend = await current_backend_async(conn)
    # Read-only, so every run reports them, with the lock or without.
    report = MaintenanceReport(backend=backend, dry_run=dry_run, jobs=await background_jobs(conn))
    if dry_run:
        await _plan(conn, policy, report, count=True)
        return report
    cur = await conn.execute("SELECT current_schema()")
    schema_row = await cur.fetchone()
    key = lock_key(str(schema_row[0]) if schema_row else "")
    cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [key])
    locked = await cur.fetchone()
    if not (locked and locked[0]):
        report.acted = False
        return report
    # No try/finally around the unlock: after an error or a cancellation the connection may be
    # mid-statement or gone, and the lock ends with the session, which the caller closes.
    await _plan(conn, policy, report, count=False)
    await _drop_partitions(conn, policy, report)
    for table, cutoff in _row_cutoffs(report).items():
        await _delete_batches(conn, table, cutoff, policy.batch_rows, report)
    await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])
    return report


def _row_cutoffs(report: MaintenanceReport) -> dict[str, datetime]:
    cutoffs = {
        "readings_default": report.readings_cutoff,
        "readings_1m": report.rollup_cutoff,
        "ingested_messages": report.dedupe_cutoff,
        "quarantine": report.quarantine_cutoff,
    }
    return {table: cutoff for table, cutoff in cutoffs.items() if cutoff is not None}


async def _plan(
    conn: AsyncConnection[Any], policy: MaintenancePolicy, report: MaintenanceReport, *, count: bool
) -> None:
    """Fill in the cutoffs (one ``now()`` for the whole run) and the partitions to drop; with
    ``count``, also the rows each table would lose."""
    plain = report.backend == "plain"
    cur = await conn.execute(
        "SELECT now() - %s::interval, now() - %s::interval, now() - %s::interval, "
        "now() - %s::interval",
        [
            policy.retention if plain else None,
            policy.rollup_retention if plain else None,
            policy.dedupe_horizon,
            policy.quarantine_retention,
        ],
    )
    row = await cur.fetchone()
    assert row is not None
    (
        report.readings_cutoff,
        report.rollup_cutoff,
        report.dedupe_cutoff,
        report.quarantine_cutoff,
    ) = row
    if report.readings_cutoff is not None:
        report.partitions = await _expired_partitions(conn, report.readings_cutoff)
    if count:
        for table, cutoff in _row_cutoffs(report).items():
            column = ROW_PRUNES[table]
            cur = await conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {} < %s").format(
                    sql.Identifier(table), sql.Identifier(column)
                ),
                [cutoff],
            )
            counted = await cur.fetchone()
            report.rows[table] = int(counted[0]) if counted else 0


async def _expired_partitions(conn: AsyncConnection[Any], cutoff: datetime) -> list[DayPartition]:
    """Partitions of ``readings`` whose every possible row is older than ``cutoff``.

    The bounds come from the catalog, not from the partition names, so a partition attached by
    hand with other bounds is judged by what it can hold. They are printed in ISO style with
    their UTC offset, which reads back exactly; the DEFAULT partition has no bounds and is never
    dropped (its old rows are deleted instead).
    """
    async with conn.transaction():
        await conn.execute("SET LOCAL DateStyle = 'ISO, YMD'")
        cur = await conn.execute(
            r"""
            SELECT nspname, relname, lo, hi, reltuples FROM (
                SELECT n.nspname, c.relname, c.reltuples,
                       (regexp_match(b.bound, 'FROM \(''([^'']+)''\)'))[1]::timestamptz AS lo,
                       (regexp_match(b.bound, 'TO \(''([^'']+)''\)'))[1]::timestamptz AS hi
                FROM pg_inherits i
                JOIN pg_class c ON c.oid = i.inhrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
                WHERE i.inhparent = 'readings'::regclass
            ) parts
            WHERE hi IS NOT NULL AND hi <= %s
            ORDER BY hi
            """,
            [cutoff],
        )
        rows = await cur.fetchall()
    return [
        DayPartition(
            schema=str(nsp),
            name=str(name),
            start=lo,
            end=hi,
            estimated_rows=int(tuples) if tuples is not None and tuples >= 0 else None,
        )
        for nsp, name, lo, hi, tuples in rows
    ]


async def _drop_partitions(
    conn: AsyncConnection[Any], policy: MaintenancePolicy, report: MaintenanceReport
) -> None:
    """Drop each expired partition with one autocommit statement.

    Dropping a partition needs an ACCESS EXCLUSIVE lock on ``readings`` itself, and so would a
    plain DETACH first; DETACH CONCURRENTLY avoids that lock but PostgreSQL refuses it while the
    table has a DEFAULT partition, which ours has. So DROP directly. While a DROP waits for that
    lock (behind a long COPY or query), every new COPY of every ingest worker queues behind the
    DROP, even into other partitions; the lock timeout bounds that stall, and a partition not had
    in time is left for the next run. Once granted, the DROP is a catalog change and a file
    unlink, and in autocommit the server commits it at once, so the lock is never held across a
    round trip to this process.
    """
    dropped: list[DayPartition] = []
    await conn.execute(
        "SELECT set_config('lock_timeout', %s, false)", [f"{policy.lock_timeout_ms}ms"]
    )
    for part in report.partitions:
        try:
            await conn.execute(
                sql.SQL("DROP TABLE {}").format(sql.Identifier(part.schema, part.name))
            )
        except psycopg.errors.LockNotAvailable:
            log.info("partition %s is busy; left for the next maintenance run", part.name)
            report.busy_partitions.append(part)
            continue
        log.info("dropped partition %s (%s to %s)", part.name, part.start, part.end)
        dropped.append(part)
    # The row deletes that follow may wait for row locks as long as ingest holds them.
    await conn.execute("RESET lock_timeout")
    report.partitions = dropped


async def _delete_batches(
    conn: AsyncConnection[Any],
    table: str,
    cutoff: datetime,
    batch_rows: int,
    report: MaintenanceReport,
) -> None:
    """Delete rows older than ``cutoff``, ``batch_rows`` per autocommit statement, oldest first
    (through the time column's index), so that no statement holds row locks or bloats WAL for
    long and ingest's inserts into the same table never wait more than one batch."""
    column = ROW_PRUNES[table]
    statement = sql.SQL(
        "DELETE FROM {table} WHERE ctid = ANY(ARRAY("
        "SELECT ctid FROM {table} WHERE {column} < %s ORDER BY {column} LIMIT %s))"
    ).format(table=sql.Identifier(table), column=sql.Identifier(column))
    deleted = 0
    statements = 0
    while True:
        cur = await conn.execute(statement, [cutoff, batch_rows])
        statements += 1
        deleted += cur.rowcount
        # A short batch means nothing older is left (rows that a concurrent update moved are
        # picked up by the next run).
        if cur.rowcount < batch_rows:
            break
    report.rows[table] = deleted
    report.statements[table] = statements
    if deleted:
        log.info("deleted %d rows of %s older than %s", deleted, table, cutoff)


def describe(report: MaintenanceReport, policy: MaintenancePolicy) -> list[str]:
    """The report as lines for a person: what went (or would go), with units."""
    verb_parts = "would drop" if report.dry_run else "dropped"
    verb_rows = "would delete" if report.dry_run else "deleted"
    failing = [f"TimescaleDB job failing: {job.describe()}" for job in report.failing_jobs]
    if not report.acted:
        return ["another maintenance run holds the lock; nothing done (try again later)", *failing]
    lines: list[str] = []
    if report.backend == "timescale":
        lines.append(
            "readings and minute rollups: left to TimescaleDB's retention policies "
            f"(retention {policy.retention or 'off'}, minute-rollup retention "
            f"{policy.rollup_retention or 'off'})"
        )
        lines.extend(failing)
    elif report.readings_cutoff is None:
        lines.append("readings: kept forever (QORGAU_DB_RETENTION is empty)")
    else:
        days = sum((p.end - p.start).total_seconds() for p in report.partitions) / 86_400
        lines.append(
            f"readings older than {policy.retention} (before {_utc(report.readings_cutoff)}): "
            f"{verb_parts} {len(report.partitions)} day partitions ({days:g} days)"
        )
        for part in report.partitions:
            size = (
                "size unknown (not analysed yet)"
                if part.estimated_rows is None
                else f"about {part.estimated_rows:,} rows"
            )
            lines.append(f"  {part.name}  {_utc(part.start)} to {_utc(part.end)}  {size}")
        for part in report.busy_partitions:
            lines.append(f"  {part.name}  busy (lock not granted in time): left for the next run")
        stray = report.rows.get("readings_default", 0)
        if stray:
            lines.append(f"  {verb_rows} {stray:,} rows of readings_default that old")
    if report.backend == "plain":
        if report.rollup_cutoff is None:
            lines.append("minute rollups: kept forever (QORGAU_DB_ROLLUP_RETENTION is empty)")
        else:
            lines.append(
                f"minute rollups older than {policy.rollup_retention} (before "
                f"{_utc(report.rollup_cutoff)}): {verb_rows} "
                f"{report.rows.get('readings_1m', 0):,} rows; hourly rollups are kept"
            )
    if report.dedupe_cutoff is None:
        lines.append("ingested_messages: kept forever (QORGAU_DB_DEDUPE_HORIZON is empty)")
    else:
        lines.append(
            f"ingested_messages received more than {policy.dedupe_horizon} ago (before "
            f"{_utc(report.dedupe_cutoff)}): {verb_rows} "
            f"{report.rows.get('ingested_messages', 0):,} rows"
        )
    if report.quarantine_cutoff is None:
        lines.append("quarantine: kept forever (QORGAU_DB_QUARANTINE_RETENTION is empty)")
    else:
        lines.append(
            f"quarantined messages recorded more than {policy.quarantine_retention} ago (before "
            f"{_utc(report.quarantine_cutoff)}): {verb_rows} "
            f"{report.rows.get('quarantine', 0):,} rows"
        )
    return lines


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
