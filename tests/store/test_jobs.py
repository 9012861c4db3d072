"""TimescaleDB's background jobs as the maintenance job reports them: every policy of the schema
is listed, and a job whose runs fail is reported failing with its error, for ``qorgau db prune``
and ingest's /health to show."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from store.connection import connect_async
from store.jobs import background_jobs
from store.maintenance import describe, run_maintenance
from store.policies import MaintenancePolicy
from tests.store.conftest import BackendSchema
from tests.support import break_compression_job, eventually

pytestmark = [pytest.mark.anyio, pytest.mark.services]


async def test_the_schemas_jobs_are_listed_and_a_failing_one_is_reported(
    backend_schema: BackendSchema,
) -> None:
    url, schema = backend_schema.url, backend_schema.schema
    conn = await connect_async(url, schema, autocommit=True)
    async with conn:
        jobs = await background_jobs(conn)
        if backend_schema.backend == "plain":
            assert jobs == []
            report = await run_maintenance(conn, MaintenancePolicy())
            assert report.failing_jobs == []
            return
        assert sorted((j.proc_name, j.relation) for j in jobs) == [
            ("policy_compression", "readings"),
            ("policy_refresh_continuous_aggregate", "readings_1h"),
            ("policy_refresh_continuous_aggregate", "readings_1m"),
        ]
        broken = break_compression_job(url, schema)

        async def reported() -> bool:
            return any(j.job_id == broken and j.failing for j in await background_jobs(conn))

        await eventually(reported, timeout_s=60, what="the scheduler to run the broken job")
        report = await run_maintenance(conn, MaintenancePolicy())
    # Others may fail too: on PostgreSQL 15.20 every job the scheduler ran between the upgrade
    # and the pause reports a failure.
    (failing,) = (job for job in report.failing_jobs if job.job_id == broken)
    assert failing.total_failures >= 1
    assert failing.last_success is None
    assert failing.last_error is not None
    assert "not an interval" in failing.last_error
    lines = describe(report, MaintenancePolicy())
    assert any(line.startswith("TimescaleDB job failing: job ") for line in lines)
    assert any("not an interval" in line for line in lines)


@pytest.mark.background_jobs
async def test_live_jobs_materialize_the_minute_rollups(backend_schema: BackendSchema) -> None:
    """With the jobs left scheduled, TimescaleDB's scheduler itself refreshes the rollups (on
    PostgreSQL 15.20 it then reports the run failed, but the work is committed)."""
    if backend_schema.backend != "timescale":
        pytest.skip("TimescaleDB-only: plain PostgreSQL has no background jobs")
    url, schema = backend_schema.url, backend_schema.schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.readings SELECT t, 1, 1.0 FROM generate_series("
                "now() - interval '3 hours', now() - interval '2 hours', interval '1 second') t"
            ).format(sql.Identifier(schema))
        )
        table = conn.execute(
            "SELECT materialization_hypertable_schema, materialization_hypertable_name "
            "FROM timescaledb_information.continuous_aggregates "
            "WHERE view_schema = %s AND view_name = 'readings_1m'",
            [schema],
        ).fetchone()
        (job,) = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_schema = %s "
            "AND hypertable_name = 'readings_1m'",
            [schema],
        ).fetchone() or (None,)
        assert table is not None
        assert job is not None
        # Due now rather than within its one-minute schedule, to keep the test short.
        conn.execute("SELECT alter_job(%s, next_start => now())", [job])

    def materialized() -> int:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*table))
            ).fetchone()
        return int(row[0]) if row else 0

    await eventually(lambda: materialized() == 61, timeout_s=90, what="the scheduler's refresh")
