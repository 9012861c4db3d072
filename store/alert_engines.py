"""Which alert engine owns which enterprises (table ``alert_engines``).

An engine claims its set at start, renews the claim while it runs and releases it at a clean
stop. Liveness is judged on the database's clock (``now()``), the one clock every engine shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql


@dataclass(frozen=True, slots=True)
class EngineClaim:
    client_id: str
    enterprises: frozenset[str] | None  # None: all enterprises
    topic_filters: tuple[str, ...]
    host: str
    heartbeat_at: datetime
    live: bool

    def describe(self) -> str:
        if self.enterprises is None:
            owned = "all enterprises"
        else:
            owned = ", ".join(sorted(self.enterprises))
        return f"engine {self.client_id!r} on host {self.host!r} ({owned})"


def overlap(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """Enterprises two claims share; ``None`` when one of them is "all" (everything overlaps),
    an empty set when they are disjoint."""
    if a is None or b is None:
        return None
    return a & b


def conflicts_with(mine: frozenset[str] | None, other: frozenset[str] | None) -> bool:
    shared = overlap(mine, other)
    return shared is None or bool(shared)


@dataclass(frozen=True, slots=True)
class ClaimResult:
    previous: EngineClaim | None  # this client id's row before the claim
    conflicts: tuple[EngineClaim, ...]  # live claims of other engines that overlap; then no claim


_COLUMNS = sql.SQL(
    """client_id, enterprises, topic_filters, host, heartbeat_at,
    stopped_at IS NULL AND heartbeat_at > now() - make_interval(secs => %(timeout)s) AS live"""
)


def _claim(row: Any) -> EngineClaim:
    return EngineClaim(
        client_id=row[0],
        enterprises=frozenset(row[1]) if row[1] is not None else None,
        topic_filters=tuple(row[2]),
        host=row[3],
        heartbeat_at=row[4],
        live=bool(row[5]),
    )


async def engine_claims(conn: AsyncConnection[Any], timeout_s: float) -> list[EngineClaim]:
    cur = await conn.execute(
        sql.SQL("SELECT {} FROM alert_engines ORDER BY client_id").format(_COLUMNS),
        {"timeout": timeout_s},
    )
    return [_claim(r) for r in await cur.fetchall()]


async def claim_enterprises(
    conn: AsyncConnection[Any],
    *,
    client_id: str,
    enterprises: frozenset[str] | None,
    topic_filters: Sequence[str],
    host: str,
    timeout_s: float,
) -> ClaimResult:
    """Claim ``enterprises`` for ``client_id`` unless a live claim of another engine overlaps.

    The table lock makes check and claim one step: of two engines starting at once with
    overlapping sets, the second sees the first's claim. The stored filters are the union of
    the previous ones and ``topic_filters`` until :func:`renew_claim` says the stale ones are
    gone from the broker session, so a crash in between forgets none of them."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE alert_engines IN SHARE ROW EXCLUSIVE MODE")
        claims = await engine_claims(conn, timeout_s)
        previous = next((c for c in claims if c.client_id == client_id), None)
        conflicts = tuple(
            c
            for c in claims
            if c.client_id != client_id and c.live and conflicts_with(enterprises, c.enterprises)
        )
        if conflicts:
            return ClaimResult(previous, conflicts)
        held = set(previous.topic_filters) if previous is not None else set()
        await conn.execute(
            """
            INSERT INTO alert_engines (client_id, enterprises, topic_filters, host)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (client_id) DO UPDATE SET enterprises = EXCLUDED.enterprises,
                topic_filters = EXCLUDED.topic_filters, host = EXCLUDED.host,
                started_at = now(), heartbeat_at = now(), stopped_at = NULL
            """,
            [
                client_id,
                sorted(enterprises) if enterprises is not None else None,
                sorted(held | set(topic_filters)),
                host,
            ],
        )
    return ClaimResult(previous, ())


async def renew_claim(
    conn: AsyncConnection[Any],
    *,
    client_id: str,
    enterprises: frozenset[str] | None,
    topic_filters: Sequence[str],
    host: str,
) -> None:
    """The heartbeat; re-creates the row if someone deleted it meanwhile."""
    await conn.execute(
        """
        INSERT INTO alert_engines (client_id, enterprises, topic_filters, host)
        VALUES (%s, %s, %s, %s)
        ON CONFLICT (client_id) DO UPDATE SET enterprises = EXCLUDED.enterprises,
            topic_filters = EXCLUDED.topic_filters, host = EXCLUDED.host,
            heartbeat_at = now(), stopped_at = NULL
        """,
        [
            client_id,
            sorted(enterprises) if enterprises is not None else None,
            sorted(topic_filters),
            host,
        ],
    )


async def release_claim(
    conn: AsyncConnection[Any], *, client_id: str, topic_filters: Sequence[str]
) -> None:
    """A clean stop: the enterprises are free for another engine at once."""
    await conn.execute(
        "UPDATE alert_engines SET stopped_at = now(), topic_filters = %s WHERE client_id = %s",
        [sorted(topic_filters), client_id],
    )


async def enterprise_codes(conn: AsyncConnection[Any]) -> list[str]:
    cur = await conn.execute("SELECT code FROM enterprises ORDER BY code")
    return [str(r[0]) for r in await cur.fetchall()]
