"""Bounds on В of many shifts at once, from bucket levels: a screen in front of the exact path.

A view that needs only the worst shift of a period (the risk board, the exports) would otherwise
run :func:`analytics.assess_workplace` once per shift. :func:`screen_shifts` takes each sensor's
bucket levels over all shifts of a workplace (each bucket holds its level for exactly
``bucket_s`` inside its shift, as the rollups do) and gives, per shift, an interval that is
certain to contain the exact (discrete В, continuous В) of that shift. The caller then runs the
exact path only on the shifts whose interval could hold the worst one; the exact path stays the
only source of the numbers served.

Why the intervals hold:

* The metrics are the exact path's formulas (energy mean, r.m.s., time-weighted mean, scaled
  to 8 h) over the same levels with every hold equal to ``bucket_s``; they differ only in the
  order of float64 summation, whose relative error is below ``n·2⁻⁵³`` (n ≤ 1,440 buckets a
  sensor-shift: about 1.6e-13). ``METRIC_RTOL``/``METRIC_ATOL`` are four orders above that.
* The 15-min maximum of a bucket-level step function is the largest bucket level when a bucket
  is at least as long as the window (a window inside that bucket reaches it; any window is a
  mean of levels). The exact path evaluates it from cumulative sums over the whole shift,
  whose rounding stays far below the same tolerance. Shorter buckets only bound it from above:
  such a sensor's shifts are left to the exact path.
* Classes come from ``classify`` at both ends of a metric's interval; since ``classify`` is a
  ``searchsorted`` it is monotone, so equal classes at both ends are the exact class. A shift
  with any sensor whose ends differ (a value within the tolerance of a band edge), a NaN, a
  negative level or an entered factor clashing with a measured one gets the widest interval:
  only the exact path decides it (or raises, as it always did).
* Within a class the position is monotone in the metric; ``POSITION_EPS`` covers the rounding
  of ``band_position`` (a power or a quotient, a few ulp of numbers of order 1), and the
  continuous В ``start + span·clip(p, 0, cap)`` is monotone in ``p`` for ``span ≥ 0`` in
  float64 too. A position clipped to 0 or to the cap at both ends is exactly the clipped value,
  so ties between shifts at a capped or a combination-raised В are kept exact.
* Factor and workplace values are maxima over members of the top class, so their bounds are
  the maxima of the members' bounds; the combination itself is taken on exact classes. The
  exception, hand-arm vibration from several sensors (tools) in one shift, whose √ΣA(8)² the
  exact path may class higher, is left to the exact path.
* The exact path classes an incomplete shift on its projected value; with every bucket inside
  its shift that is the bucket mean scaled to the shift, ``mean·T_shift/8 h``, as here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analytics.assess import (
    is_alarm_channel,
    normalize_unit,
    substance_bands,
    vibration_weighting,
)
from analytics.classes import ClassBands, HarmfulnessScale, WorkingClass, band_position, classify
from analytics.errors import AnalyticsError
from analytics.norms import Norms
from analytics.types import BoolArray, FloatArray, IntArray
from analytics.units import (
    MOLAR_VOLUME_20C_L_MOL,
    REFERENCE_DURATION_S,
    SHORT_TERM_WINDOW_S,
    acceleration_db,
)

#: Relative and absolute widening of every screened metric (see the module docstring).
METRIC_RTOL = 1e-9
METRIC_ATOL = 1e-9
#: Widening of a position inside a band before it is clipped and turned into continuous В.
POSITION_EPS = 1e-9

_LN10_OVER_10 = np.log(10.0) / 10.0
_CLASSES: tuple[WorkingClass, ...] = tuple(WorkingClass)
_RANKS = len(_CLASSES)


@dataclass(frozen=True, slots=True)
class BucketSeries:
    """One sensor's bucket levels over the shifts of one workplace.

    Attributes:
        sensor: sensor id.
        quantity, unit, substance: as in :class:`analytics.SensorSeries`.
        shift: index of the shift each bucket belongs to (0 … ``n_shifts − 1``).
        level: the bucket's representative level (energy-mean dB, r.m.s., mean) in ``unit``.
    """

    sensor: str
    quantity: str
    unit: str
    substance: str | None
    shift: IntArray
    level: FloatArray


@dataclass(frozen=True, slots=True)
class ShiftBounds:
    """Per shift: the exact ``(В, continuous В)`` lies in ``[(b_low, c_low), (b_high, c_high)]``
    (lexicographic order) whenever the shift is rated.

    Attributes:
        rated: certainly rated (some factor gets a class), with exact-class bounds.
        unrated: certainly not rated (no factor can get a class).
        Shifts that are neither have ``(−inf, −inf)``/``(inf, inf)``: only the exact path knows.
    """

    b_low: FloatArray
    c_low: FloatArray
    b_high: FloatArray
    c_high: FloatArray
    rated: BoolArray
    unrated: BoolArray


@dataclass(slots=True)
class _Factor:
    rank: IntArray  # −1 where the factor has no class in the shift
    c_low: FloatArray
    c_high: FloatArray


def _widen(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    margin = METRIC_RTOL * np.abs(x) + METRIC_ATOL
    return x - margin, x + margin


def _continuous(scale: HarmfulnessScale, rank: IntArray, position: FloatArray) -> FloatArray:
    start = np.array([scale.continuous_start[c] for c in _CLASSES], dtype=np.float64)
    span = np.array([scale.continuous_span[c] for c in _CLASSES], dtype=np.float64)
    r = np.maximum(rank, 0)
    p = np.minimum(np.maximum(position, 0.0), scale.position_cap)
    # Same operations as HarmfulnessScale.continuous, so a clipped position gives its exact value.
    return start[r] + span[r] * p


def _bounded(
    x: FloatArray, bands: ClassBands, scale: HarmfulnessScale
) -> tuple[IntArray, FloatArray, FloatArray, BoolArray]:
    """Class rank, continuous-В bounds and whether the class is certain, for a metric whose
    exact value lies within the tolerance of ``x``."""
    n = x.size
    ends = np.concatenate(_widen(x))  # both ends in one pass: these arrays are tiny
    r = classify(ends, bands)
    with np.errstate(invalid="ignore"):
        p = band_position(ends, bands)
    p[:n] -= POSITION_EPS
    p[n:] += POSITION_EPS
    c = _continuous(scale, np.concatenate((r[:n], r[:n])), p)
    certain = (r[:n] == r[n:]) & np.isfinite(p[:n]) & np.isfinite(p[n:]) & ~np.isnan(x)
    return r[:n], c[:n], c[n:], certain


def _means(series: BucketSeries, n_shifts: int, values: FloatArray) -> FloatArray:
    count = np.bincount(series.shift, minlength=n_shifts)
    total = np.bincount(series.shift, weights=values, minlength=n_shifts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _sensor(
    s: BucketSeries, norms: Norms, n_shifts: int, shift_duration_s: float, bucket_s: float
) -> tuple[str | None, IntArray, FloatArray, FloatArray, BoolArray]:
    """Factor name, class rank, continuous-В bounds and certainty per shift of one sensor
    (rank −1 and certain where the sensor has no buckets in the shift)."""
    scale = norms.harmfulness
    present = np.bincount(s.shift, minlength=n_shifts) > 0
    level = np.asarray(s.level, dtype=np.float64)
    negative = np.bincount(s.shift, weights=(level < 0.0), minlength=n_shifts) > 0
    bad = not bool(np.isfinite(level).all())
    scale_8h = shift_duration_s / REFERENCE_DURATION_S
    none = np.full(n_shifts, -1, dtype=np.intp)
    zeros = np.zeros(n_shifts)
    unit = normalize_unit(s.quantity, s.unit)
    if s.quantity == "noise_lcpeak" or is_alarm_channel(s.quantity, s.unit):
        return None, none, zeros, zeros, np.ones(n_shifts, dtype=bool)  # reported, never classed
    if s.quantity == "noise_laeq":
        negative[:] = False  # a level in dB may be negative; only the other kinds raise
    if s.quantity == "noise_laeq":
        energy = _means(s, n_shifts, np.exp(level * _LN10_OVER_10))
        with np.errstate(divide="ignore", invalid="ignore"):
            lex = 10.0 * np.log10(energy) + 10.0 * np.log10(scale_8h)
        rank, c_lo, c_hi, certain = _bounded(lex, norms.band("noise_lex8h"), scale)
        factor = "noise"
    elif s.quantity.startswith("vib_"):
        k, band, factor = vibration_weighting(norms, s.quantity)
        a8 = k * np.sqrt(_means(s, n_shifts, level * level)) * np.sqrt(scale_8h)
        rank, c_lo, c_hi, certain = _bounded(acceleration_db(a8), norms.band(band), scale)
    else:
        sub = norms.substance(s.substance or "")
        if unit == "ppm":
            if sub.molar_mass_g_mol is None:
                # The exact path raises for this sensor; let it.
                return None, none, zeros, zeros, ~present
            level = level * (sub.molar_mass_g_mol / MOLAR_VOLUME_20C_L_MOL)
        twa = _means(s, n_shifts, level) * scale_8h
        factor = f"{'chemical' if s.quantity == 'gas' else 'dust'}:{sub.id}"
        if sub.kind == "dust":
            if sub.pdk_ss_mg_m3 is None:
                # The exact path raises for this sensor; let it.
                return None, none, zeros, zeros, ~present
            bands = substance_bands(norms, sub)
            rank, c_lo, c_hi, certain = _bounded(twa / sub.pdk_ss_mg_m3, bands, scale)
        else:
            bands = substance_bands(norms, sub)
            candidates = []
            if sub.pdk_ss_mg_m3 is not None:
                candidates.append(_bounded(twa / sub.pdk_ss_mg_m3, bands, scale))
            if sub.pdk_max_mg_m3 is not None:
                peak = np.full(n_shifts, -np.inf)
                np.maximum.at(peak, s.shift, level)
                peak = np.where(present, peak, np.nan)
                found = _bounded(peak / sub.pdk_max_mg_m3, bands, scale)
                if bucket_s < SHORT_TERM_WINDOW_S:
                    # Only an upper bound on the 15-min maximum: the class is not pinned.
                    found = (found[0], found[1], found[2], np.zeros(n_shifts, dtype=bool))
                candidates.append(found)
            if not candidates:
                return None, none, zeros, zeros, ~present
            rank = np.max([c[0] for c in candidates], axis=0)
            certain = np.logical_and.reduce([c[3] for c in candidates])
            c_lo = np.max([np.where(c[0] == rank, c[1], -np.inf) for c in candidates], axis=0)
            c_hi = np.max([np.where(c[0] == rank, c[2], -np.inf) for c in candidates], axis=0)
    if bad:
        certain = np.zeros(n_shifts, dtype=bool)
    certain = np.where(present, certain & ~negative, True)
    return factor, np.where(present, rank, -1), c_lo, c_hi, certain


def screen_shifts(
    series: Sequence[BucketSeries],
    norms: Norms,
    *,
    n_shifts: int,
    shift_duration_s: float,
    bucket_s: float,
    entered: Sequence[Mapping[str, WorkingClass | str]],
) -> ShiftBounds:
    """Bounds on the exact (В, continuous В) of each of ``n_shifts`` shifts.

    Args:
        series: each sensor's buckets, every bucket wholly inside its shift and holding for
            ``bucket_s`` (a shift whose buckets do not should not be screened).
        norms: the norms profile.
        n_shifts: number of shifts.
        shift_duration_s: shift length.
        bucket_s: bucket width, seconds.
        entered: per shift, the classes entered for unmeasured factors.
    """
    scale = norms.harmfulness
    wide = ShiftBounds(
        np.full(n_shifts, -np.inf), np.full(n_shifts, -np.inf),
        np.full(n_shifts, np.inf), np.full(n_shifts, np.inf),
        np.zeros(n_shifts, dtype=bool), np.zeros(n_shifts, dtype=bool),
    )  # fmt: skip
    if any(v < 0.0 for v in scale.continuous_span.values()):
        return wide  # continuous В would not be monotone in exposure: nothing to bound
    certain = np.ones(n_shifts, dtype=bool)
    # Several hand-arm sensors in a shift: the exact path may class their √ΣA(8)², above any
    # single sensor's bound; leave those shifts to it.
    tools = np.zeros(n_shifts, dtype=np.intp)
    for s in series:
        if s.quantity == "vib_hav":
            tools += np.bincount(s.shift, minlength=n_shifts) > 0
    certain &= tools < 2
    factors: dict[str, _Factor] = {}
    try:
        for s in series:
            name, rank, c_lo, c_hi, ok = _sensor(s, norms, n_shifts, shift_duration_s, bucket_s)
            certain &= ok
            if name is None:
                continue
            f = factors.get(name)
            if f is None:
                factors[name] = _Factor(rank, np.where(rank >= 0, c_lo, -np.inf),
                                        np.where(rank >= 0, c_hi, -np.inf))  # fmt: skip
                continue
            top = np.maximum(f.rank, rank)
            f.c_low = np.maximum(np.where(f.rank == top, f.c_low, -np.inf),
                                 np.where(rank == top, c_lo, -np.inf))  # fmt: skip
            f.c_high = np.maximum(np.where(f.rank == top, f.c_high, -np.inf),
                                  np.where(rank == top, c_hi, -np.inf))  # fmt: skip
            f.rank = top
    except AnalyticsError:
        return wide  # the exact path raises the same error for every shift it assesses
    names = list(factors)
    entered_names = sorted({n for e in entered for n in e})
    n_f = len(names) + len(entered_names)
    rank_m = np.full((n_shifts, n_f), -1, dtype=np.intp)
    lo_m = np.full((n_shifts, n_f), -np.inf)
    hi_m = np.full((n_shifts, n_f), -np.inf)
    for j, name in enumerate(names):
        rank_m[:, j], lo_m[:, j], hi_m[:, j] = (
            factors[name].rank,
            factors[name].c_low,
            factors[name].c_high,
        )
    column = {n: len(names) + j for j, n in enumerate(entered_names)}
    try:
        for k, e in enumerate(entered):
            for n, value in e.items():
                c = WorkingClass.parse(value)
                if n in factors and factors[n].rank[k] >= 0:
                    certain[k] = False  # the exact path raises on the clash
                rank_m[k, column[n]] = c.rank
                lo_m[k, column[n]] = hi_m[k, column[n]] = scale.continuous(c, 0.0)
    except AnalyticsError:
        return wide
    c31, c32 = WorkingClass.C3_1.rank, WorkingClass.C3_2.rank
    cap = norms.combination_cap.rank
    three = norms.three_at_3_1_gives.rank
    highest = rank_m.max(axis=1) if n_f else np.full(n_shifts, -1, dtype=np.intp)
    result = highest.copy()
    result = np.where(((rank_m == c31).sum(axis=1) >= 3) & (result < three), three, result)
    raised = np.minimum(np.minimum(highest + 1, _RANKS - 1), cap)
    raise_it = ((rank_m >= c32).sum(axis=1) >= 2) & (highest < cap) & (raised > result)
    result = np.where(raise_it, raised, result)
    classes = list(WorkingClass)
    discrete = np.array([scale.discrete(c) for c in classes], dtype=np.float64)
    bottom = np.array([scale.continuous(c, 0.0) for c in classes], dtype=np.float64)
    at_top = rank_m == highest[:, None]
    top_lo = np.where(at_top, lo_m, -np.inf).max(axis=1, initial=-np.inf)
    top_hi = np.where(at_top, hi_m, -np.inf).max(axis=1, initial=-np.inf)
    r = np.maximum(result, 0)
    c_low = np.where(result == highest, top_lo, bottom[r])
    c_high = np.where(result == highest, top_hi, bottom[r])
    rated = certain & (highest >= 0)
    unrated = certain & (highest < 0)
    return ShiftBounds(
        b_low=np.where(rated, discrete[r], -np.inf),
        c_low=np.where(rated, c_low, -np.inf),
        b_high=np.where(rated, discrete[r], np.where(unrated, -np.inf, np.inf)),
        c_high=np.where(rated, c_high, np.where(unrated, -np.inf, np.inf)),
        rated=rated,
        unrated=unrated,
    )


__all__ = ["METRIC_ATOL", "METRIC_RTOL", "POSITION_EPS", "BucketSeries", "ShiftBounds",
           "screen_shifts"]  # fmt: skip
