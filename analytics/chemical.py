"""Gas, vapour and dust concentrations per sensor over a shift, vectorized across sensors.

* 8-h TWA ``= Σ Cᵢtᵢ / 8 h`` over every sample (29 CFR 1910.1000(d)(1)(i); EN 689:2018
  §3.1.5). ``coverage`` = measured time inside the declared shift / shift length (at most 1);
  ``twa8h_projected_mg_m3`` fills the unmeasured part of the shift at the measured mean, never
  at zero (:func:`analytics.sums.project_unmeasured`): ``(Σ Cᵢtᵢ + C̄·T_unmeasured) / 8 h``,
  equal to the TWA at full coverage. The caller flags coverage below the profile's minimum
  (75 %) as insufficient data;
* mean over the measured time ``C̄ = Σ Cᵢtᵢ / Σ tᵢ``;
* maximum rolling 15-min mean (windows need ``min_window_fraction`` of 15 min measured);
* instantaneous maximum;
* ppm → mg/m³ in :func:`analytics.units.ppm_to_mg_m3`; mixtures ``Σ Cᵢ/ПДКᵢ`` in
  :func:`mixture_index`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics._grid import (
    as_grid,
    block_rows,
    check_workers,
    grid_covered,
    grid_max,
    grid_sum_count,
    irregular,
    irregular_max,
    irregular_weighted,
    run_row_blocks,
)
from analytics.errors import InputError
from analytics.sampling import (
    max_window_sum_nonneg,
    rolling_max_mean_irregular,
    rolling_max_mean_regular,
    rolling_max_sum_cumsum,
    window_block,
)
from analytics.sums import coverage_of, project_unmeasured, twa_8h_from_dose
from analytics.types import FloatArray
from analytics.units import REFERENCE_DURATION_S, SHORT_TERM_WINDOW_S

#: Row groups for concentrations, in row blocks: the passes run block by block inside a group,
#: the refinement of the 15-min maximum on the whole group (~2 MiB, in L2/L3), so numpy's fixed
#: cost per call is spread over many candidates. Measured: 4–8 blocks best; 16 and more ~2×
#: slower (the group no longer stays in the shared L3 of the virtual machine).
GAS_GROUP_BLOCKS = 4


@dataclass(frozen=True, slots=True)
class ConcentrationMetrics:
    """Per-sensor concentration metrics (mg/m³), one value per sensor in every field."""

    twa8h_mg_m3: FloatArray
    mean_mg_m3: FloatArray
    max15min_mg_m3: FloatArray
    max_mg_m3: FloatArray
    measured_s: FloatArray
    coverage: FloatArray
    twa8h_projected_mg_m3: FloatArray
    unmeasured_s: FloatArray


def twa_8h(
    conc_mg_m3: FloatArray | float, duration_s: FloatArray | float, axis: int = -1
) -> FloatArray:
    """``TWA = Σ Cᵢtᵢ / 8 h`` for piecewise-constant exposure (29 CFR 1910.1000(d)(1)(i))."""
    c = np.asarray(conc_mg_m3, dtype=np.float64)
    t = np.asarray(duration_s, dtype=np.float64)
    if np.any(c < 0.0) or np.any(t < 0.0):
        raise InputError("concentrations and durations must be ≥ 0")
    return np.asarray(np.sum(c * t, axis=axis), dtype=np.float64) / REFERENCE_DURATION_S


def mixture_index(
    conc: FloatArray | float, limit: FloatArray | float, axis: int = -1
) -> FloatArray:
    """Equivalent exposure of a mixture ``E_m = Σ Cᵢ/Lᵢ`` (29 CFR 1910.1000(d)(2)(i)).

    For unidirectional substances the mixture exceeds its limit when ``E_m > 1``.
    """
    c = np.asarray(conc, dtype=np.float64)
    lim = np.asarray(limit, dtype=np.float64)
    if np.any(lim <= 0.0):
        raise InputError("every limit must be positive")
    if np.any(c < 0.0):
        raise InputError("concentrations must be ≥ 0")
    return np.asarray(np.sum(c / lim, axis=axis), dtype=np.float64)


def _finish(
    dose: FloatArray,
    measured: FloatArray,
    covered: FloatArray,
    max15: FloatArray,
    cmax: FloatArray,
    shift_duration_s: float,
) -> ConcentrationMetrics:
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(measured > 0.0, dose / np.where(measured > 0.0, measured, 1.0), np.nan)
    return ConcentrationMetrics(
        twa8h_mg_m3=np.where(measured > 0.0, twa_8h_from_dose(dose), np.nan),
        mean_mg_m3=mean,
        max15min_mg_m3=max15,
        max_mg_m3=cmax,
        measured_s=measured,
        coverage=coverage_of(covered, shift_duration_s),
        twa8h_projected_mg_m3=twa_8h_from_dose(
            project_unmeasured(dose, measured, covered, shift_duration_s)
        ),
        unmeasured_s=np.maximum(shift_duration_s - covered, 0.0),
    )


def concentration_regular(
    conc_mg_m3: object,
    *,
    period_s: float,
    shift_duration_s: float,
    min_window_fraction: float,
    workers: int = 1,
) -> ConcentrationMetrics:
    """Concentration metrics for a regular grid ``(sensors, samples)``, mg/m³, NaN = unmeasured.

    The 15-min window spans ``round(900 s / period_s)`` samples (at least one).

    Rows are processed in cache-sized blocks, ``workers`` threads at a time (the result does
    not depend on ``workers``): one pass each for the maximum, the minimum (validation) and the
    block sums, which give the total and drive the exact bound-and-refine 15-min maximum
    (:func:`analytics.sampling.max_window_sum_nonneg`). Rows with NaN or inf take the masked
    path.
    """
    x = as_grid(conc_mg_m3, "conc_mg_m3", period_s, shift_duration_s)
    workers = check_workers(workers)
    rows, n = x.shape
    window = max(1, round(SHORT_TERM_WINDOW_S / period_s))
    b = window_block(window)
    blocked = b is not None and n >= window + b
    total = np.empty(rows)
    cmax = np.empty(rows)
    low = np.empty(rows)
    max15 = np.full(rows, np.nan)

    def kernel(lo: int, hi: int) -> None:
        xg = np.ascontiguousarray(x[lo:hi])
        sums = np.empty((hi - lo, n // b)) if blocked and b is not None else None
        step = block_rows(n)
        for i in range(0, hi - lo, step):  # L2-sized passes: maximum, minimum, block sums
            j = min(i + step, hi - lo)
            xb = xg[i:j]
            np.maximum.reduce(xb, axis=-1, out=cmax[lo + i : lo + j])
            np.minimum.reduce(xb, axis=-1, out=low[lo + i : lo + j])
            if sums is not None and b is not None:
                part = sums[i:j]
                np.einsum("ijk->ij", xb[:, : part.shape[1] * b].reshape(*part.shape, b), out=part)
            else:
                np.add.reduce(xb, axis=-1, out=total[lo + i : lo + j])
        if sums is not None and b is not None:
            np.add.reduce(sums, axis=-1, out=total[lo:hi])
            if n % b:
                total[lo:hi] += xg[:, n - n % b :].sum(axis=-1)
        ok = np.isfinite(total[lo:hi]) & (low[lo:hi] >= 0.0)
        if not ok.any() or n < window:
            return
        # The 15-min maximum on the whole group: its refinement step works on all candidates
        # of the group at once, so numpy's fixed cost per call is spread over many rows.
        if sums is not None and b is not None:
            sel = ok if not ok.all() else slice(None)
            best = max_window_sum_nonneg(xg[sel], window, b, sums[sel])
        else:
            best = rolling_max_sum_cumsum(xg[ok], window)
        max15[lo + np.flatnonzero(ok)] = best / window

    group = GAS_GROUP_BLOCKS * block_rows(n) * n
    run_row_blocks(rows, n, workers, lambda: kernel, block_samples=group)
    count = np.full(rows, float(n))
    slow = np.flatnonzero(~np.isfinite(total))
    if np.any(low < 0.0) or (slow.size and np.any(np.fmin.reduce(x[slow], axis=-1) < 0.0)):
        raise InputError("conc_mg_m3 must be ≥ 0 (negative concentrations are sensor faults)")
    if slow.size:
        xs = x[slow]
        cmax[slow] = grid_max(xs)
        if np.any(np.isposinf(cmax[slow])):
            raise InputError("conc_mg_m3 contains +inf")
        total[slow], count[slow] = grid_sum_count(xs)
        max15[slow] = rolling_max_mean_regular(
            xs, window_samples=window, min_window_fraction=min_window_fraction
        )
    covered = grid_covered(x, count, period_s, shift_duration_s)
    return _finish(total * period_s, count * period_s, covered, max15, cmax, shift_duration_s)


def concentration_irregular(
    conc_mg_m3: object,
    time_s: object,
    offsets: object,
    *,
    shift_duration_s: float,
    max_gap_s: float,
    min_window_fraction: float,
    fallback_interval_s: float = 1.0,
) -> ConcentrationMetrics:
    """Concentration metrics for concatenated irregular samples with group ``offsets``."""
    x, holds = irregular(
        conc_mg_m3, time_s, offsets, "conc_mg_m3", shift_duration_s, max_gap_s, fallback_interval_s
    )
    if np.any(x < 0.0):
        bad = int(np.flatnonzero(x < 0.0)[0])
        raise InputError(
            f"conc_mg_m3 must be ≥ 0; sample {bad} is {x[bad]} (negative concentrations are "
            "sensor faults: drop them or fix the zero offset)"
        )
    dose, measured, covered = irregular_weighted(x, holds, shift_duration_s)
    max15 = rolling_max_mean_irregular(
        x, holds, window_s=SHORT_TERM_WINDOW_S, min_window_fraction=min_window_fraction
    )
    return _finish(dose, measured, covered, max15, irregular_max(x, holds), shift_duration_s)


__all__ = [
    "ConcentrationMetrics",
    "concentration_irregular",
    "concentration_regular",
    "mixture_index",
    "twa_8h",
]
