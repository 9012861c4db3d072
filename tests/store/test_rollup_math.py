"""Bucket statistics in numpy, with no database: against a loop oracle, and coarsening
minutes into hours equals bucketing the readings into hours directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store.readings import ReadingBlock, days_of
from store.rollups import BUCKET_US, bucket_stats, coarsen, pow10_terms

MINUTE, HOUR = BUCKET_US["1 min"], BUCKET_US["1 hour"]

readings = st.lists(
    st.tuples(
        st.integers(-3 * HOUR, 30 * HOUR),
        st.integers(1, 4),
        st.floats(-400, 400, allow_nan=False),
    ),
    min_size=1,
    max_size=200,
)


def as_block(rows: list[tuple[int, int, float]]) -> ReadingBlock:
    return ReadingBlock(
        np.array([r[0] for r in rows], np.int64),
        np.array([r[1] for r in rows], np.int32),
        np.array([r[2] for r in rows], np.float64),
    )


@given(readings)
@settings(max_examples=60, deadline=None)
def test_bucket_stats_match_a_loop_oracle(rows: list[tuple[int, int, float]]) -> None:
    stats = bucket_stats(as_block(rows), MINUTE)
    groups: dict[tuple[int, int], list[float]] = {}
    for t, sensor, v in rows:
        groups.setdefault((sensor, (t // MINUTE) * MINUTE), []).append(v)
    keys = sorted(groups)
    assert list(zip(stats.sensor_ids.tolist(), stats.starts_us.tolist(), strict=True)) == keys
    for i, key in enumerate(keys):
        values = groups[key]
        assert stats.n[i] == len(values)
        assert math.isclose(stats.sum_value[i], sum(values), rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(stats.sum_sq[i], sum(v * v for v in values), rel_tol=1e-9)
        expected_pow10 = sum(
            math.inf if v > 300 else 0.0 if v < -300 else 10 ** (v / 10) for v in values
        )
        assert math.isclose(stats.sum_pow10[i], expected_pow10, rel_tol=1e-9)
        assert (stats.min_value[i], stats.max_value[i]) == (min(values), max(values))


@given(readings)
@settings(max_examples=60, deadline=None)
def test_hours_from_minutes_equal_hours_from_readings(rows: list[tuple[int, int, float]]) -> None:
    block = as_block(rows)
    direct = bucket_stats(block, HOUR)
    via = coarsen(bucket_stats(block, MINUTE), HOUR)
    np.testing.assert_array_equal(via.sensor_ids, direct.sensor_ids)
    np.testing.assert_array_equal(via.starts_us, direct.starts_us)
    np.testing.assert_array_equal(via.n, direct.n)
    for column in ("sum_value", "sum_sq", "sum_pow10"):
        np.testing.assert_allclose(getattr(via, column), getattr(direct, column), rtol=1e-9)
    np.testing.assert_array_equal(via.min_value, direct.min_value)
    np.testing.assert_array_equal(via.max_value, direct.max_value)


def test_decibel_terms_never_overflow_or_underflow() -> None:
    terms = pow10_terms(np.array([-1e9, -300.0, 0.0, 94.0, 300.0, 1e9]))
    assert terms[0] == 0.0
    assert math.isclose(terms[1], 1e-30, rel_tol=1e-15)  # np.power may round the last bit
    assert terms[2] == 1.0
    assert math.isclose(terms[3], 10**9.4)
    assert math.isclose(terms[4], 1e30, rel_tol=1e-15)
    assert terms[5] == math.inf


def test_coarsening_needs_a_multiple_of_the_width() -> None:
    stats = bucket_stats(as_block([(0, 1, 1.0)]), MINUTE)
    with pytest.raises(ValueError, match="multiple"):
        coarsen(stats, 90_000_000)


@given(st.lists(st.integers(-(10**15), 10**16), min_size=1, max_size=50))
@settings(max_examples=100, deadline=None)
def test_days_of_names_exactly_the_days_present(times: list[int]) -> None:
    day = 86_400_000_000
    assert days_of(np.array(times, np.int64)) == {(t // day) * day for t in times}
