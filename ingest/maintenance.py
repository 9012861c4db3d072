"""Retention and dedupe pruning, run by every worker now and then (the advisory lock in
``store.maintenance.run_maintenance`` lets one act at a time), and the check, before a worker
subscribes, that the settings cannot make pruning break exactly-once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ingest.metrics import IngestMetrics
from ingest.settings import IngestSettings
from store.connection import DatabaseError, connect_async, is_connection_problem
from store.maintenance import MaintenanceReport, run_maintenance
from store.policies import check_dedupe_horizon

log = logging.getLogger(__name__)


async def check_settings(settings: IngestSettings) -> None:
    """Refuse, before subscribing, settings under which pruning could break exactly-once
    (``ConfigurationError``). With the database away the worker starts anyway: it waits for
    the database to write, and the maintenance job checks again before it prunes anything."""
    try:
        conn = await connect_async(settings.database_url, settings.database_schema, autocommit=True)
    except DatabaseError as exc:
        log.warning("settings not checked against the database yet (%s)", str(exc).strip())
        return
    async with conn:
        await check_dedupe_horizon(conn, settings.ingest_maintenance_policy())


async def maintenance_loop(
    settings: IngestSettings,
    metrics: IngestMetrics,
    failing_jobs: Callable[[tuple[str, ...]], None],
) -> None:
    """Run the maintenance job now and then every ``QORGAU_DB_MAINTENANCE_INTERVAL_S``; tell
    ``failing_jobs`` which TimescaleDB jobs failed their latest run, after every run."""
    policy = settings.ingest_maintenance_policy()
    while True:
        try:
            conn = await connect_async(
                settings.database_url, settings.database_schema, autocommit=True
            )
            async with conn:
                report = await run_maintenance(conn, policy)
        # Whatever went wrong, pruning is retried at the next interval: it must never stop
        # ingest, and the failure is logged and counted.
        except Exception as exc:  # noqa: BLE001
            metrics.maintenance_runs.labels("failed").inc()
            log.log(
                logging.WARNING if is_connection_problem(exc) else logging.ERROR,
                "maintenance job failed (%s); next try in %g s",
                str(exc).strip() or type(exc).__name__,
                settings.db_maintenance_interval_s,
            )
        else:
            failing_jobs(_report(report, metrics))
        await asyncio.sleep(settings.db_maintenance_interval_s)


def _report(report: MaintenanceReport, metrics: IngestMetrics) -> tuple[str, ...]:
    failing = tuple(job.describe() for job in report.failing_jobs)
    metrics.db_jobs_failing.set(len(failing))
    for job in failing:
        log.warning("TimescaleDB background %s", job)
    if report.acted:
        metrics.maintenance_runs.labels("done").inc()
        removed = metrics.maintenance_removed
        removed.labels("partitions").inc(len(report.partitions))
        for table, rows in report.rows.items():
            removed.labels(table).inc(rows)
    else:
        metrics.maintenance_runs.labels("skipped").inc()
        log.debug("maintenance: another worker holds the lock")
    return failing
