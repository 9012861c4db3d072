"""Noise exposure per sensor over a shift, vectorized across sensors.

Formulas (ISO 9612:2009 §3 and eq. 7; Directive 2003/10/EC Art. 2):

* ``LAeq,T = 10·lg( Σ tᵢ·10^(Lᵢ/10) / Σ tᵢ )`` over the measured time (energy average; decibels
  are never averaged arithmetically);
* ``LEX,8h = LAeq,Te + 10·lg(Te / 8 h) = 10·lg(Σ tᵢ·10^(Lᵢ/10) / 8 h)`` with ``Te`` the measured
  time, every sample included (a 10-h record counts 10 h, however long the declared shift);
* ``coverage`` = measured time inside the declared shift / shift length (at most 1);
  ``lex8h_projected_db`` fills the unmeasured part of the shift at the measured ``LAeq``
  (:func:`analytics.sums.project_unmeasured`); it equals ``lex8h_db`` at full coverage;
* ``LAmax`` = the largest sample, ``LCpeak`` = the largest reported peak;
* dose ``= 100 %·10^((LEX,8h − L_c)/10)``, equal-energy (3 dB exchange) with criterion
  ``L_c`` (80 dB(A) in the default norms profile).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics._grid import (
    RowKernel,
    as_grid,
    block_rows,
    check_positive,
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
from analytics.sums import (
    coverage_of,
    level_from_exposure,
    lex_8h_from_exposure,
    project_unmeasured,
)
from analytics.types import FloatArray
from analytics.units import REFERENCE_DURATION_S

_LN10_OVER_10 = np.log(10.0) / 10.0
_LN10_OVER_10_F32 = np.float32(_LN10_OVER_10)

#: Rows whose loudest sample is at or above this magnitude (or NaN) use the all-float64 path,
#: which reproduces the original formula exactly, including its overflow behaviour.
FAST_PATH_MAX_DB = 256.0

#: Bound on |LAeq(float32) − LAeq(float64)| in dB for rows of up to 10⁷ samples; see
#: :func:`_relative_energy_f32` and docs/exposure.md (Performance). Tested against a float64
#: reference on adversarial rows in tests/analytics/test_fast_paths.py.
ENERGY_F32_MAX_ERROR_DB = 3.0e-5


def _relative_energy_f32(
    x: FloatArray, lmax: FloatArray, scratch: np.ndarray, out: FloatArray
) -> None:
    """``out = Σᵢ exp(a·(xᵢ − m))`` per row, computed in float32; ``m = lmax``, ``a = ln10/10``.

    Then ``Σᵢ 10^(xᵢ/10) = 10^(m/10) · out`` (the caller applies the float64 factor).
    ``x − m`` is formed in float64 and rounded to float32, so every argument is ≤ 0: no
    overflow, the loudest sample contributes exactly 1 (``exp`` of a non-positive float32 never
    exceeds 1, so LAeq ≤ LAmax still holds exactly), and a sample more than 380 dB below it
    underflows to 0, a relative change < 1e-38.

    Error, relative to the energy, with ``uᵢ = a·(m − xᵢ) ≥ 0`` and ``ε = 2⁻²⁴``:

    * term i: the argument carries ≤ 3ε relative rounding (``x − m``, ``a``, the product) and
      float32 ``exp`` ≤ 2.6 ulp (≤ 2.2e-7, measured over its whole range): ≤ 2.2e-7 + 1.8e-7·uᵢ;
      weighted by the terms ``e^(−uᵢ)`` (the loudest is 1) the mean ``ū`` is < ln n, so the
      terms together are off by < 2.2e-7 + 1.8e-7·ln n (< 3.2e-6 for n ≤ 10⁷);
    * the sum: numpy's pairwise float32 sum of non-negative terms, ≤ (18 + ⌈log₂(n/128)⌉)·ε
      (< 2.1e-6 for n ≤ 10⁷; accumulating in float64 made noise_regular ~20 % slower).

    Together < 5.3e-6, i.e. < 2.3e-5 dB (:data:`ENERGY_F32_MAX_ERROR_DB`); observed ≤ 9e-7 dB.
    Rows whose maximum is NaN or ±inf come out NaN or inf (the caller recomputes them);
    ``x − m < −3.4e38`` becomes −inf, then 0.
    """
    np.subtract(x, lmax[:, np.newaxis], out=scratch, casting="same_kind")
    np.multiply(scratch, _LN10_OVER_10_F32, out=scratch)
    np.exp(scratch, out=scratch)
    out[...] = np.add.reduce(scratch, axis=-1)


@dataclass(frozen=True, slots=True)
class NoiseMetrics:
    """Per-sensor noise metrics; every field is an array with one value per sensor."""

    laeq_db: FloatArray
    lex8h_db: FloatArray
    lamax_db: FloatArray
    dose_pct: FloatArray
    measured_s: FloatArray
    coverage: FloatArray
    lex8h_projected_db: FloatArray
    dose_projected_pct: FloatArray
    unmeasured_s: FloatArray


@dataclass(frozen=True, slots=True)
class PeakMetrics:
    """Per-sensor peak levels (e.g. LCpeak, dB(C))."""

    lcpeak_db: FloatArray
    measured_s: FloatArray
    coverage: FloatArray


def noise_dose_pct(lex8h_db: FloatArray | float, criterion_db: float) -> FloatArray:
    """Daily noise dose in %: ``100·10^((LEX,8h − L_c)/10)`` (equal energy, 3 dB exchange)."""
    return 100.0 * np.power(10.0, (np.asarray(lex8h_db, np.float64) - criterion_db) / 10.0)


def lex_8h(laeq_db: FloatArray | float, exposure_duration_s: FloatArray | float) -> FloatArray:
    """``LEX,8h = LAeq,Te + 10·lg(Te / 8 h)`` (ISO 9612:2009 eq. 7)."""
    te = np.asarray(exposure_duration_s, dtype=np.float64)
    if np.any(te <= 0.0):
        raise InputError("exposure_duration_s must be positive")
    return np.asarray(laeq_db, np.float64) + 10.0 * np.log10(te / REFERENCE_DURATION_S)


def _finish(
    energy: FloatArray,
    measured_s: FloatArray,
    covered_s: FloatArray,
    lamax: FloatArray,
    shift_duration_s: float,
    criterion_db: float,
) -> NoiseMetrics:
    laeq = level_from_exposure(energy, measured_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        lex = np.where(measured_s > 0.0, lex_8h_from_exposure(energy), np.nan)
        projected = lex_8h_from_exposure(
            project_unmeasured(energy, measured_s, covered_s, shift_duration_s)
        )
    return NoiseMetrics(
        laeq_db=laeq,
        lex8h_db=lex,
        lamax_db=lamax,
        dose_pct=noise_dose_pct(lex, criterion_db),
        measured_s=measured_s,
        coverage=coverage_of(covered_s, shift_duration_s),
        lex8h_projected_db=projected,
        dose_projected_pct=noise_dose_pct(projected, criterion_db),
        unmeasured_s=np.maximum(shift_duration_s - covered_s, 0.0),
    )


def noise_regular(
    laeq_db: object,
    *,
    period_s: float,
    shift_duration_s: float,
    dose_criterion_db: float,
    workers: int = 1,
) -> NoiseMetrics:
    """Noise metrics for a regular grid ``(sensors, samples)`` of short LAeq samples, dB(A).

    Each sample holds ``period_s``; NaN marks an unmeasured sample. See the module docstring.

    Rows are processed in cache-sized blocks, ``workers`` threads at a time (the result does
    not depend on ``workers``). The energy ``Σ 10^(Lᵢ/10)`` of a row is computed as
    ``10^(L_max/10)·Σ exp(a·(Lᵢ − L_max))`` with the exponential and the sum in float32
    (:func:`_relative_energy_f32`): LAeq, LEX,8h differ from the all-float64 formula by at most
    :data:`ENERGY_F32_MAX_ERROR_DB`. Rows with NaN, or with levels at or above
    :data:`FAST_PATH_MAX_DB`, take the all-float64 path.
    """
    x = as_grid(laeq_db, "laeq_db", period_s, shift_duration_s)
    workers = check_workers(workers)
    rows, n = x.shape
    relative = np.empty(rows)  # Σ exp(a·(x − max)) per row
    lamax = np.empty(rows)

    def make_kernel() -> RowKernel:
        scratch = np.empty((block_rows(n), n), dtype=np.float32)

        def kernel(lo: int, hi: int) -> None:
            xb = np.ascontiguousarray(x[lo:hi])
            np.maximum.reduce(xb, axis=-1, out=lamax[lo:hi])  # NaN if the row has NaN
            _relative_energy_f32(xb, lamax[lo:hi], scratch[: hi - lo], relative[lo:hi])

        return kernel

    run_row_blocks(rows, n, workers, make_kernel)
    with np.errstate(invalid="ignore"):
        fast = np.abs(lamax) < FAST_PATH_MAX_DB  # False for NaN
    energy = relative * np.exp(np.where(fast, lamax, 0.0) * _LN10_OVER_10)
    count = np.full(rows, float(n))
    slow = np.flatnonzero(~fast)
    if slow.size:
        xs = x[slow]
        lamax[slow] = grid_max(xs)
        if np.any(np.isposinf(lamax[slow])):
            raise InputError("laeq_db contains +inf; levels must be finite dB values")
        buf = np.multiply(xs, _LN10_OVER_10)
        np.exp(buf, out=buf)
        energy[slow], count[slow] = grid_sum_count(buf)
    covered = grid_covered(x, count, period_s, shift_duration_s)
    return _finish(
        energy * period_s, count * period_s, covered, lamax, shift_duration_s, dose_criterion_db
    )


def noise_irregular(
    laeq_db: object,
    time_s: object,
    offsets: object,
    *,
    shift_duration_s: float,
    max_gap_s: float,
    dose_criterion_db: float,
    fallback_interval_s: float = 1.0,
) -> NoiseMetrics:
    """Noise metrics for concatenated irregular samples with group ``offsets``.

    Hold rule and gaps as in :func:`analytics.sampling.hold_durations`.
    """
    x, holds = irregular(
        laeq_db, time_s, offsets, "laeq_db", shift_duration_s, max_gap_s, fallback_interval_s
    )
    energy, measured, covered = irregular_weighted(
        np.exp(x * _LN10_OVER_10), holds, shift_duration_s
    )
    return _finish(
        energy, measured, covered, irregular_max(x, holds), shift_duration_s, dose_criterion_db
    )


def peak_regular(lcpeak_db: object, *, period_s: float, shift_duration_s: float) -> PeakMetrics:
    """Largest reported peak level per sensor on a regular grid (NaN = unmeasured)."""
    x = as_grid(lcpeak_db, "lcpeak_db", period_s, shift_duration_s)
    count = np.isfinite(x).sum(axis=-1).astype(np.float64)
    covered = grid_covered(x, count, period_s, shift_duration_s)
    return PeakMetrics(grid_max(x), count * period_s, coverage_of(covered, shift_duration_s))


def peak_irregular(
    lcpeak_db: object,
    time_s: object,
    offsets: object,
    *,
    shift_duration_s: float,
    max_gap_s: float,
    fallback_interval_s: float = 1.0,
) -> PeakMetrics:
    """Largest reported peak level per sensor for irregular samples."""
    check_positive("shift_duration_s", shift_duration_s)
    x, holds = irregular(
        lcpeak_db, time_s, offsets, "lcpeak_db", shift_duration_s, max_gap_s, fallback_interval_s
    )
    return PeakMetrics(
        irregular_max(x, holds),
        holds.measured_s(),
        coverage_of(holds.covered_s(shift_duration_s), shift_duration_s),
    )


__all__ = [
    "NoiseMetrics",
    "PeakMetrics",
    "lex_8h",
    "noise_dose_pct",
    "noise_irregular",
    "noise_regular",
    "peak_irregular",
    "peak_regular",
]
