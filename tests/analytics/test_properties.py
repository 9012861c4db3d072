"""Invariants (hypothesis) and a slow pure-Python loop oracle against the vectorized code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import (
    Norms,
    WorkingClass,
    band_position,
    classify,
    concentration_irregular,
    concentration_regular,
    noise_irregular,
    noise_regular,
    vibration_irregular,
)
from analytics.noise import ENERGY_F32_MAX_ERROR_DB

levels = st.lists(st.floats(40.0, 130.0), min_size=1, max_size=200)
shift_h = st.floats(0.5, 12.0)


@given(levels, shift_h)
def test_lex_never_exceeds_loudest_plus_duration_term(xs: list[float], hours: float) -> None:
    x = np.array([xs])
    period = hours * 3600.0 / len(xs)
    m = noise_regular(x, period_s=period, shift_duration_s=hours * 3600.0, dose_criterion_db=80.0)
    bound = max(xs) + 10.0 * math.log10(hours / 8.0)
    assert m.lex8h_db[0] <= bound + 1e-9
    assert m.laeq_db[0] <= max(xs) + 1e-9  # float32 terms are exp(≤ 0) ≤ 1: still exact
    # The float32 exponent may put LAeq a hair below the quietest sample (documented bound).
    assert m.laeq_db[0] >= min(xs) - 1e-9 - ENERGY_F32_MAX_ERROR_DB


@given(st.floats(0.0, 1e4), st.integers(1, 500), st.floats(1.0, 120.0))
def test_constant_signal_twa_is_the_constant(c: float, n: int, period: float) -> None:
    x = np.full((1, n), c)
    m = concentration_regular(
        x, period_s=period, shift_duration_s=n * period, min_window_fraction=0.75
    )
    shift_over_8h = n * period / 28800.0
    assert m.mean_mg_m3[0] == pytest.approx(c, rel=1e-12, abs=1e-12)
    assert m.twa8h_mg_m3[0] == pytest.approx(c * shift_over_8h, rel=1e-12, abs=1e-12)
    assert m.coverage[0] == pytest.approx(1.0)


@given(st.lists(st.floats(0.0, 500.0), min_size=2, max_size=300))
def test_twa_le_max_and_max15_between_mean_and_max(xs: list[float]) -> None:
    x = np.array([xs])
    m = concentration_regular(
        x, period_s=60.0, shift_duration_s=8 * 3600.0, min_window_fraction=0.75
    )
    assert m.twa8h_mg_m3[0] <= m.max_mg_m3[0] + 1e-9
    if len(xs) >= 15:
        assert m.max15min_mg_m3[0] <= m.max_mg_m3[0] + 1e-9
        # Every window's mean is a lower bound; the overall mean only when the 15-min windows
        # tile the series (xs = [1, 0 × 14, 1] has mean 1/8 but no window above 1/15).
        assert m.max15min_mg_m3[0] >= max(np.mean(xs[:15]), np.mean(xs[-15:])) - 1e-9
        if len(xs) % 15 == 0:
            assert m.max15min_mg_m3[0] >= m.mean_mg_m3[0] - 1e-9


@given(st.lists(st.floats(-10.0, 200.0), min_size=2, max_size=50))
def test_class_monotone_and_continuous_b_within_grade(norms: Norms, xs: list[float]) -> None:
    for name, bands in norms.bands.items():
        x = np.sort(np.array(xs) if bands.scale == "db" else np.abs(np.array(xs)) / 10.0)
        ranks = classify(x, bands)
        assert np.all(np.diff(ranks) >= 0), name
        pos = band_position(x, bands)
        conts = []
        for r, p in zip(ranks, pos, strict=True):
            cls = list(WorkingClass)[int(r)]
            d = norms.harmfulness.discrete(cls)
            c = norms.harmfulness.continuous(cls, float(p))
            assert d <= c < d + 1, (name, cls, p, c)
            conts.append(c)
        assert np.all(np.diff(conts) >= -1e-12), name


# --- slow oracle ---------------------------------------------------------------------------


def oracle(
    times: list[float], values: list[float], shift: float, max_gap: float
) -> dict[str, float]:
    """Plain loops implementing the hold rule literally (issue 3; issue 13: no hold longer
    than the gap limit; issue 15: every sample counts, coverage inside the shift)."""
    n = len(times)
    intervals = [times[i + 1] - times[i] for i in range(n - 1)]
    if intervals:
        s = sorted(intervals)
        median = (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2.0
    else:
        median = 1.0
    segs = []
    covered = 0.0
    for i in range(n):
        if i == n - 1:
            hold = min(median, max_gap)
        else:
            d = times[i + 1] - times[i]
            hold = d if d <= max_gap else min(median, max_gap)
        segs.append((times[i], hold, values[i]))
        covered += min(max(times[i] + hold, 0.0), shift) - min(max(times[i], 0.0), shift)
    measured = sum(d for _, d, _ in segs)
    dose = sum(d * v for _, d, v in segs)
    energy = sum(d * 10 ** (v / 10) for _, d, v in segs)
    vmax = max((v for _, d, v in segs if d > 0), default=math.nan)
    # 15-min windows: try window starts at every segment edge and edge − 900 s.
    lo = segs[0][0]
    hi = segs[-1][0] + segs[-1][1]
    best = -math.inf
    starts = [a for a, _, _ in segs] + [a + d for a, d, _ in segs]
    starts += [s - 900.0 for s in starts]
    for w0 in starts:
        w1 = w0 + 900.0
        if w0 < lo - 1e-9 or w1 > hi + 1e-9:
            continue
        m = 0.0
        g = 0.0
        for a, d, v in segs:
            ov = max(0.0, min(a + d, w1) - max(a, w0))
            m += ov
            g += ov * v
        if m >= 0.75 * 900.0 - 1e-9:
            best = max(best, g / m)
    rest = max(shift - covered, 0.0)
    return {
        "measured": measured,
        "covered": covered,
        "twa": dose / 28800.0,
        "twa_projected": (dose + dose / measured * rest) / 28800.0 if measured else math.nan,
        "lex": 10 * math.log10(energy / 28800.0) if measured > 0 else math.nan,
        "mean": dose / measured if measured > 0 else math.nan,
        "laeq": 10 * math.log10(energy / measured) if measured > 0 else math.nan,
        "max": vmax,
        "max15": best if best > -math.inf else math.nan,
        "a_rms": math.sqrt(sum(d * v * v for _, d, v in segs) / measured) if measured else math.nan,
    }


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_vectorized_matches_loop_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shift = 2 * 3600.0
    max_gap = 120.0
    groups_t: list[np.ndarray] = []
    groups_v: list[np.ndarray] = []
    for _ in range(int(rng.integers(1, 6))):
        n = int(rng.integers(1, 80))
        dt = rng.choice([5.0, 10.0, 30.0, 60.0, 400.0], size=n, p=[0.3, 0.3, 0.2, 0.15, 0.05])
        t = rng.uniform(-60.0, 600.0) + np.concatenate(([0.0], np.cumsum(dt[:-1])))
        groups_t.append(t)
        groups_v.append(rng.uniform(50.0, 120.0, size=n))
    t_all = np.concatenate(groups_t)
    v_all = np.concatenate(groups_v)
    offsets = np.cumsum([0] + [g.size for g in groups_t[:-1]])
    kw = {"shift_duration_s": shift, "max_gap_s": max_gap}
    cm = concentration_irregular(v_all, t_all, offsets, min_window_fraction=0.75, **kw)
    nm = noise_irregular(v_all, t_all, offsets, dose_criterion_db=80.0, **kw)
    vm = vibration_irregular(v_all / 10.0, t_all, offsets, **kw)
    for g, (t, v) in enumerate(zip(groups_t, groups_v, strict=True)):
        o = oracle(list(t), list(v), shift, max_gap)
        assert cm.measured_s[g] == pytest.approx(o["measured"], abs=1e-6)
        assert cm.coverage[g] == pytest.approx(min(o["covered"] / shift, 1.0), abs=1e-9)
        if o["measured"] > 0:
            assert cm.twa8h_mg_m3[g] == pytest.approx(o["twa"], rel=1e-9)
            assert cm.twa8h_projected_mg_m3[g] == pytest.approx(o["twa_projected"], rel=1e-9)
            assert nm.lex8h_db[g] == pytest.approx(o["lex"], abs=1e-9)
            assert cm.mean_mg_m3[g] == pytest.approx(o["mean"], rel=1e-9)
            assert nm.laeq_db[g] == pytest.approx(o["laeq"], abs=1e-9)
            assert vm.a_rms_m_s2[g] == pytest.approx(o["a_rms"] / 10.0, rel=1e-9)
            assert cm.max_mg_m3[g] == pytest.approx(o["max"])
        if math.isnan(o["max15"]):
            assert math.isnan(cm.max15min_mg_m3[g])
        else:
            assert cm.max15min_mg_m3[g] == pytest.approx(o["max15"], rel=1e-9)


def test_regular_and_irregular_agree_with_gaps() -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(60.0, 110.0, size=(3, 2880))
    x[1, 100:400] = np.nan  # a 30-min hole (regular grid: NaN = unmeasured)
    reg = noise_regular(x, period_s=10.0, shift_duration_s=28800.0, dose_criterion_db=80.0)
    t = np.tile(np.arange(2880) * 10.0, 3)
    keep = ~np.isnan(x.ravel())
    counts = keep.reshape(3, -1).sum(axis=1)
    offs = np.concatenate(([0], np.cumsum(counts)[:-1]))
    irr = noise_irregular(
        x.ravel()[keep],
        t[keep],
        offs,
        shift_duration_s=28800.0,
        max_gap_s=60.0,
        dose_criterion_db=80.0,
    )
    np.testing.assert_allclose(irr.laeq_db, reg.laeq_db, atol=1e-9)
    np.testing.assert_allclose(irr.coverage, reg.coverage, atol=1e-12)
    assert reg.coverage[1] == pytest.approx(1 - 300 / 2880)
