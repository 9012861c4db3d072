"""The rollup contract, the same on every backend: what ``fetch_rollup`` returns equals the
sufficient statistics of exactly the readings written, and spans combine exactly (energy means
for decibels, r.m.s. for vibration, means for concentrations)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from store.connection import connect_async
from store.readings import ReadingBlock, datetime_to_us, days_of, ensure_day_partitions
from store.rollups import (
    BUCKET_US,
    Bucket,
    BucketLevels,
    Rollup,
    fetch_levels,
    fetch_rollup,
    rollup_from_block,
)
from store.writes import write_readings
from tests.store.conftest import BackendSchema, materialize

pytestmark = [pytest.mark.anyio, pytest.mark.services]

START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
NOISE, VIB, GAS = 11, 12, 13


def workload(seed: int = 1) -> ReadingBlock:
    """Three sensors over three hours, irregular times, values typical of each quantity."""
    rng = np.random.default_rng(seed)
    parts = []
    for sensor, lo, hi in ((NOISE, 55.0, 118.0), (VIB, 0.0, 6.0), (GAS, 0.0, 40.0)):
        n = 5000
        offsets = np.sort(rng.integers(0, 3 * 3600 * 1_000_000, n))
        parts.append(
            ReadingBlock(
                datetime_to_us(START) + offsets.astype(np.int64),
                np.full(n, sensor, np.int32),
                rng.uniform(lo, hi, n),
            )
        )
    return ReadingBlock.concat(parts)


async def store(target: BackendSchema, block: ReadingBlock, pieces: int = 4) -> None:
    conn = await connect_async(target.url, target.schema, autocommit=True)
    async with conn:
        await ensure_day_partitions(conn, days_of(block.times_us))
        # Several transactions, in shuffled order: rollups must not depend on arrival order.
        order = np.random.default_rng(7).permutation(len(block))
        for chunk in np.array_split(order, pieces):
            part = ReadingBlock(block.times_us[chunk], block.sensor_ids[chunk], block.values[chunk])
            async with conn.transaction():
                await write_readings(conn, part, backend=target.backend)


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("bucket", ["1 min", "1 hour"])
async def test_rollups_hold_the_statistics_of_exactly_the_written_readings(
    backend_schema: BackendSchema, bucket: Bucket
) -> None:
    block = workload()
    await store(backend_schema, block)
    # As aggregated at query time, then (TimescaleDB) as its refresh materializes them.
    for _ in ("as written", "materialized"):
        conn = await connect_async(backend_schema.url, backend_schema.schema, autocommit=True)
        async with conn:
            got = await fetch_rollup(
                conn, [NOISE, VIB, GAS, 999], START, START + timedelta(hours=3), bucket
            )
        assert sorted(got) == [NOISE, VIB, GAS], "a sensor without data is absent"
        for sensor in (NOISE, VIB, GAS):
            expected = rollup_from_block(block, sensor, bucket)
            actual = got[sensor]
            np.testing.assert_array_equal(actual.starts_us, expected.starts_us)
            assert np.all(actual.starts_us % BUCKET_US[bucket] == 0)
            np.testing.assert_array_equal(actual.n, expected.n)
            for column in ("sum_value", "sum_sq", "sum_pow10", "min_value", "max_value"):
                assert_same(getattr(actual, column), getattr(expected, column))
        assert sum(int(r.n.sum()) for r in got.values()) == len(block)
        materialize(backend_schema)


@pytest.mark.parametrize("bucket", ["1 min", "1 hour"])
async def test_fetch_levels_is_exactly_the_level_of_fetch_rollup(
    backend_schema: BackendSchema, bucket: Bucket
) -> None:
    """Bit for bit wherever the rollups are stored: plain PostgreSQL's tables, TimescaleDB's
    materialized buckets. Buckets TimescaleDB aggregates at query time (newer than the last
    refresh) add floats in the order of each query's plan, so two queries may differ in the
    last bits there: equal to 1e-12, and bit for bit once materialized."""
    block = workload(seed=5)
    await store(backend_schema, block)
    quantities = {NOISE: "noise_laeq", VIB: "vib_hav", GAS: "gas", 999: "dust"}
    span = (START + timedelta(minutes=20), START + timedelta(hours=2, minutes=50))

    async def both() -> tuple[dict[int, BucketLevels], dict[int, Rollup]]:
        conn = await connect_async(backend_schema.url, backend_schema.schema, autocommit=True)
        async with conn:
            levels = await fetch_levels(conn, quantities, *span, bucket)
            rollups = await fetch_rollup(conn, list(quantities), *span, bucket)
        assert sorted(levels) == sorted(rollups) == [NOISE, VIB, GAS]
        return levels, rollups

    levels, rollups = await both()
    for sensor in (NOISE, VIB, GAS):
        got, expected = levels[sensor], rollups[sensor]
        np.testing.assert_array_equal(got.starts_us, expected.starts_us)
        np.testing.assert_array_equal(got.n, expected.n)
        level = expected.level(quantities[sensor])
        if backend_schema.backend == "plain":
            assert got.level.tobytes() == level.tobytes()
        else:
            np.testing.assert_allclose(got.level, level, rtol=1e-12, atol=0)

    materialize(backend_schema)
    levels, rollups = await both()
    for sensor in (NOISE, VIB, GAS):
        got, expected = levels[sensor], rollups[sensor]
        np.testing.assert_array_equal(got.starts_us, expected.starts_us)
        assert got.level.tobytes() == expected.level(quantities[sensor]).tobytes()


async def test_span_totals_are_exact_and_decibels_are_energy_averaged(
    backend_schema: BackendSchema,
) -> None:
    block = workload(seed=3)
    await store(backend_schema, block, pieces=3)
    # Spans made of whole buckets: 07:30–09:30 in minutes, 08:00–10:00 in hours.
    spans: dict[Bucket, tuple[datetime, datetime]] = {
        "1 min": (START + timedelta(minutes=30), START + timedelta(hours=2, minutes=30)),
        "1 hour": (START + timedelta(hours=1), START + timedelta(hours=3)),
    }
    conn = await connect_async(backend_schema.url, backend_schema.schema, autocommit=True)
    async with conn:
        fetched = {
            bucket: await fetch_rollup(conn, [NOISE, VIB, GAS], *span, bucket)
            for bucket, span in spans.items()
        }
    for bucket, (start, end) in spans.items():
        lo, hi = datetime_to_us(start), datetime_to_us(end)
        for sensor in (NOISE, VIB, GAS):
            inside = (block.sensor_ids == sensor) & (block.times_us >= lo) & (block.times_us < hi)
            raw = block.values[inside]
            total = fetched[bucket][sensor].total()
            assert total.n == len(raw)
            assert math.isclose(total.mean, raw.mean(), rel_tol=1e-12)
            assert math.isclose(total.rms, math.sqrt(np.mean(raw**2)), rel_tol=1e-12)
            assert math.isclose(
                total.energy_mean_db, 10 * math.log10(np.mean(10 ** (raw / 10))), rel_tol=1e-12
            )
            assert (total.min, total.max) == (raw.min(), raw.max())
    minutes = fetched["1 min"]
    noise = minutes[NOISE].total()
    arithmetic = float(block.values[block.sensor_ids == NOISE].mean())
    assert noise.energy_mean_db > arithmetic + 3, "levels must be energy-averaged"


async def test_two_levels_combine_as_energy_not_as_numbers(backend_schema: BackendSchema) -> None:
    t = datetime_to_us(START)
    block = ReadingBlock(
        np.array([t, t + 1_000_000], np.int64),
        np.array([NOISE, NOISE], np.int32),
        np.array([80.0, 100.0]),
    )
    await store(backend_schema, block, pieces=2)
    conn = await connect_async(backend_schema.url, backend_schema.schema, autocommit=True)
    async with conn:
        got = await fetch_rollup(conn, [NOISE], START, START + timedelta(minutes=1))
    rollup = got[NOISE]
    # 10·lg((10^8 + 10^10)/2) = 97.03 dB(A); the arithmetic mean, 90, would be wrong.
    assert rollup.energy_mean_db()[0] == pytest.approx(97.0329, abs=1e-4)
    assert rollup.level("noise_laeq")[0] == pytest.approx(97.0329, abs=1e-4)
    assert rollup.level("noise_lcpeak")[0] == 100.0
    assert rollup.mean()[0] == 90.0


async def test_buckets_are_selected_by_their_start(backend_schema: BackendSchema) -> None:
    t = datetime_to_us(START)
    minute = 60_000_000
    times = np.array([t - 1, t, t + minute - 1, t + minute, t + 2 * minute], np.int64)
    block = ReadingBlock(times, np.full(5, GAS, np.int32), np.arange(5, dtype=np.float64))
    await store(backend_schema, block, pieces=1)
    conn = await connect_async(backend_schema.url, backend_schema.schema, autocommit=True)
    async with conn:
        got = await fetch_rollup(conn, [GAS], START, START + timedelta(minutes=2))
    rollup = got[GAS]
    np.testing.assert_array_equal(rollup.starts_us, [t, t + minute])
    np.testing.assert_array_equal(rollup.n, [2, 1])
    assert rollup.starts[0] == np.datetime64(START.replace(tzinfo=None), "us")
