"""``qorgau dashboards``: publish the Grafana dashboards to a Grafana server."""

from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from qorgau.runtime import CONNECTION_SETTINGS, settings_help
    from store.settings import DatabaseSettings

    parser = subparsers.add_parser(
        "dashboards",
        help="Grafana dashboards: publish them to a Grafana server",
        description="The dashboards in dashboards/grafana/*.json (PostgreSQL/TimescaleDB panels "
        "over the rollups, and any other dashboard shipped there) for Grafana.",
    )
    sub = parser.add_subparsers(title="actions", metavar="ACTION")
    publish = sub.add_parser(
        "publish",
        help="create the folder and the data source if missing, then save every dashboard",
        description="Idempotent: run it again after an upgrade. Needs a Grafana service-account "
        "token with the Editor role on dashboards and Admin on data sources "
        "(or QORGAU_GRAFANA_TOKEN).",
        epilog=settings_help(DatabaseSettings, only=CONNECTION_SETTINGS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    publish.add_argument("--url", required=True, help="Grafana's address, e.g. http://grafana:3000")
    publish.add_argument(
        "--token",
        default=os.environ.get("QORGAU_GRAFANA_TOKEN"),
        help="service-account token [QORGAU_GRAFANA_TOKEN]",
    )
    publish.add_argument(
        "--database-url",
        help="the database as Grafana reaches it (user, password, host, port, database) "
        "[QORGAU_DATABASE_URL]",
    )
    publish.add_argument(
        "--prometheus-url",
        help="Prometheus as Grafana reaches it, e.g. http://prometheus:9090: also create the "
        "Prometheus data source the system-health dashboard reads",
    )
    publish.add_argument("--folder", default="Qorgau", help="folder title [Qorgau]")
    publish.add_argument(
        "--timescaledb", action="store_true", help="tell Grafana the database has TimescaleDB"
    )
    publish.set_defaults(handler=_publish)


def _publish(args: argparse.Namespace) -> int:
    import sys

    from grafana_client.api import GrafanaApi

    from dashboards.publish import PublishError, publish
    from qorgau.runtime import load_settings
    from store.settings import DatabaseSettings

    if not args.token:
        print("qorgau dashboards publish: give --token or QORGAU_GRAFANA_TOKEN", file=sys.stderr)
        return 2
    settings = load_settings(DatabaseSettings)
    grafana = GrafanaApi.from_url(args.url, credential=args.token, timeout=30.0)
    try:
        result = publish(
            grafana,
            database_url=args.database_url or settings.database_url,
            schema=settings.database_schema,
            folder_title=args.folder,
            timescale=args.timescaledb,
            prometheus_url=args.prometheus_url,
        )
    except PublishError as exc:
        print(f"qorgau dashboards publish: {exc}", file=sys.stderr)
        return 1
    made = [
        f"folder {result.folder_uid}" if result.folder_created else "",
        f"data source {result.datasource_uid}" if result.datasource_created else "",
        "Prometheus data source" if result.prometheus_created else "",
    ]
    created = ", ".join(m for m in made if m)
    print(f"created {created}" if created else "folder and data source already there")
    for url in result.dashboards:
        print(f"published {args.url.rstrip('/')}{url}")
    return 0
