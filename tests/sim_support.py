"""Simulated instruments into a real database through the store's write path (the same COPY
and rollups ingest uses), for tests of what people look at: dashboards, Grafana, reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from firmware_sim.scenario import Scenario
from qorgau.commands.devices import upsert_scenario
from store.connection import connect_async
from store.readings import ReadingBlock, ensure_partitions
from tests.support import assess_now, write_as_ingest
from vocabulary.driver import Driver, SampleBlock


def _block(blocks: Sequence[SampleBlock], ids: dict[str, int]) -> ReadingBlock:
    parts = []
    for b in blocks:
        n = len(b.values)
        offsets = (
            np.asarray(b.offsets_s, dtype=np.float64)
            if b.offsets_s is not None
            else np.arange(n, dtype=np.float64) * b.spec.period_s
        )
        t0_us = int(b.t0.timestamp() * 1_000_000)
        values = np.asarray(b.values, dtype=np.float64)
        keep = np.isfinite(values)  # ingest quarantines non-finite samples
        parts.append(
            ReadingBlock(
                (t0_us + np.round(offsets * 1_000_000).astype(np.int64))[keep],
                np.full(int(keep.sum()), ids[b.spec.sensor], dtype=np.int32),
                values[keep],
            )
        )
    return ReadingBlock.concat(parts)


async def store_readings(
    pg_url: str, schema: str, devices: Sequence[Driver], until: datetime
) -> int:
    """Read every device up to ``until`` and store the samples, then let the assessment service
    store their shifts (one pass); returns how many samples."""
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        rows = await (await conn.execute("SELECT code, id FROM sensors")).fetchall()
        ids = {str(code): int(i) for code, i in rows}
        total = 0
        for device in devices:
            block = _block(device.read(until), ids)
            if not len(block):
                continue
            first = datetime.fromtimestamp(int(block.times_us.min()) / 1e6, UTC)
            last = datetime.fromtimestamp(int(block.times_us.max()) / 1e6, UTC)
            await ensure_partitions(conn, first, last)
            async with conn.transaction():
                total += await write_as_ingest(conn, block)
    await assess_now(pg_url, schema)
    return total


async def register_scenario(pg_url: str, schema: str, scenario: Scenario) -> dict[str, int]:
    """The scenario's enterprise, workplaces, devices and sensors (as ``qorgau devices
    add-scenario`` registers them); returns workplace code → id."""
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        return await upsert_scenario(conn, scenario)
