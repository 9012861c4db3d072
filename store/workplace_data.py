"""Raw readings of a workplace's sensors over one window, as numpy arrays per sensor.

The server aggregates each sensor's samples into two ``float8[]`` arrays and sends them with
``array_send``; numpy reads PostgreSQL's binary array layout directly, so a shift of 1 Hz
samples (28,800 per sensor) costs no Python object per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from store.binary_arrays import float8_array
from store.catalog import translate_errors

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SensorSamples:
    sensor_id: int
    time_s: FloatArray  # seconds from the window start
    values: FloatArray


async def fetch_window(
    conn: AsyncConnection[Any], sensor_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, SensorSamples]:
    """Samples of ``sensor_ids`` with ``start <= time < end``; sensors without any are absent."""
    if not sensor_ids:
        return {}
    async with translate_errors():
        cur = await conn.execute(
            """
            SELECT sensor_id,
                   array_send(array_agg(extract(epoch FROM time - %s)::float8 ORDER BY time)),
                   array_send(array_agg(value ORDER BY time))
            FROM readings
            WHERE sensor_id = ANY(%s) AND time >= %s AND time < %s
            GROUP BY sensor_id
            """,
            [start, list(sensor_ids), start, end],
        )
        rows = await cur.fetchall()
    return {
        int(sid): SensorSamples(int(sid), float8_array(t), float8_array(v)) for sid, t, v in rows
    }


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
