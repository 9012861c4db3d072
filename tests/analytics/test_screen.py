"""``screen_shifts`` against the exact per-shift path: the exact (В, continuous В) of a shift
must always lie within the screened bounds, including levels placed exactly on band edges."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import Norms, SensorSeries, WorkingClass, assess_workplace, load_norms
from analytics.screen import BucketSeries, ShiftBounds, screen_shifts

NORMS = load_norms("default")

# (quantity, unit, substance): the kinds the rollup views assess.
KINDS: list[tuple[str, str, str | None]] = [
    ("noise_laeq", "dB(A)", None),
    ("vib_hav", "m/s2", None),
    ("vib_wbv_z", "m/s2", None),
    ("vib_wbv_x", "m/s2", None),
    ("gas", "mg/m3", "CO"),
    ("gas", "mg/m3", "NO2"),
    ("gas", "ppm", "H2S"),
    ("dust", "mg/m3", "silica_10_70"),
    ("dust", "mg/m3", "silica_gt70"),
]


def edge_level(kind: int, edge: float, scale_8h: float) -> float:
    """A constant bucket level that puts the metric exactly on ``edge`` (in exact arithmetic)."""
    quantity, unit, substance = KINDS[kind]
    if quantity == "noise_laeq":
        return edge - 10.0 * math.log10(scale_8h)
    if quantity.startswith("vib_"):
        k = 1.0 if quantity == "vib_hav" else NORMS.k_z if quantity.endswith("z") else NORMS.k_xy
        return 1e-6 * 10.0 ** (edge / 20.0) / (k * math.sqrt(scale_8h))
    sub = NORMS.substance(substance or "")
    limit = sub.pdk_ss_mg_m3 or sub.pdk_max_mg_m3 or 1.0
    level = edge * limit / scale_8h
    if unit == "ppm":
        assert sub.molar_mass_g_mol is not None
        level /= sub.molar_mass_g_mol / 24.04
    return level


def bands_of(kind: int) -> tuple[float, ...]:
    quantity, _, substance = KINDS[kind]
    if quantity == "noise_laeq":
        return NORMS.band("noise_lex8h").upper
    if quantity == "vib_hav":
        return NORMS.band("vibration_hand_arm").upper
    if quantity.startswith("vib_"):
        axis = "z" if quantity.endswith("z") else "xy"
        return NORMS.band(f"vibration_whole_body_{axis}").upper
    sub = NORMS.substance(substance or "")
    if sub.kind == "dust":
        strong = (sub.pdk_ss_mg_m3 or 0.0) <= NORMS.dust_fibrogenic_threshold_mg_m3
        return NORMS.band("dust_fibrogenic_strong" if strong else "dust_fibrogenic_weak").upper
    return NORMS.band("chemical_acute").upper


TYPICAL = {
    "noise_laeq": (70.0, 125.0),
    "vib_hav": (0.5, 12.0),
    "vib_wbv_z": (0.1, 3.0),
    "vib_wbv_x": (0.1, 3.0),
}


@dataclass(frozen=True)
class Case:
    width_s: float
    shift_s: float
    sensors: list[tuple[int, list[list[tuple[int, float]]]]]  # kind, per shift (bucket, level)
    entered: list[dict[str, str]]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    width_s, per_shift = draw(st.sampled_from([(3600.0, 8), (3600.0, 12), (60.0, 30)]))
    shift_s = width_s * per_shift
    scale_8h = shift_s / 28_800.0
    n_shifts = draw(st.integers(1, 4))
    sensors = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, len(KINDS) - 1))
        quantity = KINDS[kind][0]
        lo, hi = TYPICAL.get(quantity, (0.0, 40.0))
        edges = bands_of(kind)
        shifts = []
        for _ in range(n_shifts):
            buckets = draw(st.lists(st.integers(0, per_shift - 1), max_size=per_shift, unique=True))
            style = draw(st.sampled_from(["random", "edge", "constant"]))
            edge = edge_level(kind, draw(st.sampled_from(edges)), scale_8h)
            base = draw(st.floats(lo, hi))
            levels = []
            for b in sorted(buckets):
                if style == "edge":
                    levels.append((b, edge))
                elif style == "constant":
                    levels.append((b, base))
                else:
                    levels.append((b, draw(st.floats(lo, hi))))
            shifts.append(levels)
        sensors.append((kind, shifts))
    classes = [c.value for c in WorkingClass]
    entered = [
        draw(
            st.dictionaries(st.sampled_from(["microclimate", "lighting"]), st.sampled_from(classes))
        )
        for _ in range(n_shifts)
    ]
    return Case(width_s, shift_s, sensors, entered)


def exact(case: Case, k: int) -> tuple[int, float] | None:
    """(В, continuous В) of shift ``k`` as the rollup views compute it, None if not rated."""
    series = []
    for j, (kind, shifts) in enumerate(case.sensors):
        got = shifts[k]
        if not got:
            continue
        quantity, unit, substance = KINDS[kind]
        offset = np.array([b * case.width_s for b, _ in got])
        time_s = np.empty(2 * offset.size)
        time_s[0::2] = offset
        time_s[1::2] = offset + case.width_s / 2.0
        values = np.repeat(np.array([v for _, v in got]), 2)
        series.append(SensorSeries(f"s{j}", quantity, unit, substance, time_s, values))
    if not series and not case.entered[k]:
        return None
    a = assess_workplace(
        series,
        NORMS,
        shift_duration_s=case.shift_s,
        max_gap_s=case.width_s,
        entered_factors=case.entered[k],
    )
    if a.b is None:
        return None
    assert a.b_continuous is not None
    return a.b, float(a.b_continuous)


def screened(case: Case, norms: Norms) -> ShiftBounds:
    n = len(case.entered)
    series = []
    for j, (kind, shifts) in enumerate(case.sensors):
        quantity, unit, substance = KINDS[kind]
        shift = np.array([k for k in range(n) for _ in shifts[k]], dtype=np.intp)
        level = np.array([v for k in range(n) for _, v in shifts[k]], dtype=np.float64)
        series.append(BucketSeries(f"s{j}", quantity, unit, substance, shift, level))
    return screen_shifts(
        series,
        norms,
        n_shifts=n,
        shift_duration_s=case.shift_s,
        bucket_s=case.width_s,
        entered=case.entered,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_exact_b_lies_within_the_screened_bounds(case: Case) -> None:
    bounds = screened(case, NORMS)
    for k in range(len(case.entered)):
        found = exact(case, k)
        low = (bounds.b_low[k], bounds.c_low[k])
        high = (bounds.b_high[k], bounds.c_high[k])
        if bounds.rated[k]:
            assert found is not None, k
            assert low <= found <= high, (k, low, found, high)
            assert bounds.b_low[k] == bounds.b_high[k] == found[0]
        elif bounds.unrated[k]:
            assert found is None, k
        else:
            assert low == (-math.inf, -math.inf)
            assert high == (math.inf, math.inf)


def test_bounds_are_tight_away_from_band_edges() -> None:
    # The screen is only worth it if ordinary shifts are decided by it.
    rng = np.random.default_rng(3)
    n = 30
    kinds = [0, 0, 1, 3, 4, 6]
    sensors = []
    for kind in kinds:
        lo, hi = TYPICAL.get(KINDS[kind][0], (0.5, 10.0))
        sensors.append(
            (kind, [[(b, float(rng.uniform(lo, hi))) for b in range(8)] for _ in range(n)])
        )
    case = Case(3600.0, 28_800.0, sensors, [{} for _ in range(n)])
    bounds = screened(case, NORMS)
    assert bounds.rated.all()
    assert np.all(bounds.c_high - bounds.c_low < 1e-6)
    for k in range(n):
        found = exact(case, k)
        assert found is not None
        assert (bounds.b_low[k], bounds.c_low[k]) <= found <= (bounds.b_high[k], bounds.c_high[k])


def test_a_clash_with_an_entered_factor_is_left_to_the_exact_path() -> None:
    case = Case(3600.0, 28_800.0, [(0, [[(0, 90.0)]])], [{"noise": "3.1"}])
    bounds = screened(case, NORMS)
    assert not bounds.rated[0]
    assert not bounds.unrated[0]
