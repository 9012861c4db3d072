"""``qorgau db upgrade``: apply schema migrations; ``qorgau db prune``: retention and pruning."""

from __future__ import annotations

import argparse
import sys

from qorgau.runtime import settings_help


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "db",
        help="database schema: upgrade, prune",
        description="Manage Qorgau's database schema and its retention.",
    )
    db_sub = parser.add_subparsers(title="actions", metavar="ACTION")
    upgrade = db_sub.add_parser(
        "upgrade",
        help="apply pending migrations (TimescaleDB when available, else plain PostgreSQL)",
        description="Create or bring up to date Qorgau's schema. Safe to run repeatedly and "
        "from several processes at once.",
        epilog=_database_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upgrade.set_defaults(handler=_upgrade)
    prune = db_sub.add_parser(
        "prune",
        help="run the maintenance job once: expired readings, minute rollups, dedupe records, "
        "quarantine",
        description="Remove what has expired: on plain PostgreSQL the day partitions of raw "
        "readings entirely older than QORGAU_DB_RETENTION and minute rollups older than "
        "QORGAU_DB_ROLLUP_RETENTION (on TimescaleDB its retention policies do that); on both, "
        "the exactly-once records of messages stored longer ago than QORGAU_DB_DEDUPE_HORIZON and "
        "quarantined messages older than QORGAU_DB_QUARANTINE_RETENTION. "
        "Ingest workers run the same job every QORGAU_DB_MAINTENANCE_INTERVAL_S, one at a time; "
        "a run that finds another one going does nothing.",
        epilog=_database_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prune.add_argument(
        "--dry-run",
        action="store_true",
        help="only list what would be removed (partitions, rows, days); change nothing",
    )
    prune.set_defaults(handler=_prune)


def _database_settings_help() -> str:
    from ingest.settings import IngestSettings
    from store.settings import DatabaseSettings

    # The dedupe horizon and the refresh look-back are checked against ingest's sample window,
    # so those two count here too.
    window = [
        line
        for line in settings_help(IngestSettings).splitlines()
        if line.strip().startswith(("QORGAU_INGEST_MAX_PAST_S", "QORGAU_INGEST_MAX_FUTURE_S"))
    ]
    return "\n".join([settings_help(DatabaseSettings), *window])


def _upgrade(args: argparse.Namespace) -> int:
    from ingest.settings import IngestSettings
    from qorgau.runtime import load_settings, setup_logging
    from store.connection import DatabaseError
    from store.migrate import upgrade_from_settings

    setup_logging()
    try:
        # Ingest's settings: its sample window bounds the rollups' refresh look-back.
        settings = load_settings(IngestSettings)
        result = upgrade_from_settings(settings)
    except DatabaseError as exc:
        print(f"qorgau db upgrade: {exc}", file=sys.stderr)
        return 1
    applied = ", ".join(result.applied) if result.applied else "none (already up to date)"
    print(f"schema {settings.database_schema}: backend {result.backend} ({result.backend_reason})")
    print(f"applied: {applied}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    import asyncio

    from ingest.settings import IngestSettings
    from qorgau.runtime import load_settings, setup_logging
    from store.connection import DatabaseError, connect_async
    from store.maintenance import MaintenanceReport, describe, run_maintenance
    from vocabulary.errors import ConfigurationError

    setup_logging()
    try:
        settings = load_settings(IngestSettings)
    except ConfigurationError as exc:
        print(f"qorgau db prune: {exc}", file=sys.stderr)
        return 2
    policy = settings.ingest_maintenance_policy()

    async def prune() -> MaintenanceReport:
        conn = await connect_async(settings.database_url, settings.database_schema, autocommit=True)
        async with conn:
            return await run_maintenance(conn, policy, dry_run=args.dry_run)

    try:
        report = asyncio.run(prune())
    except ConfigurationError as exc:
        print(f"qorgau db prune: {exc}", file=sys.stderr)
        return 2
    except DatabaseError as exc:
        print(f"qorgau db prune: {exc}", file=sys.stderr)
        return 1
    mode = "dry run, nothing changed" if args.dry_run else "done"
    print(f"schema {settings.database_schema}: backend {report.backend} ({mode})")
    for line in describe(report, policy):
        print(line)
    # Another run holding the lock is no failure, but scripts may want to know.
    return 0 if report.acted else 3
