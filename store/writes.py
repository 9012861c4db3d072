"""The one way readings are stored, on either backend: COPY, on plain PostgreSQL the rollups,
and the note of what changed for the assessment service.

Call ``ensure_day_partitions`` for the block's days first, outside the data transaction (see
``store.readings``), then ``write_readings`` inside it.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from store.migrate import Backend
from store.readings import ReadingBlock, copy_readings
from store.rollups import upsert_rollups
from store.shift_assessments import note_readings


async def write_readings(
    conn: AsyncConnection[Any], block: ReadingBlock, *, backend: Backend
) -> int:
    """Store ``block`` in the caller's transaction; returns the number of readings written."""
    if len(block) == 0:
        return 0
    written = await copy_readings(conn, block)
    if backend == "plain":
        # TimescaleDB's continuous aggregates follow the hypertable by themselves.
        await upsert_rollups(conn, block)
    # The assessment service recomputes the shifts these readings fall in.
    await note_readings(conn, block)
    return written
