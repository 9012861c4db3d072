"""TimescaleDB's background jobs of a schema, and which of them fail.

The policies of ``store.policies`` run as TimescaleDB jobs: compression, retention and the
refresh of the continuous aggregates. A job that keeps failing fails quietly (the readings are
still stored, but the rollups fall behind or chunks are never compressed or dropped), so the
maintenance job reads their state from ``timescaledb_information.job_stats`` and ingest shows
the failing ones on ``/health`` and as a metric (docs/operations.md, "Background jobs").

On PostgreSQL 15.20 with TimescaleDB 2.28.3 every job run by the scheduler ends with ``cannot
drop portal "" while it is being set up`` (SQLSTATE 24000) after its work has committed, and
the scheduler then backs off; ``CALL run_job(id)`` in a session works. That is reported as
failing here too, because from the outside it cannot be told apart from a real failure: the
remedy is the PostgreSQL minor version (or running the jobs from cron with ``CALL run_job``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from store.migrate import current_backend_async


@dataclass(frozen=True, slots=True)
class JobState:
    """One background job of the schema and how its latest run went."""

    job_id: int
    proc_name: str  # policy_refresh_continuous_aggregate, policy_compression, policy_retention
    relation: str  # the hypertable or continuous aggregate it works on
    last_run_status: str | None  # Success, Failed; None before its first run
    total_failures: int
    last_success: datetime | None
    last_error: str | None  # the message of its latest failure, if any is recorded

    @property
    def failing(self) -> bool:
        return self.last_run_status == "Failed"

    def describe(self) -> str:
        since = (
            "never succeeded"
            if self.last_success is None
            else f"last success {self.last_success.isoformat(timespec='seconds')}"
        )
        return (
            f"job {self.job_id} {self.proc_name} on {self.relation}: {self.total_failures} "
            f"failures, {since}; latest error: {self.last_error or 'not recorded'}"
        )


async def background_jobs(conn: AsyncConnection[Any]) -> list[JobState]:
    """The TimescaleDB jobs of the connection's schema (none on plain PostgreSQL)."""
    if await current_backend_async(conn) != "timescale":
        return []
    cur = await conn.execute(
        """
        SELECT j.job_id, j.proc_name, j.hypertable_name, s.last_run_status,
               coalesce(s.total_failures, 0),
               CASE WHEN isfinite(s.last_successful_finish) THEN s.last_successful_finish END,
               (SELECT e.err_message FROM timescaledb_information.job_errors e
                WHERE e.job_id = j.job_id ORDER BY e.start_time DESC LIMIT 1)
        FROM timescaledb_information.jobs j
        LEFT JOIN timescaledb_information.job_stats s USING (job_id)
        WHERE j.hypertable_schema = current_schema()
        ORDER BY j.job_id
        """
    )
    return [
        JobState(
            job_id=int(row[0]),
            proc_name=str(row[1]),
            relation=str(row[2]),
            last_run_status=row[3],
            total_failures=int(row[4]),
            last_success=row[5],
            last_error=row[6],
        )
        for row in await cur.fetchall()
    ]
