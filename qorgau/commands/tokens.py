"""``qorgau tokens``: create, list and revoke API bearer tokens (only their hashes are stored)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta

from qorgau.runtime import CONNECTION_SETTINGS, settings_help

ROLES = ("admin", "safety_officer", "inspector", "scoring")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from store.settings import DatabaseSettings

    parser = subparsers.add_parser(
        "tokens",
        help="API tokens: create, list, revoke",
        description="Manage bearer tokens of the HTTP API. The token is printed once at "
        "creation; the database keeps only its SHA-256.",
    )
    sub = parser.add_subparsers(title="actions", metavar="ACTION")
    create = sub.add_parser(
        "create",
        help="mint a token and print it",
        description="Roles: admin (everything); safety_officer (one enterprise, read and "
        "write: --enterprise); inspector (read the enterprises of its regions: --region, "
        "repeatable); scoring (read-only map and exports; --region optional).",
        epilog=settings_help(DatabaseSettings, only=CONNECTION_SETTINGS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", default=None, help="who or what holds it (default: the role)")
    create.add_argument("--enterprise", default=None, help="enterprise code (safety_officer)")
    create.add_argument(
        "--region", action="append", default=[], help="jurisdiction region (repeatable)"
    )
    create.add_argument(
        "--expires-days", type=float, default=None, help="valid this many days (default: ever)"
    )
    create.set_defaults(handler=_create)
    connection_help = settings_help(DatabaseSettings, only=CONNECTION_SETTINGS)
    listing = sub.add_parser(
        "list",
        help="list tokens (never their values)",
        epilog=connection_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    listing.set_defaults(handler=_list)
    revoke = sub.add_parser(
        "revoke",
        help="revoke a token by id",
        epilog=connection_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    revoke.add_argument("id", type=int)
    revoke.set_defaults(handler=_revoke)


def _fail(message: str) -> int:
    print(f"qorgau tokens: {message}", file=sys.stderr)
    return 1


def _create(args: argparse.Namespace) -> int:
    from qorgau.runtime import load_settings
    from store.auth import Role, create_token
    from store.connection import connect_async
    from store.registry import enterprise_id_of
    from store.settings import DatabaseSettings
    from vocabulary.errors import QorgauError

    async def run() -> str:
        settings = load_settings(DatabaseSettings)
        conn = await connect_async(settings.database_url, settings.database_schema, autocommit=True)
        async with conn:
            enterprise_id = None
            if args.enterprise:
                enterprise_id = await enterprise_id_of(conn, args.enterprise)
                if enterprise_id is None:
                    raise QorgauError(f"no enterprise with code {args.enterprise!r}")
            expires = (
                datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
            )
            token, _ = await create_token(
                conn,
                name=args.name or args.role,
                role=Role(args.role),
                enterprise_id=enterprise_id,
                regions=args.region,
                expires_at=expires,
            )
            return token

    try:
        print(asyncio.run(run()))
    except QorgauError as exc:
        return _fail(str(exc))
    return 0


def _list(args: argparse.Namespace) -> int:
    from qorgau.runtime import load_settings
    from store.auth import list_tokens
    from store.connection import connect_async
    from store.settings import DatabaseSettings
    from vocabulary.errors import QorgauError

    async def run() -> None:
        settings = load_settings(DatabaseSettings)
        conn = await connect_async(settings.database_url, settings.database_schema, autocommit=True)
        async with conn:
            for t in await list_tokens(conn):
                state = "revoked" if t.revoked_at else "active"
                tenant = (
                    f"enterprise {t.enterprise_id}"
                    if t.enterprise_id
                    else (",".join(t.regions) or "all")
                )
                print(f"{t.id}\t{t.role.value}\t{tenant}\t{state}\t{t.name}")

    try:
        asyncio.run(run())
    except QorgauError as exc:
        return _fail(str(exc))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from qorgau.runtime import load_settings
    from store.auth import revoke_token
    from store.connection import connect_async
    from store.settings import DatabaseSettings
    from vocabulary.errors import QorgauError

    async def run() -> bool:
        settings = load_settings(DatabaseSettings)
        conn = await connect_async(settings.database_url, settings.database_schema, autocommit=True)
        async with conn:
            return await revoke_token(conn, args.id)

    try:
        done = asyncio.run(run())
    except QorgauError as exc:
        return _fail(str(exc))
    return 0 if done else _fail(f"no active token with id {args.id}")
