"""Helpers shared by integration tests."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from store.connection import connect
from store.migrate import current_backend_async
from store.readings import ReadingBlock
from store.writes import write_readings

# scripts/test --fast sets QORGAU_TEST_FAST=1: the unit layer, run after each small change,
# tries each costly property on a sample of its examples; the whole suite tries them all.
FAST_LAYER = os.environ.get("QORGAU_TEST_FAST") == "1"


def examples(full: int, fast: int = 40) -> int:
    """Hypothesis examples for a property: ``full`` in the whole suite, at most ``fast`` in the
    fast unit layer."""
    return min(full, fast) if FAST_LAYER else full


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout_s: float = 20.0,
    interval_s: float = 0.1,
    what: str = "condition",
) -> None:
    """Poll ``check`` until it is true; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(interval_s)


def scalar(url: str, schema: str, query: str, params: list[Any] | None = None) -> Any:
    with connect(url, schema, autocommit=True) as conn:
        row = conn.execute(query, params or []).fetchone()
        return row[0] if row else None


def rows(url: str, schema: str, query: str, params: list[Any] | None = None) -> list[Any]:
    with connect(url, schema, autocommit=True) as conn:
        return conn.execute(query, params or []).fetchall()


def count_readings(url: str, schema: str) -> int:
    try:
        return int(scalar(url, schema, "SELECT count(*) FROM readings"))
    except psycopg.OperationalError:
        return -1


def wait_until(
    check: Callable[[], bool], what: str = "condition", *, timeout_s: float = 15.0
) -> None:
    """Blocking ``eventually`` for code outside an event loop."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.02)


async def write_as_ingest(conn: AsyncConnection[Any], block: ReadingBlock) -> int:
    """Store ``block`` in the caller's transaction as ingest would on this schema's backend
    (plain PostgreSQL: readings and rollup tables; TimescaleDB: the hypertable, which its
    continuous aggregates follow). Create day partitions first, outside the transaction."""
    return await write_readings(conn, block, backend=await current_backend_async(conn))


def schema_jobs(conn: psycopg.Connection[Any], schema: str) -> list[int]:
    """TimescaleDB background jobs of ``schema`` (none on plain PostgreSQL)."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is None:
        return []
    found = conn.execute(
        "SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_schema = %s "
        "ORDER BY job_id",
        [schema],
    ).fetchall()
    return [int(r[0]) for r in found]


def pause_jobs(url: str, schema: str) -> list[int]:
    """Unschedule the schema's TimescaleDB jobs (a refresh in the middle of a test moves the
    continuous aggregates' watermark, after which rows written below it stay out of the
    rollups until the next refresh). Tests run a job when they mean to: ``run_job``."""
    with psycopg.connect(url, autocommit=True) as conn:
        jobs = schema_jobs(conn, schema)
        for job in jobs:
            conn.execute("SELECT alter_job(%s, scheduled => false)", [job])
    return jobs


def run_job(url: str, job_id: int) -> None:
    """Run one TimescaleDB job now, in this session (``CALL run_job``)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CALL run_job(%s)", [job_id])


def drop_schema(url: str, schema: str, *, attempts: int = 10) -> None:
    """Drop a test's schema. On TimescaleDB a refresh job may be running against it: its jobs
    are unscheduled first, and a drop that deadlocks with a running job is tried again."""
    pause_jobs(url, schema)
    for attempt in range(attempts):
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
            return
        except (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def break_compression_job(url: str, schema: str) -> int:
    """Give the schema's compression job a config it cannot run with and have the scheduler
    run it now; returns its id."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT job_id, config FROM timescaledb_information.jobs "
            "WHERE hypertable_schema = %s AND proc_name = 'policy_compression'",
            [schema],
        ).fetchone()
        assert row is not None
        config = {**row[1], "compress_after": "not an interval"}
        conn.execute(
            "SELECT alter_job(%s, config => %s::jsonb, scheduled => true, next_start => now())",
            [row[0], json.dumps(config)],
        )
    return int(row[0])


async def assess_now(url: str, schema: str, norms_profile: str = "default") -> int:
    """One pass of the assessment service over everything stored since its last pass (what
    ``qorgau assessments run`` does every few seconds); returns the shifts written."""
    from analytics import load_norms
    from application.assessment_service import AssessmentService
    from application.settings import AssessmentSettings
    from store.connection import connect_async

    settings = AssessmentSettings(
        database_url=url, database_schema=schema, norms_profile=norms_profile
    )
    service = AssessmentService(settings, load_norms(norms_profile))
    written = 0
    async with await connect_async(url, schema, autocommit=True) as conn:
        while True:
            result = await service.pass_once(conn)
            written += result.shifts_written
            if result.changes < settings.assess_batch_changes:
                return written
