"""The fast regular-grid paths against straightforward float64 references and slow oracles.

* noise: the float32 exponent stays within ``ENERGY_F32_MAX_ERROR_DB`` of float64 on adversarial
  rows (wide level ranges, near-ties, -inf, NaN, long rows);
* concentration: the bound-and-refine 15-min maximum equals the full cumulative sum up to
  rounding on adversarial signals (plateaus, spikes, ties, periodic, ragged lengths, NaN) and
  the ``math.fsum`` loop oracle;
* all: results do not depend on ``workers`` or on how rows fall into blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from analytics import InputError, concentration_regular, noise_regular, vibration_regular
from analytics._grid import BLOCK_SAMPLES, block_rows, run_row_blocks
from analytics.noise import ENERGY_F32_MAX_ERROR_DB, FAST_PATH_MAX_DB
from analytics.sampling import (
    _sliding_sums_flat,
    max_window_sum_nonneg,
    rolling_max_mean_regular,
    window_block,
)
from tests.analytics import analytics_reference as ref
from tests.support import examples

RTOL = ATOL = 1e-12  # "exact": equal up to rounding


def assert_noise_close(got: object, want: ref.Noise, tol_db: float) -> None:
    for name in ("laeq_db", "lex8h_db", "lex8h_projected_db"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=0, atol=tol_db)
    np.testing.assert_array_equal(got.lamax_db, want.lamax_db)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(got.measured_s, want.measured_s)  # type: ignore[attr-defined]
    # dose = 100·10^((LEX − 80)/10): the level tolerance as a relative one
    np.testing.assert_allclose(
        got.dose_pct,  # type: ignore[attr-defined]
        want.dose_pct,
        rtol=math.expm1(tol_db * math.log(10) / 10) * 1.01,
    )


# --- noise ---------------------------------------------------------------------------------


@st.composite
def level_rows(draw: st.DrawFn) -> np.ndarray:
    rows = draw(st.integers(1, 4))
    n = draw(st.integers(1, 400))
    style = draw(st.sampled_from(["uniform", "wide", "ties", "spiky", "grid01", "extreme"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x: np.ndarray
    if style == "uniform":
        x = rng.uniform(30.0, 140.0, (rows, n))
    elif style == "wide":  # levels spread over 250 dB: arguments down to −57
        x = rng.uniform(-5.0, 250.0, (rows, n))
    elif style == "ties":  # many equal levels and near-equal ones
        x = 80.0 + rng.integers(0, 3, (rows, n)) * draw(st.sampled_from([1e-9, 1e-6, 1e-3, 0.1]))
    elif style == "spiky":
        x = np.full((rows, n), 60.0)
        x[rng.random((rows, n)) < 0.01] = 135.0
    elif style == "grid01":  # reported at 0.1 dB resolution
        x = np.round(rng.normal(85.0, 8.0, (rows, n)), 1)
    else:  # levels near the fast path's edge and far below the maximum
        x = rng.choice([-1e300, -1e6, -300.0, 0.0, 200.0, 255.9], size=(rows, n))
    if draw(st.booleans()):
        x[rng.random((rows, n)) < 0.05] = np.nan
    if draw(st.booleans()):
        x[rng.random((rows, n)) < 0.02] = -np.inf
    return x


@settings(max_examples=examples(300), deadline=None)
@given(level_rows(), st.sampled_from([1.0, 10.0, 60.0]))
def test_noise_float32_energy_within_bound_of_float64(x: np.ndarray, period: float) -> None:
    shift = max(x.shape[1] * period, 3600.0)
    got = noise_regular(x, period_s=period, shift_duration_s=shift, dose_criterion_db=80.0)
    want = ref.noise(x, period, shift, 80.0)
    assert_noise_close(got, want, ENERGY_F32_MAX_ERROR_DB)


@pytest.mark.parametrize("n", [28_800, 1_000_000])
def test_noise_error_bound_on_long_rows_with_many_quiet_samples(n: int) -> None:
    """Worst case of the weighted argument error: most energy in samples ~ln n below the max."""
    rng = np.random.default_rng(n)
    quiet_db = 10.0 * math.log10(n) + rng.uniform(-3.0, 3.0, n)  # u = a·(max − x) ≈ ln n
    x = np.stack([100.0 - quiet_db, rng.uniform(20.0, 140.0, n)])
    x[:, 0] = 100.0
    got = noise_regular(x, period_s=1.0, shift_duration_s=float(n), dose_criterion_db=80.0)
    want = ref.noise(x, 1.0, float(n), 80.0)
    assert_noise_close(got, want, ENERGY_F32_MAX_ERROR_DB)


def test_noise_constant_rows_are_exact_and_slow_rows_match_reference() -> None:
    x = np.full((3, 500), 87.3)
    x[1, 7] = np.nan  # NaN → float64 path
    x[2, :] = FAST_PATH_MAX_DB + 1.0  # beyond the fast path → float64 path
    got = noise_regular(x, period_s=1.0, shift_duration_s=500.0, dose_criterion_db=80.0)
    want = ref.noise(x, 1.0, 500.0, 80.0)
    np.testing.assert_allclose(got.laeq_db, want.laeq_db, rtol=RTOL, atol=ATOL)
    assert got.laeq_db[0] == pytest.approx(87.3, abs=1e-12)
    assert got.measured_s[1] == 499.0


def test_noise_inf_is_rejected_in_any_block() -> None:
    x = np.full((block_rows(1000) * 3 + 1, 1000), 70.0)
    x[-1, 3] = np.inf
    with pytest.raises(InputError, match=r"\+inf"):
        noise_regular(x, period_s=1.0, shift_duration_s=1000.0, dose_criterion_db=80.0)


# --- concentration: exact 15-min maximum ----------------------------------------------------


@st.composite
def concentration_rows(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    k = draw(st.sampled_from([900, 90, 60, 45, 40, 32, 15, 7]))
    b = window_block(k) or 1
    rows = draw(st.integers(1, 5))
    n = draw(
        st.one_of(
            st.integers(k, k + 3 * b + 3),  # around the n ≥ k + b threshold, ragged tails
            st.integers(k, 8 * k),
        )
    )
    style = draw(
        st.sampled_from(
            ["iid", "integers", "plateau", "spike", "periodic_b", "periodic_k", "ramp", "zeros"]
        )
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = np.arange(n)
    if style == "iid":
        x = np.abs(rng.normal(10.0, 4.0, (rows, n)))
    elif style == "integers":  # many exactly tied windows
        x = rng.integers(0, 3, (rows, n)).astype(np.float64)
    elif style == "plateau":
        x = np.full((rows, n), 5.0)
        s = int(rng.integers(0, n))
        x[:, s : s + int(rng.integers(1, 2 * k))] = 9.0
    elif style == "spike":
        x = rng.uniform(0.0, 1.0, (rows, n))
        x[:, rng.integers(0, n, 3)] = 1e6
    elif style == "periodic_b":  # period of the block length: every block sum equal
        x = np.tile(rng.uniform(0.0, 10.0, b), n // b + 1)[:n] * np.ones((rows, 1))
    elif style == "periodic_k":
        x = (1.0 + np.sin(2 * np.pi * t / k + rng.uniform(0, 6.3))) * np.ones((rows, 1))
    elif style == "ramp":
        x = (t / n)[np.newaxis, :] * rng.uniform(0.5, 2.0, (rows, 1))
        if draw(st.booleans()):
            x = x[:, ::-1].copy()
    else:
        x = np.zeros((rows, n))
    x = x * draw(st.sampled_from([1.0, 1e-300, 1e-12, 1e12]))
    return x, k


@settings(max_examples=examples(400), deadline=None)
@given(concentration_rows())
def test_bound_and_refine_equals_full_cumsum(case: tuple[np.ndarray, int]) -> None:
    x, k = case
    want = ref.max_window_mean(x, k, 0.75)
    got = rolling_max_mean_regular(x, window_samples=k, min_window_fraction=0.75)
    scale = np.abs(x).max(axis=-1)  # cumsum rounding scales with the row's magnitude
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    assert np.all(np.abs(got - want) <= 1e-12 * scale + 1e-300)


@settings(max_examples=examples(150), deadline=None)
@given(concentration_rows())
def test_bound_and_refine_equals_fsum_oracle(case: tuple[np.ndarray, int]) -> None:
    x, k = case
    assume(x.shape[1] <= 2000)
    got = rolling_max_mean_regular(x, window_samples=k, min_window_fraction=0.75)
    for i, row in enumerate(x.tolist()):
        assert got[i] == pytest.approx(ref.max_window_sum_loop(row, k) / k, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(("k", "b"), [(900, 20), (900, 60), (900, 9), (90, 18), (60, 12), (64, 8)])
def test_max_window_sum_nonneg_any_block_length(k: int, b: int) -> None:
    rng = np.random.default_rng(k * b)
    for n in (k + b, k + b + 1, 3 * k + b - 1, 5 * k):
        x = rng.exponential(3.0, (4, n)) ** 2
        want = ref.max_window_mean(x, k, 1.0) * k
        np.testing.assert_allclose(max_window_sum_nonneg(x, k, b), want, rtol=1e-12)
        # precomputed block sums give the same answer
        blocks = x[:, : n // b * b].reshape(4, -1, b).sum(axis=-1)
        np.testing.assert_allclose(max_window_sum_nonneg(x, k, b, blocks), want, rtol=1e-12)
    with pytest.raises(ValueError, match="k % b"):
        max_window_sum_nonneg(np.ones((1, k + b)), k, b + 1 if k % (b + 1) else b + 2)


def test_window_block_choice() -> None:
    assert window_block(900) == 20
    assert window_block(90) == 18
    assert window_block(15) is None  # no divisor in 8…64 with at least two blocks: cumsum path
    assert window_block(7) is None
    for k in range(1, 2000):
        b = window_block(k)
        assert b is None or (k % b == 0 and 8 <= b <= 64 and 2 * b <= k)


@given(st.integers(1, 200), st.integers(1, 70), st.integers(0, 2**32 - 1))
def test_sliding_sums_by_doubling(n: int, q: int, seed: int) -> None:
    assume(q <= n)
    v = np.random.default_rng(seed).uniform(0.0, 1.0, n)
    got = _sliding_sums_flat(v, q)
    np.testing.assert_allclose(got[: n - q + 1], np.convolve(v, np.ones(q), "valid"), rtol=1e-13)
    assert np.isnan(got[n - q + 1 :]).all()


@settings(max_examples=examples(200), deadline=None)
@given(concentration_rows(), st.sampled_from([1.0, 10.0, 60.0]), st.booleans())
def test_concentration_regular_matches_reference(
    case: tuple[np.ndarray, int], period: float, holes: bool
) -> None:
    x, _ = case
    x = x.copy()
    if holes:
        rng = np.random.default_rng(x.shape[1])
        x[rng.random(x.shape) < 0.1] = np.nan
    shift = x.shape[1] * period
    got = concentration_regular(
        x, period_s=period, shift_duration_s=shift, min_window_fraction=0.75
    )
    want = ref.concentration(x, period, shift, 0.75)
    for name in ("twa8h_mg_m3", "twa8h_projected_mg_m3", "mean_mg_m3", "max15min_mg_m3"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-12, atol=0)
    np.testing.assert_array_equal(got.max_mg_m3, want.max_mg_m3)
    np.testing.assert_array_equal(got.measured_s, want.measured_s)


def test_negative_concentration_rejected_in_any_block_and_row_kind() -> None:
    cases: list[tuple[int, int, float]] = [(-1, 5, -0.5), (2, 3, -1e-9)]
    for bad in cases:
        x = np.ones((40, 2000))
        x[bad[0], bad[1]] = bad[2]
        x[bad[0], bad[1] + 1] = np.nan if bad[0] == 2 else 1.0
        with pytest.raises(InputError, match="≥ 0"):
            concentration_regular(
                x, period_s=1.0, shift_duration_s=2000.0, min_window_fraction=0.75
            )


# --- vibration -----------------------------------------------------------------------------


@settings(max_examples=examples(100), deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=300),
        elements=st.floats(0.0, 1e3) | st.just(np.nan),
    )
)
def test_vibration_regular_matches_reference(x: np.ndarray) -> None:
    got = vibration_regular(x, period_s=1.0, shift_duration_s=float(x.shape[1]))
    want = ref.vibration(x, 1.0, float(x.shape[1]))
    np.testing.assert_allclose(got.a_rms_m_s2, want.a_rms_m_s2, rtol=1e-12, atol=0)
    # A(8) = √(Σa²t / 8 h) against a_rms·√(T/8 h): equal but for rounding of subnormal sums
    np.testing.assert_allclose(got.a8_m_s2, want.a8_m_s2, rtol=1e-12, atol=1e-150)
    np.testing.assert_array_equal(got.measured_s, want.measured_s)


# --- blocks and workers ----------------------------------------------------------------------


def test_results_do_not_depend_on_workers_or_blocks() -> None:
    rng = np.random.default_rng(3)
    n = 3600
    rows = block_rows(n) * 9 + 5  # several blocks and groups, a ragged last one
    noise_x = rng.normal(85.0, 6.0, (rows, n))
    noise_x[3, 10] = np.nan
    gas_x = np.abs(rng.normal(10.0, 4.0, (rows, n)))
    gas_x[rows - 2, 100:200] = np.nan
    vib_x = np.abs(rng.normal(2.0, 1.0, (rows, n)))
    shift = float(n)
    results = []
    for workers in (1, 2, 3):
        nm = noise_regular(
            noise_x, period_s=1.0, shift_duration_s=shift, dose_criterion_db=80.0, workers=workers
        )
        cm = concentration_regular(
            gas_x, period_s=1.0, shift_duration_s=shift, min_window_fraction=0.75, workers=workers
        )
        vm = vibration_regular(vib_x, period_s=1.0, shift_duration_s=shift, workers=workers)
        results.append((nm.laeq_db, nm.lamax_db, cm.twa8h_mg_m3, cm.max15min_mg_m3, vm.a8_m_s2))
        # row by row (one block each) gives the same values
    single = [
        noise_regular(
            noise_x[i], period_s=1.0, shift_duration_s=shift, dose_criterion_db=80.0
        ).laeq_db[0]
        for i in (0, 3, rows - 1)
    ]
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(single, results[0][0][[0, 3, rows - 1]])
    np.testing.assert_allclose(results[0][3], ref.max_window_mean(gas_x, 900, 0.75), rtol=1e-12)


def test_zero_sensors() -> None:
    x = np.empty((0, 100))
    assert noise_regular(
        x, period_s=1.0, shift_duration_s=100.0, dose_criterion_db=80.0, workers=2
    ).laeq_db.shape == (0,)
    assert vibration_regular(x, period_s=1.0, shift_duration_s=100.0, workers=2).a8_m_s2.shape == (
        0,
    )
    concentration = concentration_regular(
        x, period_s=1.0, shift_duration_s=100.0, min_window_fraction=0.75, workers=2
    )
    assert concentration.max15min_mg_m3.shape == (0,)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_workers_must_be_a_positive_integer(workers: object) -> None:
    with pytest.raises(InputError, match="workers"):
        noise_regular(
            np.ones((1, 10)),
            period_s=1.0,
            shift_duration_s=10.0,
            dose_criterion_db=80.0,
            workers=workers,  # type: ignore[arg-type]
        )


def _count_rows(rows: int, cols: int, workers: int) -> tuple[np.ndarray, int]:
    seen = np.zeros(rows, dtype=int)
    kernels: list[int] = []

    def make() -> Callable[[int, int], None]:
        kernels.append(1)

        def kernel(lo: int, hi: int) -> None:
            seen[lo:hi] += 1

        return kernel

    run_row_blocks(rows, cols, workers, make)
    return seen, len(kernels)


@pytest.mark.parametrize(
    ("rows", "cols", "workers"), [(1, 10, 2), (7, BLOCK_SAMPLES, 2), (100, 1000, 3), (5, 1, 8)]
)
def test_run_row_blocks_covers_every_row_once(rows: int, cols: int, workers: int) -> None:
    seen, kernels = _count_rows(rows, cols, workers)
    assert np.all(seen == 1)
    assert 1 <= kernels <= workers
