"""Vibration exposure A(8) per sensor over a shift, vectorized across sensors.

* ``A(8) = k·√( Σ aᵢ²·tᵢ / 8 h )`` (ISO 5349-1:2001 eq. 3 for hand-arm with the vector sum
  ``a_hv``; ISO 2631-1:1997 and Directive 2002/44/EC Annex B for whole-body, per axis, with the
  multiplying factor ``k`` = 1.4 for x/y under the EU directive, 1.0 where, as in the Russian
  and Kazakh tables of the default profile, X/Y carry their own lower limit);
* the sum runs over every sample (nothing cut at the shift end); ``coverage`` = measured time
  inside the declared shift / shift length; ``a8_projected_m_s2`` fills the unmeasured part of
  the shift at the measured r.m.s. (:func:`analytics.sums.project_unmeasured`), equal to
  ``a8_m_s2`` at full coverage;
* level ``L = 20·lg(A(8) / 10⁻⁶ m/s²)`` dB (ISO 1683:2015).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics._grid import (
    RowKernel,
    as_grid,
    check_positive,
    check_workers,
    grid_covered,
    grid_max,
    grid_sum_count,
    irregular,
    irregular_weighted,
    run_row_blocks,
)
from analytics.errors import InputError
from analytics.sums import a8_from_energy, coverage_of, project_unmeasured
from analytics.types import FloatArray
from analytics.units import REFERENCE_DURATION_S, acceleration_db


@dataclass(frozen=True, slots=True)
class VibrationMetrics:
    """Per-sensor vibration metrics, one value per sensor in every field."""

    a_rms_m_s2: FloatArray
    a8_m_s2: FloatArray
    a8_db: FloatArray
    measured_s: FloatArray
    coverage: FloatArray
    a8_projected_m_s2: FloatArray
    a8_projected_db: FloatArray
    unmeasured_s: FloatArray


def a8(
    a_m_s2: FloatArray | float, exposure_duration_s: FloatArray | float, k: float = 1.0
) -> FloatArray:
    """Partial daily exposure ``A(8) = k·a·√(T / 8 h)`` of one operation (ISO 5349-1 eq. 3)."""
    t = np.asarray(exposure_duration_s, dtype=np.float64)
    if np.any(t < 0.0):
        raise InputError("exposure_duration_s must be ≥ 0")
    return k * np.asarray(a_m_s2, np.float64) * np.sqrt(t / REFERENCE_DURATION_S)


def combine_a8(partial_a8_m_s2: FloatArray | float, axis: int = -1) -> FloatArray:
    """Total daily exposure from partial exposures: ``A(8) = √(Σ Aᵢ(8)²)`` (ISO 5349-1 eq. 4)."""
    p = np.asarray(partial_a8_m_s2, dtype=np.float64)
    return np.sqrt(np.asarray(np.sum(p * p, axis=axis), dtype=np.float64))


def _finish(
    energy: FloatArray,
    measured: FloatArray,
    covered: FloatArray,
    shift_duration_s: float,
    k: float,
) -> VibrationMetrics:
    with np.errstate(divide="ignore", invalid="ignore"):
        a_rms = np.where(measured > 0.0, np.sqrt(energy / measured), np.nan)
        a8_value = np.where(measured > 0.0, a8_from_energy(energy, k), np.nan)
        projected = a8_from_energy(
            project_unmeasured(energy, measured, covered, shift_duration_s), k
        )
        return VibrationMetrics(
            a_rms_m_s2=a_rms,
            a8_m_s2=a8_value,
            a8_db=acceleration_db(a8_value),
            measured_s=measured,
            coverage=coverage_of(covered, shift_duration_s),
            a8_projected_m_s2=projected,
            a8_projected_db=acceleration_db(projected),
            unmeasured_s=np.maximum(shift_duration_s - covered, 0.0),
        )


def vibration_regular(
    a_m_s2: object,
    *,
    period_s: float,
    shift_duration_s: float,
    k: float = 1.0,
    workers: int = 1,
) -> VibrationMetrics:
    """A(8) per sensor for a regular grid ``(sensors, samples)`` of r.m.s. accelerations.

    Rows are processed in cache-sized blocks, ``workers`` threads at a time (the result does
    not depend on ``workers``): ``Σ aᵢ²`` with one fused multiply-add pass (``einsum``) and the
    minimum for validation; rows with NaN or inf take the masked path.
    """
    check_positive("k", k)
    x = as_grid(a_m_s2, "a_m_s2", period_s, shift_duration_s)
    workers = check_workers(workers)
    rows, n = x.shape
    energy = np.empty(rows)
    low = np.empty(rows)

    def make_kernel() -> RowKernel:
        def kernel(lo: int, hi: int) -> None:
            xb = np.ascontiguousarray(x[lo:hi])
            np.einsum("ij,ij->i", xb, xb, out=energy[lo:hi])
            np.minimum.reduce(xb, axis=-1, out=low[lo:hi])

        return kernel

    run_row_blocks(rows, n, workers, make_kernel)
    count = np.full(rows, float(n))
    slow = np.flatnonzero(~np.isfinite(energy))  # NaN or ±inf somewhere (or overflow)
    if np.any(low < 0.0) or (
        slow.size
        and (
            np.any(np.fmin.reduce(x[slow], axis=-1) < 0.0) or np.any(np.isposinf(grid_max(x[slow])))
        )
    ):
        raise InputError("a_m_s2 must be finite and ≥ 0 (r.m.s. accelerations, m/s²)")
    if slow.size:
        xs = x[slow]
        energy[slow], count[slow] = grid_sum_count(xs * xs)
    covered = grid_covered(x, count, period_s, shift_duration_s)
    return _finish(energy * period_s, count * period_s, covered, shift_duration_s, k)


def vibration_irregular(
    a_m_s2: object,
    time_s: object,
    offsets: object,
    *,
    shift_duration_s: float,
    max_gap_s: float,
    k: float = 1.0,
    fallback_interval_s: float = 1.0,
) -> VibrationMetrics:
    """A(8) per sensor for concatenated irregular samples with group ``offsets``."""
    check_positive("k", k)
    x, holds = irregular(
        a_m_s2, time_s, offsets, "a_m_s2", shift_duration_s, max_gap_s, fallback_interval_s
    )
    if np.any(x < 0.0):
        raise InputError("a_m_s2 must be ≥ 0 (r.m.s. accelerations, m/s²)")
    energy, measured, covered = irregular_weighted(x * x, holds, shift_duration_s)
    return _finish(energy, measured, covered, shift_duration_s, k)


__all__ = ["VibrationMetrics", "a8", "combine_a8", "vibration_irregular", "vibration_regular"]
