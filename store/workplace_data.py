"""A workplace's sensors and the latest of their readings in a window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from store.catalog import translate_errors


@dataclass(frozen=True, slots=True)
class LatestReading:
    samples: int  # readings in the window
    at: datetime  # the latest one's time
    value: float


async def latest_readings(
    conn: AsyncConnection[Any], sensor_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, LatestReading]:
    """How many readings each of ``sensor_ids`` has with ``start <= time < end`` and the latest
    of them; sensors without any are absent. Index walks only, no sample leaves the server."""
    if not sensor_ids:
        return {}
    async with translate_errors():
        cur = await conn.execute(
            """
            SELECT s.id, c.n, l.time, l.value
            FROM unnest(%(ids)s::int[]) AS s(id)
            CROSS JOIN LATERAL (
                SELECT count(*) AS n FROM readings
                WHERE sensor_id = s.id AND time >= %(start)s AND time < %(end)s
            ) c
            JOIN LATERAL (
                SELECT time, value FROM readings
                WHERE sensor_id = s.id AND time >= %(start)s AND time < %(end)s
                ORDER BY time DESC LIMIT 1
            ) l ON true
            """,
            {"ids": list(sensor_ids), "start": start, "end": end},
        )
        rows = await cur.fetchall()
    return {int(sid): LatestReading(int(n), at, float(value)) for sid, n, at, value in rows}


async def sensors_of(
    conn: AsyncConnection[Any], workplace_ids: Sequence[int]
) -> dict[int, list[dict[str, Any]]]:
    """``{workplace: [sensor rows]}`` (id, code, quantity, unit, substance), ordered by id."""
    cur = conn.cursor(row_factory=dict_row)
    async with translate_errors():
        await cur.execute(
            "SELECT workplace_id, id, code, quantity, unit, substance FROM sensors "
            "WHERE workplace_id = ANY(%s) ORDER BY workplace_id, id",
            [list(workplace_ids)],
        )
        rows = await cur.fetchall()
    found: dict[int, list[dict[str, Any]]] = {w: [] for w in workplace_ids}
    for row in rows:
        found[row.pop("workplace_id")].append(row)
    return found
