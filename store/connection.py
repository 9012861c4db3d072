"""Connections and pools bound to Qorgau's schema, and the one place psycopg errors become ours."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from vocabulary.backoff import backoff_delay_s
from vocabulary.errors import QorgauError

T = TypeVar("T")

log = logging.getLogger(__name__)


class DatabaseError(QorgauError):
    """PostgreSQL could not be reached or refused a statement."""


class DatabaseUnavailableError(DatabaseError):
    """The server is down or unreachable: worth retrying later."""


def connect_kwargs(schema: str) -> dict[str, Any]:
    """Every connection resolves our tables in ``schema`` and extensions in ``public``. JIT
    compilation is off: Qorgau's statements are short index walks and COPYs, where compiling
    costs more (300 ms and up, measured on the map's queries) than it could save."""
    return {"options": f"-c search_path={schema},public -c jit=off", "connect_timeout": 5}


def _unreachable(url: str, exc: psycopg.OperationalError) -> DatabaseUnavailableError:
    """One line: where we tried, libpq's first reason, and what to do."""
    reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), "no answer")
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
        where = f"{info.get('host', 'localhost')}:{info.get('port', 5432)}"
    except psycopg.ProgrammingError:
        where = "QORGAU_DATABASE_URL"
    # The command line notes where the address came from when it was a demo's settings file.
    source = os.environ.get("QORGAU_DATABASE_URL_FROM")
    if source:
        hint = (
            f"the address is from {source}: is that demo still running? Start it or delete the file"
        )
    else:
        hint = "start it, run `qorgau demo`"
    return DatabaseUnavailableError(
        f"cannot connect to PostgreSQL at {where} ({reason.rstrip('.')}): {hint}, or point "
        "QORGAU_DATABASE_URL at a running server"
    )


def connect(url: str, schema: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=autocommit, **connect_kwargs(schema))
    except psycopg.OperationalError as exc:
        raise _unreachable(url, exc) from exc


async def connect_async(
    url: str, schema: str, *, autocommit: bool = False
) -> psycopg.AsyncConnection[Any]:
    try:
        return await psycopg.AsyncConnection.connect(
            url, autocommit=autocommit, **connect_kwargs(schema)
        )
    except psycopg.OperationalError as exc:
        raise _unreachable(url, exc) from exc


def explain(exc: BaseException) -> str | None:
    """A one-line answer to a database error that reached the command line, saying what to do,
    or None when ``exc`` is no such error (a bug, which keeps its traceback)."""
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.InvalidSchemaName):
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (
            f"the database has no Qorgau schema yet ({detail}): run `qorgau db upgrade` with "
            "the same QORGAU_DATABASE_URL and QORGAU_DATABASE_SCHEMA, or start `qorgau demo`"
        )
    if isinstance(exc, psycopg.OperationalError):
        detail = next((line for line in str(exc).splitlines() if line.strip()), "")
        return f"the connection to PostgreSQL failed ({detail.strip()}): is the server running?"
    if isinstance(exc, DatabaseError):
        return str(exc)
    return None


def ping(url: str, *, connect_timeout_s: int = 2) -> None:
    """Connect to ``url`` and run the smallest query: returns once the server answers queries,
    raises ``psycopg.OperationalError`` while it does not accept connections yet."""
    with psycopg.connect(url, connect_timeout=connect_timeout_s) as conn:
        conn.execute("SELECT 1")


def make_pool(
    url: str, schema: str, *, min_size: int = 1, max_size: int = 10, name: str = "qorgau"
) -> AsyncConnectionPool:
    """A pool that is not open yet: open it with ``await pool.open()`` in the owner's lifespan."""
    return AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={**connect_kwargs(schema), "autocommit": True},
        open=False,
        name=name,
        reconnect_timeout=0,  # keep trying while the server is away; callers see errors
    )


def is_connection_problem(exc: BaseException) -> bool:
    """Whether an error means the server went away (retry) rather than a bad statement."""
    if isinstance(exc, psycopg.OperationalError | DatabaseUnavailableError):
        return True
    from psycopg_pool import PoolTimeout

    return isinstance(exc, PoolTimeout)


class ReconnectingConnection:
    """One autocommit connection that comes back after the server does.

    ``run(action)`` retries ``action`` with capped jittered backoff while the server is
    unreachable and re-raises anything else (a bad statement is a bug, not an outage). Services
    that must not wait (a reader serving other devices) use ``get()`` and ``discard()``.
    """

    def __init__(self, url: str, schema: str, *, retry_max_s: float, purpose: str) -> None:
        self._url = url
        self._schema = schema
        self._retry_max_s = retry_max_s
        self._purpose = purpose
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def get(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await connect_async(self._url, self._schema, autocommit=True)
        return self._conn

    def discard(self) -> None:
        """Forget a connection that failed; the next ``get()`` opens a new one."""
        self._conn = None

    async def run(self, action: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                return await action(await self.get())
            except Exception as exc:
                if not is_connection_problem(exc):
                    raise
                attempt += 1
                self.discard()
                delay = backoff_delay_s(attempt, cap_s=self._retry_max_s)
                log.warning(
                    "%s: database unavailable (%s); retrying in %.1f s",
                    self._purpose,
                    str(exc).strip(),
                    delay,
                )
                await asyncio.sleep(delay)

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = None
