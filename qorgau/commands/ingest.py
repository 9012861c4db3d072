"""``qorgau ingest``: the broker → database worker."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ingest.settings import IngestSettings
    from qorgau.runtime import settings_help

    parser = subparsers.add_parser(
        "ingest",
        help="run an ingest worker (broker → validation → PostgreSQL)",
        description="Subscribe to every device's readings on a shared subscription, validate "
        "them, quarantine what is bad, and store the rest exactly once. Start several with "
        "different QORGAU_INGEST_CLIENT_ID to share the load, and keep each id stable across "
        "restarts: the broker keeps a worker's share of messages for its id. Stops cleanly on "
        "SIGTERM. With QORGAU_INGEST_METRICS_PORT set, serves /metrics and /health. With "
        "QORGAU_BROKER=rabbitmq, the workers read a RabbitMQ quorum queue over AMQP instead "
        "(declared by the worker; see docs/operations.md).",
        epilog=settings_help(IngestSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--no-upgrade", action="store_true", help="do not apply schema migrations at start"
    )
    parser.add_argument(
        "--retire",
        action="store_true",
        help="drain this QORGAU_INGEST_CLIENT_ID's broker session and delete it, then exit: for a "
        "worker that is removed for good (run while other workers are up)",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=5.0,
        help="with --retire: the session counts as drained after this long without a message",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    from ingest import gc_policy
    from ingest.http import serve_http
    from ingest.service import make_worker
    from ingest.settings import IngestSettings
    from qorgau.runtime import load_settings, run_until_signal, setup_logging
    from store.migrate import upgrade_from_settings

    setup_logging()
    settings = load_settings(IngestSettings)
    if not args.no_upgrade:
        upgrade_from_settings(settings)

    async def main(stop: asyncio.Event) -> None:
        worker = make_worker(settings)
        server = None
        if settings.ingest_metrics_port:
            server = await serve_http(
                settings.ingest_metrics_host,
                settings.ingest_metrics_port,
                worker.metrics.registry,
                worker.status,
            )
        try:
            if args.retire:
                retiring = asyncio.create_task(worker.retire(idle_s=args.idle_seconds))
                halted = asyncio.create_task(stop.wait())
                await asyncio.wait({retiring, halted}, return_when=asyncio.FIRST_COMPLETED)
                halted.cancel()
                if not retiring.done():  # interrupted: the session stays, nothing is lost
                    retiring.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await retiring
                else:
                    retiring.result()
            else:
                gc_policy.settle_after_startup()
                await worker.run(stop)
        finally:
            if server is not None:
                server.close()
                await server.wait_closed()

    return run_until_signal(main)
