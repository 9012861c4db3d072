"""The statements of ingest's exactly-once commit, and of settling a commit whose answer was lost.

A batch of messages is written in one transaction that first claims each message's
(device, seq) in ``ingested_messages``: only the claims that are new are written, so a message
the broker delivers again is never stored twice. The transaction's id is read at its start; if
the connection dies after COMMIT was sent and before it was answered, ``xact_status`` tells
whether that transaction committed (then the batch is done) or not (then it is written again,
and the claims keep that safe).

The caller owns the transaction (``async with conn.transaction()``) and what goes into it
besides these statements (readings, dead letters), so that it can record the in-doubt
transaction just before the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from store.binary_arrays import Int8Array


async def current_xact_id(conn: AsyncConnection[Any]) -> str:
    """The id of the transaction ``conn`` is in (it is assigned here if it was not yet)."""
    cur = await conn.execute("SELECT pg_current_xact_id()::text")
    row = await cur.fetchone()
    return str(row[0]) if row else "0"


async def claim_messages(
    conn: AsyncConnection[Any], keys: Sequence[tuple[int, int]], readings: Sequence[int]
) -> set[tuple[int, int]]:
    """Claim messages (device id, seq), with the number of readings each carries; returns the
    keys that were not claimed before. Pass ``keys`` sorted, so that two workers claiming
    overlapping keys lock them in one order. (The arrays go in binary: as text, psycopg spends
    more time formatting a batch of small messages than the server takes to insert it.)"""
    cur = await conn.execute(
        """
        INSERT INTO ingested_messages (device_id, seq, readings)
        SELECT * FROM unnest(%b::bigint[], %b::bigint[], %b::int[])
        ON CONFLICT DO NOTHING
        RETURNING device_id, seq
        """,
        [Int8Array([k[0] for k in keys]), Int8Array([k[1] for k in keys]), Int8Array(readings)],
    )
    return {(int(d), int(s)) for d, s in await cur.fetchall()}


async def insert_quarantine(conn: AsyncConnection[Any], rows: Sequence[Sequence[Any]]) -> None:
    """Store quarantine rows (topic, device, seq, sensor, reason, detail, payload,
    payload_bytes)."""
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            """
            INSERT INTO quarantine (topic, device, seq, sensor, reason, detail,
                                    payload, payload_bytes)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            """,
            rows,
        )


async def xact_status(conn: AsyncConnection[Any], xid: str) -> str | None:
    """What became of transaction ``xid``: 'committed', 'aborted', 'in progress', or None when
    the server no longer knows (too old)."""
    cur = await conn.execute("SELECT pg_xact_status(%s::xid8)", [xid])
    row = await cur.fetchone()
    return row[0] if row else None
