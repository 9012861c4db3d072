"""``qorgau db upgrade``: apply schema migrations."""

from __future__ import annotations

import argparse
import sys

from qorgau.runtime import settings_help


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from store.settings import DatabaseSettings

    parser = subparsers.add_parser(
        "db",
        help="database schema: upgrade",
        description="Manage Qorgau's database schema.",
    )
    db_sub = parser.add_subparsers(title="actions", metavar="ACTION")
    upgrade = db_sub.add_parser(
        "upgrade",
        help="apply pending migrations (TimescaleDB when available, else plain PostgreSQL)",
        description="Create or bring up to date Qorgau's schema. Safe to run repeatedly and "
        "from several processes at once.",
        epilog=settings_help(DatabaseSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upgrade.set_defaults(handler=_upgrade)


def _upgrade(args: argparse.Namespace) -> int:
    from qorgau.runtime import load_settings, setup_logging
    from store.connection import DatabaseError
    from store.migrate import upgrade_from_settings
    from store.settings import DatabaseSettings

    setup_logging()
    try:
        settings = load_settings(DatabaseSettings)
        result = upgrade_from_settings(settings)
    except DatabaseError as exc:
        print(f"qorgau db upgrade: {exc}", file=sys.stderr)
        return 1
    applied = ", ".join(result.applied) if result.applied else "none (already up to date)"
    print(f"schema {settings.database_schema}: backend {result.backend} ({result.backend_reason})")
    print(f"applied: {applied}")
    return 0
