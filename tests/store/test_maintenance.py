"""The maintenance job against real PostgreSQL: day partitions wholly older than the retention go
and the rest stay, minute rollups are pruned and hourly ones kept, dedupe records go in batches,
a dry run changes nothing, and two runs at once never both act."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

from ingest.settings import IngestSettings
from qorgau.cli import main
from store.connection import connect, connect_async
from store.maintenance import lock_key, run_maintenance
from store.policies import MaintenancePolicy, check_dedupe_horizon
from store.readings import (
    US_PER_DAY,
    US_PER_S,
    ReadingBlock,
    datetime_to_us,
    days_of,
    ensure_day_partitions,
)
from store.writes import write_readings
from tests.store.conftest import BackendSchema
from tests.support import eventually, scalar, write_as_ingest
from vocabulary.errors import ConfigurationError

# Day partitions and rollup tables are plain PostgreSQL's; the test over both backends says so.
pytestmark = [pytest.mark.anyio, pytest.mark.services, pytest.mark.plain]

DAY = timedelta(days=1)
WINDOW: dict[str, Any] = {"max_past_s": 28 * 86_400.0, "max_future_s": 300.0}
POLICY = MaintenancePolicy(
    retention="5 days",
    rollup_retention="3 days",
    dedupe_horizon="30 days",
    quarantine_retention="90 days",
    batch_rows=10,
    **WINDOW,
)
SENSORS = (7, 8)


def hourly_block(now: datetime, days: int) -> ReadingBlock:
    """One reading per sensor and hour over the last ``days`` days."""
    end = datetime_to_us(now)
    times = np.arange(end - days * US_PER_DAY, end, 3600 * US_PER_S, dtype=np.int64)
    return ReadingBlock(
        np.repeat(times, len(SENSORS)),
        np.tile(np.array(SENSORS, np.int32), len(times)),
        np.linspace(60.0, 90.0, len(times) * len(SENSORS)),
    )


async def fill(url: str, schema: str, block: ReadingBlock, *, partitioned: bool = True) -> None:
    conn = await connect_async(url, schema, autocommit=True)
    async with conn:
        if partitioned:
            await ensure_day_partitions(conn, days_of(block.times_us))
        async with conn.transaction():
            await write_as_ingest(conn, block)


def add_messages(url: str, schema: str, ages: list[timedelta], first_seq: int = 0) -> None:
    with connect(url, schema, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ingested_messages (device_id, seq, readings, received_at) "
            "SELECT 1, s, 10, now() - a FROM unnest(%s::bigint[], %s::interval[]) AS t(s, a)",
            [list(range(first_seq, first_seq + len(ages))), ages],
        )


def partitions(url: str, schema: str) -> list[str]:
    with connect(url, schema, autocommit=True) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'readings'::regclass ORDER BY 1"
            )
        ]


def snapshot(url: str, schema: str) -> dict[str, Any]:
    with connect(url, schema, autocommit=True) as conn:
        counts = {
            table: conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()
            for table in ("readings", "readings_default", "readings_1m", "readings_1h")
        }
        counts["ingested_messages"] = conn.execute(
            "SELECT count(*) FROM ingested_messages"
        ).fetchone()
    return {"partitions": partitions(url, schema), **counts}


async def maintain(
    url: str, schema: str, policy: MaintenancePolicy = POLICY, *, dry_run: bool = False
) -> Any:
    conn = await connect_async(url, schema, autocommit=True)
    async with conn:
        return await run_maintenance(conn, policy, dry_run=dry_run)


def day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def test_whole_day_partitions_older_than_the_retention_go_and_the_window_stays(
    pg_url: str, schema: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    block = hourly_block(now, days=10)
    await fill(pg_url, schema, block)
    before = partitions(pg_url, schema)

    report = await maintain(pg_url, schema)

    assert report.acted
    assert not report.dry_run
    cutoff = report.readings_cutoff
    assert now - 5 * DAY <= cutoff < now - 5 * DAY + timedelta(minutes=5)
    # Exactly the partitions that end at or before the cutoff are gone, and every one of them.
    dropped = {p.name for p in report.partitions}
    assert dropped, "ten days of data with a five-day retention leave whole days to drop"
    assert all(p.end <= cutoff for p in report.partitions)
    after = partitions(pg_url, schema)
    assert set(before) - set(after) == dropped
    first_kept = day_start(cutoff)
    assert f"readings_p{first_kept:%Y%m%d}" in after, "the partition holding the cutoff stays"
    assert "readings_default" in after
    # Every reading of a kept partition is still there, so every reading inside the window is.
    keep = block.times_us >= datetime_to_us(first_kept)
    with connect(pg_url, schema, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT (extract(epoch FROM time) * 1000000)::bigint, sensor_id FROM readings "
            "ORDER BY 1, 2"
        ).fetchall()
    kept = zip(block.times_us[keep].tolist(), block.sensor_ids[keep].tolist(), strict=True)
    assert rows == sorted(kept)
    assert (min(t for t, _ in rows) < datetime_to_us(cutoff)) == bool(
        np.any(keep & (block.times_us < datetime_to_us(cutoff)))
    ), "readings of the kept day older than the cutoff stay with it"

    again = await maintain(pg_url, schema)
    assert again.partitions == []
    assert not again.removed_anything


async def test_minute_rollups_are_pruned_and_hourly_rollups_kept(pg_url: str, schema: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    await fill(pg_url, schema, hourly_block(now, days=6))
    hourly = scalar(pg_url, schema, "SELECT count(*) FROM readings_1h")
    minutes_before = scalar(pg_url, schema, "SELECT count(*) FROM readings_1m")
    expected = scalar(
        pg_url, schema, "SELECT count(*) FROM readings_1m WHERE bucket < now() - interval '3 days'"
    )
    assert 0 < expected < minutes_before

    report = await maintain(pg_url, schema)

    assert report.rows["readings_1m"] == expected
    assert report.statements["readings_1m"] == expected // POLICY.batch_rows + 1
    assert scalar(pg_url, schema, "SELECT count(*) FROM readings_1m") == minutes_before - expected
    assert scalar(pg_url, schema, "SELECT min(bucket) FROM readings_1m") >= report.rollup_cutoff
    assert scalar(pg_url, schema, "SELECT count(*) FROM readings_1h") == hourly


async def test_stray_rows_of_the_default_partition_are_deleted_too(
    pg_url: str, schema: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    old = ReadingBlock.from_rows([(now - 9 * DAY, 7, 1.0), (now - 8 * DAY, 7, 2.0)])
    recent = ReadingBlock.from_rows([(now - timedelta(hours=1), 7, 3.0)])
    await fill(pg_url, schema, old, partitioned=False)  # no partition: they land in the default
    await fill(pg_url, schema, recent)
    assert scalar(pg_url, schema, "SELECT count(*) FROM readings_default") == 2

    report = await maintain(pg_url, schema)

    assert report.rows["readings_default"] == 2
    assert scalar(pg_url, schema, "SELECT count(*) FROM readings") == 1


async def test_dedupe_records_older_than_the_horizon_go_in_batches(
    pg_url: str, schema: str
) -> None:
    add_messages(pg_url, schema, [40 * DAY + timedelta(minutes=i) for i in range(25)])
    add_messages(pg_url, schema, [29 * DAY, DAY, timedelta(0)], first_seq=100)

    report = await maintain(pg_url, schema)

    assert report.rows["ingested_messages"] == 25
    assert report.statements["ingested_messages"] == 3, "10 + 10 + 5 rows, one batch each"
    with connect(pg_url, schema, autocommit=True) as conn:
        left = [r[0] for r in conn.execute("SELECT seq FROM ingested_messages ORDER BY seq")]
    assert left == [100, 101, 102]


async def test_quarantined_messages_older_than_their_retention_go(pg_url: str, schema: str) -> None:
    with connect(pg_url, schema, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO quarantine (received_at, topic, reason, detail, payload_bytes) "
            "SELECT now() - a, 'qorgau/v1/e/d/readings', 'schema', 'test ' || a, 0 "
            "FROM unnest(%s::interval[]) AS t(a)",
            [[100 * DAY + timedelta(hours=i) for i in range(12)] + [89 * DAY, DAY]],
        )

    report = await maintain(pg_url, schema)

    assert report.rows["quarantine"] == 12
    assert report.statements["quarantine"] == 2, "10 + 2 rows, one batch each"
    assert scalar(pg_url, schema, "SELECT count(*) FROM quarantine") == 2
    kept = await maintain(pg_url, schema, replace(POLICY, quarantine_retention=None))
    assert "quarantine" not in kept.rows


def test_a_dry_run_lists_what_would_go_and_changes_nothing(
    pg_url: str, schema: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    asyncio.run(fill(pg_url, schema, hourly_block(now, days=10)))
    add_messages(pg_url, schema, [40 * DAY] * 3 + [DAY])
    before = snapshot(pg_url, schema)

    report = asyncio.run(maintain(pg_url, schema, dry_run=True))

    assert report.dry_run
    assert report.partitions
    assert report.rows["ingested_messages"] == 3
    assert report.rows["readings_1m"] > 0
    assert snapshot(pg_url, schema) == before

    for name, value in {
        "QORGAU_DATABASE_URL": pg_url,
        "QORGAU_DATABASE_SCHEMA": schema,
        "QORGAU_DB_RETENTION": "5 days",
        "QORGAU_DB_ROLLUP_RETENTION": "3 days",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["db", "prune", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run, nothing changed" in out
    assert (
        f"would drop {len(report.partitions)} day partitions ({len(report.partitions)} days)"
        in (out)
    )
    assert all(p.name in out for p in report.partitions)
    assert f"would delete {report.rows['readings_1m']:,} rows; hourly rollups are kept" in out
    assert "ingested_messages received more than 30 days ago" in out
    assert "would delete 3 rows" in out
    assert snapshot(pg_url, schema) == before

    assert main(["db", "prune"]) == 0
    assert "dropped" in capsys.readouterr().out
    assert snapshot(pg_url, schema) != before


async def test_two_runs_at_once_only_one_acts(pg_url: str, schema: str) -> None:
    add_messages(pg_url, schema, [40 * DAY] * 5)
    # Hold one expired row so that the first run, having taken the lock, stays in the middle.
    blocker = await connect_async(pg_url, schema)
    await blocker.execute("SELECT * FROM ingested_messages WHERE seq = 4 FOR UPDATE")
    first = asyncio.create_task(maintain(pg_url, schema))
    try:

        async def first_holds_the_lock() -> bool:
            return bool(
                scalar(
                    pg_url,
                    schema,
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND objid::int = hashtext(%s)",
                    [lock_key(schema)],
                )
            )

        await eventually(first_holds_the_lock, what="the first run to take the lock")
        second = await maintain(pg_url, schema)
        assert not second.acted
        assert not second.removed_anything
        assert scalar(pg_url, schema, "SELECT count(*) FROM ingested_messages") == 5
    finally:
        await blocker.rollback()
        await blocker.close()
    done = await asyncio.wait_for(first, 30)
    assert done.acted
    assert done.rows["ingested_messages"] == 5
    assert not await first_holds_the_lock()
    third = await maintain(pg_url, schema)
    assert third.acted, "the lock is released after a run"


async def test_a_partition_in_use_is_left_for_the_next_run(pg_url: str, schema: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    await fill(pg_url, schema, hourly_block(now, days=10))
    busy = f"readings_p{day_start(now - 8 * DAY):%Y%m%d}"
    reader = await connect_async(pg_url, schema)
    await reader.execute(f"LOCK TABLE {busy} IN ACCESS SHARE MODE")  # a long query, say
    try:
        report = await maintain(
            pg_url, schema, MaintenancePolicy(retention="5 days", lock_timeout_ms=50, **WINDOW)
        )
    finally:
        await reader.rollback()
        await reader.close()
    assert [p.name for p in report.busy_partitions] == [busy]
    assert busy not in {p.name for p in report.partitions}
    assert report.partitions, "the other expired partitions are dropped all the same"
    assert busy in partitions(pg_url, schema)
    later = await maintain(pg_url, schema, MaintenancePolicy(retention="5 days", **WINDOW))
    assert [p.name for p in later.partitions] == [busy]


async def test_readings_and_rollups_are_left_to_timescaledb(
    backend_schema: BackendSchema,
) -> None:
    """Both backends prune the dedupe records; only plain PostgreSQL drops readings here."""
    url, schema = backend_schema.url, backend_schema.schema
    now = datetime.now(UTC).replace(microsecond=0)
    conn = await connect_async(url, schema, autocommit=True)
    async with conn:
        block = hourly_block(now, days=10)
        await ensure_day_partitions(conn, days_of(block.times_us))
        async with conn.transaction():
            await write_readings(conn, block, backend=backend_schema.backend)
    add_messages(url, schema, [40 * DAY] * 2)
    readings = scalar(url, schema, "SELECT count(*) FROM readings")

    report = await maintain(url, schema)

    assert report.rows["ingested_messages"] == 2
    if backend_schema.backend == "timescale":
        assert report.readings_cutoff is None
        assert report.rollup_cutoff is None
        assert scalar(url, schema, "SELECT count(*) FROM readings") == readings
    else:
        assert report.partitions
        assert scalar(url, schema, "SELECT count(*) FROM readings") < readings


async def test_the_default_settings_keep_the_horizon_above_the_sample_window(
    pg_url: str, schema: str
) -> None:
    settings = IngestSettings(database_url=pg_url, database_schema=schema)
    policy = settings.ingest_maintenance_policy()
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        await check_dedupe_horizon(conn, policy)


@pytest.mark.parametrize(
    ("horizon", "max_past_s", "problem"),
    [
        ("7 days", 28 * 86_400.0, "must be longer than the sample window"),
        # Equal is not enough: a sample accepted at the last moment of its window would be too.
        ("28 days 00:05:00", 28 * 86_400.0, "must be longer than the sample window"),
        ("30 days", 400 * 86_400.0, "lower QORGAU_INGEST_MAX_PAST_S below 29.9965 days"),
        ("thirty days", 28 * 86_400.0, "is not a PostgreSQL interval"),
    ],
)
async def test_a_horizon_shorter_than_the_sample_window_is_refused(
    pg_url: str, schema: str, horizon: str, max_past_s: float, problem: str
) -> None:
    policy = MaintenancePolicy(dedupe_horizon=horizon, max_past_s=max_past_s, max_future_s=300.0)
    add_messages(pg_url, schema, [40 * DAY])
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        with pytest.raises(ConfigurationError, match="QORGAU_DB_DEDUPE_HORIZON") as refused:
            await check_dedupe_horizon(conn, policy)
        assert problem in str(refused.value)
        with pytest.raises(ConfigurationError):
            await run_maintenance(conn, policy)
    assert scalar(pg_url, schema, "SELECT count(*) FROM ingested_messages") == 1


def test_the_commands_refuse_a_horizon_shorter_than_the_sample_window(
    pg_url: str, schema: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QORGAU_DATABASE_URL", pg_url)
    monkeypatch.setenv("QORGAU_DATABASE_SCHEMA", schema)
    monkeypatch.setenv("QORGAU_DB_DEDUPE_HORIZON", "30 days")
    monkeypatch.setenv("QORGAU_INGEST_MAX_PAST_S", str(60 * 86_400))
    # Unreachable broker: the worker must stop on the settings before it gets that far.
    monkeypatch.setenv("QORGAU_MQTT_URL", "mqtt://127.0.0.1:9")
    for argv in (["db", "prune"], ["ingest", "--no-upgrade"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "QORGAU_DB_DEDUPE_HORIZON='30 days'" in err
        assert "QORGAU_INGEST_MAX_PAST_S" in err


def test_a_concurrent_copy_into_todays_partition_does_not_block_the_drop(
    pg_url: str, schema: str
) -> None:
    """Dropping an old day needs the parent's lock, which an open COPY into another partition
    holds: the drop gives up after the lock timeout instead of stalling ingest behind it."""
    now = datetime.now(UTC).replace(microsecond=0)
    asyncio.run(fill(pg_url, schema, hourly_block(now, days=10)))
    with psycopg.connect(pg_url, options=f"-c search_path={schema}") as writer:
        writer.execute("INSERT INTO readings VALUES (now(), 7, 1.0)")  # transaction left open
        report = asyncio.run(
            maintain(
                pg_url, schema, MaintenancePolicy(retention="5 days", lock_timeout_ms=50, **WINDOW)
            )
        )
        assert report.partitions == []
        assert report.busy_partitions
        writer.rollback()
