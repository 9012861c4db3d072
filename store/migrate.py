"""Versioned schema migrations: ``store/migrations/NNNN_name[.plain|.timescale].sql``.

Files apply in order, each in its own transaction, recorded in ``schema_migrations``. A file
with a backend suffix applies only on that backend; the backend is decided once per schema (the
first upgrade) and kept. ``{{name}}`` placeholders are filled from ``MigrationParams``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, Literal

import psycopg
from psycopg import sql

from store.connection import DatabaseError, connect
from store.policies import StoragePolicies, apply_timescale_policies
from store.settings import DatabaseSettings

log = logging.getLogger(__name__)

Backend = Literal["plain", "timescale"]
_FILE = re.compile(
    r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)(?:\.(?P<backend>plain|timescale))?\.sql$"
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    backend: Backend | None
    sql: str


@dataclass(frozen=True, slots=True)
class UpgradeResult:
    backend: Backend
    applied: tuple[str, ...]
    backend_reason: str


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("store.migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            backend = match["backend"]
            found.append(
                Migration(
                    version=int(match["version"]),
                    name=match["name"],
                    backend=backend,  # type: ignore[arg-type]
                    sql=entry.read_text(encoding="utf-8"),
                )
            )
    return sorted(found, key=lambda m: (m.version, m.backend or ""))


def _render(text: str, params: dict[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        key = match[1]
        if key not in params:
            raise DatabaseError(f"migration placeholder {{{{{key}}}}} has no value")
        # Literals only, quoted by PostgreSQL's rules.
        return "'" + params[key].replace("'", "''") + "'"

    return re.sub(r"\{\{(\w+)\}\}", fill, text)


# What an operator does when the extension is installed but the server did not load it.
ENABLE_TIMESCALEDB_HINT: Final = (
    "add timescaledb to shared_preload_libraries in postgresql.conf (shared_preload_libraries "
    "= 'timescaledb', keeping any libraries already listed) and restart PostgreSQL; or set "
    "QORGAU_DB_TIMESCALE=off to stay on plain PostgreSQL"
)


def timescaledb_preloaded(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server loaded TimescaleDB's library at start, without which ``CREATE
    EXTENSION timescaledb`` fails at FATAL level and closes the connection."""
    try:
        with conn.transaction():
            row = conn.execute("SHOW shared_preload_libraries").fetchone()
    except psycopg.errors.InsufficientPrivilege:
        # Only superusers and pg_read_all_settings may read that setting; the loader's own
        # settings exist exactly when it was preloaded.
        row = None
    if row is not None:
        names = {part.strip().strip('"').lower() for part in str(row[0]).split(",")}
        return "timescaledb" in names
    found = conn.execute(
        "SELECT 1 FROM pg_settings WHERE name = 'timescaledb.max_background_workers'"
    ).fetchone()
    return found is not None


def _choose_backend(
    conn: psycopg.Connection[Any], mode: Literal["auto", "on", "off"]
) -> tuple[Backend, str]:
    """Everything that could make ``CREATE EXTENSION`` fail is checked first: a FATAL error
    there would close the connection, and with it the migration lock."""
    if mode == "off":
        return "plain", "TimescaleDB disabled by QORGAU_DB_TIMESCALE=off"
    available = conn.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if available is None:
        if mode == "on":
            raise DatabaseError(
                "QORGAU_DB_TIMESCALE=on but the timescaledb extension is not installed on the "
                "server; install it or set QORGAU_DB_TIMESCALE=auto"
            )
        return "plain", "the timescaledb extension is not installed on this server"
    if not timescaledb_preloaded(conn):
        problem = "the timescaledb extension is installed but the server does not preload it"
        if mode == "on":
            raise DatabaseError(f"QORGAU_DB_TIMESCALE=on but {problem}: {ENABLE_TIMESCALEDB_HINT}")
        log.warning(
            "using plain PostgreSQL: %s. To use TimescaleDB, %s", problem, ENABLE_TIMESCALEDB_HINT
        )
        return "plain", f"{problem} (to use it, {ENABLE_TIMESCALEDB_HINT})"
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb WITH SCHEMA public")
    except psycopg.Error as exc:
        if mode == "on" or conn.closed:
            raise DatabaseError(f"cannot enable TimescaleDB: {exc}".strip()) from exc
        log.warning("using plain PostgreSQL: timescaledb cannot be enabled (%s)", exc)
        return "plain", f"timescaledb is installed but cannot be enabled ({exc})".strip()
    return "timescale", f"TimescaleDB {available[0]} is enabled"


def upgrade_from_settings(settings: DatabaseSettings) -> UpgradeResult:
    """``upgrade`` with the URL, schema, backend choice, chunk interval and storage policies of
    a service's settings: what every service runs at start and ``qorgau db upgrade`` runs."""
    return upgrade(
        settings.database_url,
        settings.database_schema,
        timescale=settings.db_timescale,
        chunk_interval=settings.db_chunk_interval,
        policies=settings.storage_policies(),
    )


def upgrade(
    url: str,
    schema: str,
    *,
    timescale: Literal["auto", "on", "off"] = "auto",
    chunk_interval: str = "1 day",
    policies: StoragePolicies | None = None,
) -> UpgradeResult:
    """Bring ``schema`` up to the newest migration and (on TimescaleDB) set its background
    policies; safe to run from several processes at once."""
    with connect(url, schema, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"qorgau-migrate:{schema}"])
        try:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer PRIMARY KEY,
                    name       text NOT NULL,
                    backend    text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            rows = conn.execute("SELECT version, backend FROM schema_migrations").fetchall()
            done = {int(r[0]) for r in rows}
            if rows:
                backend: Backend = "timescale" if rows[0][1] == "timescale" else "plain"
                reason = f"kept from the first upgrade of schema {schema}"
            else:
                backend, reason = _choose_backend(conn, timescale)
            log.info("database backend: %s (%s)", backend, reason)
            params = {"chunk_interval": chunk_interval, "schema": schema}
            applied: list[str] = []
            for migration in available_migrations():
                if migration.version in done:
                    continue
                if migration.backend is not None and migration.backend != backend:
                    continue
                label = f"{migration.version:04d}_{migration.name}"
                try:
                    with conn.transaction():
                        conn.execute(_render(migration.sql, params).encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, backend) "
                            "VALUES (%s, %s, %s)",
                            [migration.version, migration.name, backend],
                        )
                except psycopg.Error as exc:
                    raise DatabaseError(f"migration {label} failed: {exc}") from exc
                applied.append(label)
                log.info("applied migration %s", label)
            if backend == "timescale":
                apply_timescale_policies(conn, policies or StoragePolicies())
            return UpgradeResult(backend=backend, applied=tuple(applied), backend_reason=reason)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [f"qorgau-migrate:{schema}"])


def current_backend(conn: psycopg.Connection[Any]) -> Backend:
    row = conn.execute("SELECT backend FROM schema_migrations LIMIT 1").fetchone()
    if row is None:
        raise DatabaseError("the schema has no migrations applied: run `qorgau db upgrade`")
    return "timescale" if row[0] == "timescale" else "plain"


class SchemaMissingError(DatabaseError):
    """The database has no Qorgau tables in the configured schema."""


async def require_schema_async(conn: psycopg.AsyncConnection[Any], schema: str) -> None:
    """Raise :class:`SchemaMissingError` (a one-line message that says what to run) unless the
    migrations have been applied to the connection's schema."""
    cur = await conn.execute(
        "SELECT to_regclass(quote_ident(%s) || '.schema_migrations')", [schema]
    )
    row = await cur.fetchone()
    if row is None or row[0] is None:
        raise SchemaMissingError(
            f"the database has no Qorgau tables in schema {schema!r}: run `qorgau db upgrade` "
            "first (with the same QORGAU_DATABASE_URL and QORGAU_DATABASE_SCHEMA)"
        )


async def recorded_backend_async(conn: psycopg.AsyncConnection[Any]) -> str | None:
    """The backend recorded with the applied migrations, as stored; None before the first one.
    Raises what psycopg raises when the database or the table is not there (the API's health
    check reports that)."""
    cur = await conn.execute("SELECT backend FROM schema_migrations LIMIT 1")
    row = await cur.fetchone()
    return None if row is None else str(row[0])


async def current_backend_async(conn: psycopg.AsyncConnection[Any]) -> Backend:
    recorded = await recorded_backend_async(conn)
    if recorded is None:
        raise DatabaseError("the schema has no migrations applied: run `qorgau db upgrade`")
    return "timescale" if recorded == "timescale" else "plain"
