"""``qorgau alerts``: the streaming alert engine."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ingest.alerting.settings import AlertsSettings
    from qorgau.runtime import settings_help

    parser = subparsers.add_parser(
        "alerts",
        help="run the alert engine (MQTT readings → detectors → alerts)",
        description="Subscribe to every device's readings and status on a non-shared persistent "
        "subscription, run the early-warning detectors and publish alerts to "
        "{prefix}/v1/{enterprise}/alerts/{kind}, store them and push them to webhooks. Run one "
        "per broker (it needs every reading of a sensor), or several that each own a disjoint "
        "set of enterprises (QORGAU_ALERTS_ENTERPRISES); an engine refuses to start while a "
        "live one owns some of its enterprises. Stops cleanly on SIGTERM.",
        epilog=settings_help(AlertsSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--no-upgrade", action="store_true", help="do not apply schema migrations at start"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from ingest import gc_policy
    from ingest.alerting.service import AlertService
    from ingest.alerting.settings import AlertsSettings
    from qorgau.runtime import load_settings, run_until_signal, setup_logging
    from store.migrate import upgrade_from_settings

    setup_logging()
    settings = load_settings(AlertsSettings)
    if not args.no_upgrade:
        upgrade_from_settings(settings)

    async def main(stop: asyncio.Event) -> None:
        service = AlertService(settings)
        if settings.alerts_metrics_port:
            from prometheus_client import start_http_server

            start_http_server(settings.alerts_metrics_port, registry=service.metrics.registry)

        async def settle() -> None:
            # Once the registry and open alerts are loaded: they stay for the process's life.
            await service.ready.wait()
            gc_policy.settle_after_startup()

        settling = asyncio.create_task(settle())
        try:
            await service.run(stop)
        finally:
            settling.cancel()

    return run_until_signal(main)
