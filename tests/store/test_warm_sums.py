"""What the alert engine reads at a warm restart, on every backend: shift sums made of minute
rollups and raw partial minutes are those of the raw readings, and the latest reading time found
through the rollups is the raw one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from store.alerts import latest_reading_times, shift_sums, split_minutes
from store.connection import connect_async
from store.readings import ReadingBlock, datetime_to_us, us_to_datetime
from store.rollups import pow10_terms
from tests.store.conftest import BackendSchema
from tests.store.test_rollups_contract import store

pytestmark = [pytest.mark.anyio, pytest.mark.services]

START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
NOISE, VIB, GAS, QUIET, ABSENT = 21, 22, 23, 24, 25
HOUR_US = 3600 * 1_000_000


def workload() -> ReadingBlock:
    """Four sensors over three hours at irregular µs times, about one reading every two seconds;
    the gas sensor is silent for 25 minutes, the quiet one only reports in the first hour."""
    rng = np.random.default_rng(11)
    parts = []
    for sensor, lo, hi in ((NOISE, 55.0, 118.0), (VIB, 0.0, 6.0), (GAS, 0.0, 40.0)):
        offsets = np.sort(rng.integers(0, 3 * HOUR_US, 5400)).astype(np.int64)
        if sensor == GAS:
            offsets = offsets[(offsets < 40 * 60_000_000) | (offsets >= 65 * 60_000_000)]
        parts.append(
            ReadingBlock(
                datetime_to_us(START) + offsets,
                np.full(len(offsets), sensor, np.int32),
                rng.uniform(lo, hi, len(offsets)),
            )
        )
    quiet = np.sort(rng.integers(0, HOUR_US, 300)).astype(np.int64)
    parts.append(
        ReadingBlock(
            datetime_to_us(START) + quiet, np.full(300, QUIET, np.int32), rng.uniform(1, 2, 300)
        )
    )
    return ReadingBlock.concat(parts)


def at(minutes: float) -> datetime:
    return START + timedelta(microseconds=round(minutes * 60_000_000))


SPANS: dict[int, tuple[datetime, datetime]] = {
    # both ends inside minutes
    NOISE: (at(7.2208), at(161.6253)),
    # a minute-aligned start (the usual shift start), an end on a 10 s bin
    VIB: (at(0), at(150 + 1 / 6)),
    # the silence covers whole minutes and the partial minute at the start
    GAS: (at(39.5), at(100.75)),
    # readings exist, but none in the span
    QUIET: (at(70.3), at(170.9)),
    # no readings at all
    ABSENT: (at(10), at(20)),
}


def raw_sums(block: ReadingBlock, sensor: int, start: datetime, until: datetime) -> np.ndarray:
    inside = (
        (block.sensor_ids == sensor)
        & (block.times_us >= datetime_to_us(start))
        & (block.times_us < datetime_to_us(until))
    )
    return np.asarray(block.values[inside])


def test_a_span_splits_into_whole_minutes_and_its_partial_ends() -> None:
    edges, whole = split_minutes(at(7.25), at(9.5))
    assert whole == (at(8), at(9))
    assert edges == [(at(7.25), at(8)), (at(9), at(9.5))]
    assert split_minutes(at(8), at(9)) == ([], (at(8), at(9)))
    # inside one minute, or across one boundary only: no whole minute, raw readings throughout
    assert split_minutes(at(8.1), at(8.9)) == ([(at(8.1), at(8.9))], None)
    assert split_minutes(at(8.5), at(9.5)) == ([(at(8.5), at(9.5))], None)
    assert split_minutes(at(8.5), at(8.5)) == ([], None)


async def test_shift_sums_from_rollups_equal_those_of_the_raw_readings(
    backend_schema: BackendSchema,
) -> None:
    block = workload()
    await store(backend_schema, block)
    conn = await connect_async(backend_schema.url, backend_schema.schema, autocommit=True)
    async with conn:
        got = {b.sensor_id: b for b in await shift_sums(conn, SPANS)}
    assert sorted(got) == [NOISE, VIB, GAS], "sensors without readings in their span are absent"
    for sensor in (NOISE, VIB, GAS):
        start, until = SPANS[sensor]
        raw = raw_sums(block, sensor, start, until)
        edges, _ = split_minutes(start, until)
        if sensor != GAS:  # the partial minutes hold readings, so leaving them out would show
            assert all(len(raw_sums(block, sensor, lo, hi)) for lo, hi in edges)
        b = got[sensor]
        assert b.start_s == start.timestamp()
        assert b.count == len(raw)
        assert (b.min_value, b.max_value) == (raw.min(), raw.max())
        np.testing.assert_allclose(
            [b.sum_value, b.sum_square, b.sum_power],
            [raw.sum(), (raw * raw).sum(), pow10_terms(raw).sum()],
            rtol=1e-12,
            atol=0,
        )


async def test_no_spans_no_sums(backend_schema: BackendSchema) -> None:
    conn = await connect_async(backend_schema.url, backend_schema.schema, autocommit=True)
    async with conn:
        assert await shift_sums(conn, {}) == []


async def test_latest_reading_times_are_the_raw_latest_times(
    backend_schema: BackendSchema,
) -> None:
    block = workload()
    await store(backend_schema, block)
    last_quiet = int(block.times_us[block.sensor_ids == QUIET].max())
    conn = await connect_async(backend_schema.url, backend_schema.schema, autocommit=True)
    async with conn:
        everything = await latest_reading_times(conn, START)
        # ``since`` just after the quiet sensor's last reading, in the same minute
        just_after = us_to_datetime(last_quiet + 1)
        later = await latest_reading_times(conn, just_after)
        only = await latest_reading_times(conn, START, [GAS, QUIET, ABSENT])
    for sensor in (NOISE, VIB, GAS, QUIET):
        expected = us_to_datetime(int(block.times_us[block.sensor_ids == sensor].max()))
        assert everything[sensor] == expected
    assert sorted(everything) == [NOISE, VIB, GAS, QUIET]
    assert sorted(later) == [NOISE, VIB, GAS]
    assert only == {s: everything[s] for s in (GAS, QUIET)}
