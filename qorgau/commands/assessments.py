"""``qorgau assessments``: keep the stored shift assessments current, or rebuild them."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from qorgau.runtime import settings_help

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from application.assessment_service import AssessmentService


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from application.settings import AssessmentSettings

    parser = subparsers.add_parser(
        "assessments",
        help="stored shift assessments: run the service, rebuild",
        description="Every surface (API, map, exports, reports, dashboard, Grafana) reads a "
        "workplace's shifts from the stored assessments; this keeps them current.",
    )
    sub = parser.add_subparsers(title="actions", metavar="ACTION")
    run = sub.add_parser(
        "run",
        help="the assessment service: assess shifts as readings arrive (until SIGTERM)",
        description="Watch what ingest stores and assess the shifts it falls in: a running "
        "shift is stored again within QORGAU_ASSESS_INTERVAL_S of new readings, a late reading "
        "recomputes its own shift, ended shifts become provisional and, once ingest no longer "
        "accepts readings for them, final. Safe to start on several machines: one works, the "
        "others wait as standbys.",
        epilog=settings_help(AssessmentSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--no-upgrade", action="store_true", help="do not apply schema migrations at start"
    )
    run.set_defaults(handler=_run)
    rebuild = sub.add_parser(
        "rebuild",
        help="assess every shift again (after a change of norms profile or version)",
        description="Assess every shift of every workplace with data since --since again and "
        "replace what is stored, with a progress bar. Run it after changing "
        "QORGAU_NORMS_PROFILE or the profile's file; the service may keep running meanwhile.",
        # The service's own pacing and metrics endpoint play no part in a rebuild.
        epilog=settings_help(
            AssessmentSettings,
            only=set(AssessmentSettings.model_fields)
            - {
                "assess_interval_s",
                "assess_batch_changes",
                "assess_metrics_port",
                "assess_metrics_host",
            },
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rebuild.add_argument(
        "--since",
        type=dt.date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="first local date to assess (default: the oldest hourly rollup)",
    )
    rebuild.add_argument(
        "--workplace", type=int, action="append", metavar="ID", help="only this workplace (repeat)"
    )
    rebuild.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="processes that assess in parallel (default: one a CPU core)",
    )
    rebuild.add_argument("--quiet", action="store_true", help="no progress bar")
    rebuild.set_defaults(handler=_rebuild)

    def usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(handler=usage)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from analytics import load_norms
    from application.assessment_service import AssessmentService
    from application.settings import AssessmentSettings
    from ingest.http import serve_http
    from qorgau.runtime import load_settings, run_until_signal, setup_logging
    from store.migrate import upgrade_from_settings

    setup_logging()
    settings = load_settings(AssessmentSettings)
    norms = load_norms(settings.norms_profile)
    if not args.no_upgrade:
        upgrade_from_settings(settings)

    async def main(stop: asyncio.Event) -> None:
        service = AssessmentService(settings, norms)
        server = None
        if settings.assess_metrics_port:
            server = await serve_http(
                settings.assess_metrics_host,
                settings.assess_metrics_port,
                _registry(service),
                service.status,
            )
        try:
            await service.run(stop)
        finally:
            if server is not None:
                server.close()
                await server.wait_closed()

    return run_until_signal(main)


def _registry(service: AssessmentService) -> CollectorRegistry:
    """Prometheus metrics read from the service's status at each scrape."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector

    class Status(Collector):
        def collect(self) -> Iterator[Metric]:
            s = service.status()
            yield GaugeMetricFamily(
                "qorgau_assessments_leader",
                "1 while this service keeps the assessments",
                value=float(s.leader),
            )
            yield GaugeMetricFamily(
                "qorgau_assessments_lag_seconds",
                "age of the oldest change applied by the last pass (reading commit → stored)",
                value=float("nan") if s.last_lag_s is None else s.last_lag_s,
            )
            yield CounterMetricFamily(
                "qorgau_assessments_shifts_written",
                "shift assessments stored",
                value=float(s.shifts_written),
            )
            yield CounterMetricFamily(
                "qorgau_assessments_errors", "database outages met", value=float(s.errors)
            )

    registry = CollectorRegistry()
    registry.register(Status())
    return registry


def _rebuild(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from analytics import load_norms
    from application.assessment_service import rebuild_in_processes
    from application.settings import AssessmentSettings
    from qorgau.runtime import load_settings, setup_logging
    from store.migrate import upgrade_from_settings

    setup_logging()
    settings = load_settings(AssessmentSettings)
    norms = load_norms(settings.norms_profile)
    upgrade_from_settings(settings)
    started = time.monotonic()
    with tqdm(unit=" shifts", disable=args.quiet, desc="assessing") as bar:
        workplaces, shifts = rebuild_in_processes(
            settings,
            since=args.since,
            workplace_ids=args.workplace,
            jobs=max(args.jobs, 1),
            progress=bar.update,
        )
    took = time.monotonic() - started
    print(
        f"{shifts} shift(s) of {workplaces} workplace(s) stored with norms "
        f"{norms.name} {norms.version} in {took:.1f} s ({shifts / max(took, 1e-9):.0f} shifts/s)"
    )
    return 0
