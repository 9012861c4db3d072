"""Late data on TimescaleDB: a reading as old as ingest accepts reaches the rollups at the next
refresh, because the refresh look-back must cover ingest's sample window; a shorter look-back
(which ``check_policies`` refuses) would leave it out of the rollups for good."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from ingest.settings import IngestSettings
from qorgau.cli import main
from store.connection import DatabaseError, connect, connect_async
from store.migrate import upgrade
from store.policies import StoragePolicies, apply_timescale_policies
from store.readings import ReadingBlock
from store.writes import write_readings
from tests.store.conftest import timescale_missing_reason
from tests.support import drop_schema, pause_jobs, run_job, schema_jobs

pytestmark = [pytest.mark.anyio, pytest.mark.services, pytest.mark.timescale]

SENSOR = 31
# Ingest's defaults (28 days back, 300 s ahead) and policies that keep raw readings 60 days.
SETTINGS = IngestSettings(db_retention="60 days", db_rollup_refresh_lookback="29 days")


@pytest.fixture
def timescale_schema(pg_url: str) -> Iterator[str]:
    reason = timescale_missing_reason(pg_url)
    if reason:
        pytest.skip(reason)
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        upgrade(pg_url, name, timescale="on", policies=SETTINGS.storage_policies())
    except DatabaseError as exc:
        pytest.skip(f"TimescaleDB cannot be enabled on the test server: {exc}")
    pause_jobs(pg_url, name)  # run below, when the test says
    yield name
    drop_schema(pg_url, name)


def refresh_jobs(url: str, schema: str) -> list[int]:
    """The refresh jobs of the minute rollups, then of the hourly ones (made of minutes)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_schema = %s "
            "AND proc_name = 'policy_refresh_continuous_aggregate' ORDER BY hypertable_name DESC",
            [schema],
        ).fetchall()
        jobs = [int(r[0]) for r in rows]
        assert len(jobs) == 2
        assert set(jobs) <= set(schema_jobs(conn, schema))
    return jobs


def refresh(url: str, schema: str) -> None:
    for job in refresh_jobs(url, schema):  # readings_1m, then readings_1h
        run_job(url, job)


async def write(url: str, schema: str, rows: list[tuple[datetime, int, float]]) -> None:
    conn = await connect_async(url, schema, autocommit=True)
    async with conn, conn.transaction():
        await write_readings(conn, ReadingBlock.from_rows(rows), backend="timescale")


def counted(url: str, schema: str, view: str, at: datetime) -> int:
    """Samples of SENSOR the rollup ``view`` holds in the bucket of ``at``."""
    width = "1 minute" if view == "readings_1m" else "1 hour"
    with connect(url, schema, autocommit=True) as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT coalesce(sum(n), 0) FROM {} "
                "WHERE sensor_id = %s AND bucket = time_bucket(%s::interval, %s::timestamptz)"
            ).format(sql.Identifier(view)),
            [SENSOR, width, at],
        ).fetchone()
    return int(row[0]) if row else 0


def now_s() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.mark.parametrize("age", [timedelta(days=3), timedelta(days=10)])
async def test_a_late_reading_reaches_the_rollups_at_the_next_refresh(
    pg_url: str, timescale_schema: str, age: timedelta
) -> None:
    """3 days: an uncompressed chunk; 10 days: a chunk compressed before the reading came."""
    now = now_s()
    late_at = now - age
    # History around the late reading's time and up to now, materialized by the refresh jobs,
    # so that the late reading lands below the rollups' watermark.
    await write(pg_url, timescale_schema, [(late_at - timedelta(minutes=5), SENSOR, 60.0)])
    await write(pg_url, timescale_schema, [(now - timedelta(minutes=10), SENSOR, 61.0)])
    refresh(pg_url, timescale_schema)
    if age > timedelta(days=7):
        with connect(pg_url, timescale_schema, autocommit=True) as conn:
            conn.execute(
                "SELECT compress_chunk(c) FROM show_chunks('readings', older_than => %s) c",
                [now - timedelta(days=7)],
            )
            compressed = conn.execute(
                "SELECT count(*) FROM timescaledb_information.chunks "
                "WHERE hypertable_schema = %s AND is_compressed",
                [timescale_schema],
            ).fetchone()
        assert compressed == (1,)
    assert counted(pg_url, timescale_schema, "readings_1m", late_at) == 0

    await write(pg_url, timescale_schema, [(late_at, SENSOR, 70.0), (late_at, SENSOR + 1, 1.0)])
    # Below the watermark a late reading waits for the next refresh (one minute by default).
    assert counted(pg_url, timescale_schema, "readings_1m", late_at) == 0
    refresh(pg_url, timescale_schema)

    assert counted(pg_url, timescale_schema, "readings_1m", late_at) == 1
    earlier = late_at - timedelta(minutes=5)  # the history written first
    same_hour = earlier.replace(minute=0, second=0) == late_at.replace(minute=0, second=0)
    assert counted(pg_url, timescale_schema, "readings_1h", late_at) == 1 + same_hour


async def test_a_look_back_shorter_than_the_sample_window_would_lose_it(
    pg_url: str, timescale_schema: str
) -> None:
    """What the check prevents: with a 2-day look-back, a 3-day-old reading never arrives."""
    window_s = SETTINGS.ingest_max_past_s + SETTINGS.ingest_max_future_s
    short = StoragePolicies(retention="60 days", refresh_lookback="2 days")
    with connect(pg_url, timescale_schema, autocommit=True) as conn:
        with pytest.raises(DatabaseError, match="shorter than the sample window ingest accepts"):
            apply_timescale_policies(conn, replace(short, sample_window_s=window_s))
        apply_timescale_policies(conn, short)  # the window unknown: nothing to check against
    pause_jobs(pg_url, timescale_schema)
    now = now_s()
    late_at = now - timedelta(days=3)
    await write(pg_url, timescale_schema, [(now - timedelta(minutes=10), SENSOR, 61.0)])
    refresh(pg_url, timescale_schema)
    await write(pg_url, timescale_schema, [(late_at, SENSOR, 70.0)])
    refresh(pg_url, timescale_schema)
    assert counted(pg_url, timescale_schema, "readings_1m", late_at) == 0
    with connect(pg_url, timescale_schema, autocommit=True) as conn:
        stored = conn.execute("SELECT count(*) FROM readings WHERE time = %s", [late_at]).fetchone()
    assert stored == (1,), "stored, yet missing from the rollups"


def test_the_ingest_settings_bound_the_look_back_by_their_sample_window() -> None:
    settings = IngestSettings(ingest_max_past_s=3 * 86_400.0, ingest_max_future_s=60.0)
    assert settings.storage_policies().sample_window_s == 3 * 86_400.0 + 60.0
    assert SETTINGS.storage_policies().refresh_lookback == "29 days"


def test_db_upgrade_refuses_a_look_back_shorter_than_ingests_sample_window(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = timescale_missing_reason(pg_url)
    if reason:
        pytest.skip(reason)
    name = f"t_{uuid.uuid4().hex[:12]}"
    for variable, value in {
        "QORGAU_DATABASE_URL": pg_url,
        "QORGAU_DATABASE_SCHEMA": name,
        "QORGAU_DB_TIMESCALE": "on",
        "QORGAU_DB_RETENTION": "60 days",
        "QORGAU_DB_ROLLUP_REFRESH_LOOKBACK": "2 days",
    }.items():
        monkeypatch.setenv(variable, value)
    try:
        assert main(["db", "upgrade"]) == 1
        err = capsys.readouterr().err
        assert "QORGAU_DB_ROLLUP_REFRESH_LOOKBACK='2 days'" in err
        assert "QORGAU_INGEST_MAX_PAST_S" in err
        monkeypatch.setenv("QORGAU_INGEST_MAX_PAST_S", str(86_400))
        assert main(["db", "upgrade"]) == 0, capsys.readouterr().err
    finally:
        drop_schema(pg_url, name)
