"""TimescaleDB's background jobs as the maintenance job reports them: every policy of the schema
is listed, and a job whose runs fail is reported failing with its error, for ``qorgau db prune``
and ingest's /health to show."""

from __future__ import annotations

import pytest

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
        assert not any(j.failing for j in jobs), "paused jobs have not run"
        broken = break_compression_job(url, schema)

        async def reported() -> bool:
            return any(j.job_id == broken and j.failing for j in await background_jobs(conn))

        await eventually(reported, timeout_s=60, what="the scheduler to run the broken job")
        report = await run_maintenance(conn, MaintenancePolicy())
    (failing,) = report.failing_jobs
    assert failing.job_id == broken
    assert failing.total_failures >= 1
    assert failing.last_success is None
    assert failing.last_error is not None
    assert "not an interval" in failing.last_error
    lines = describe(report, MaintenancePolicy())
    assert any(line.startswith("TimescaleDB job failing: job ") for line in lines)
    assert any("not an interval" in line for line in lines)
