"""``qorgau demo``: everything at once on embedded defaults."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from api.settings import ApiSettings
    from qorgau.runtime import settings_help

    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline locally: database, broker, ingest, API, a simulated device",
        description="Start PostgreSQL and Mosquitto privately (unless QORGAU_DATABASE_URL / "
        "QORGAU_MQTT_URL point at existing ones), apply the schema, and run ingest, the API and "
        "one simulated device with noise, CO, H2S, dust and vibration channels at 1 Hz. "
        "Ctrl-C or SIGTERM stops everything cleanly. While it runs, the addresses of its "
        "database and broker are in DATA_DIR/qorgau.env, which the other qorgau commands run in "
        "the same folder read.",
        epilog=settings_help(ApiSettings, only=("database_url", "mqtt_url", "api_port")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".qorgau/demo"),
        help="where the private database, broker and edge outbox keep their data [.qorgau/demo]",
    )
    parser.add_argument("--port", type=int, default=None, help="API port [8000, or a free one]")
    # The demo starts its own servers: a settings file left by an earlier demo must not point it
    # at servers that are gone.
    parser.set_defaults(handler=_run, reads_env_file=False)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from qorgau.demo import run_demo
    from qorgau.runtime import run_until_signal, setup_logging

    setup_logging()
    data_dir: Path = args.data_dir.resolve()

    async def main(stop: asyncio.Event) -> None:
        await run_demo(stop, data_dir, api_port=args.port)

    return run_until_signal(main)
