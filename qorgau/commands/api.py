"""``qorgau api``: the HTTP API and dashboard."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from api.settings import ApiSettings
    from qorgau.runtime import settings_help

    parser = subparsers.add_parser(
        "api",
        help="serve the HTTP API and dashboard",
        description="Serve Qorgau's HTTP API (OpenAPI at /docs).",
        epilog=settings_help(ApiSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.settings import ApiSettings
    from dashboards.reports import render as render_report
    from qorgau.runtime import load_settings, setup_logging

    setup_logging()
    settings = load_settings(ApiSettings)
    uvicorn.run(
        create_app(settings, render_report=render_report),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    return 0
