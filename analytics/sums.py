"""Running sums of exposure and the daily values derived from them.

These are the reusable pieces a streaming detector keeps per sensor: it adds each new sample's
contribution and can at any moment turn the partial sums into LEX,8h, TWA or A(8), or project
them to the end of the shift (:func:`project_sum`). The batched metrics fill a partly measured
shift's unmeasured time at the measured rate with :func:`project_unmeasured`.

Daily values divide what was measured by 8 h: ``LEX,8h = 10·lg(E / 8 h)``, ``TWA = D / 8 h``,
``A(8) = k·√(V / 8 h)`` over every sample (ISO 9612:2009 eq. 7 with ``Te`` the measured time;
EN 689:2018 §3.1.5 and 29 CFR 1910.1000(d)(1)(i); ISO 5349-1:2001 eq. 3).

* sound exposure (relative):  ``E = Σ tᵢ·10^(Lᵢ/10)``     [s]      (ISO 9612:2009 eq. 7)
* concentration dose:          ``D = Σ Cᵢ·tᵢ``            [mg·s/m³] (29 CFR 1910.1000(d)(1)(i))
* vibration energy:            ``V = Σ aᵢ²·tᵢ``           [m²/s⁴·s] (ISO 5349-1:2001 eq. 3;
  ISO 2631-1:1997 / Directive 2002/44/EC Annex B)
"""

from __future__ import annotations

import numpy as np

from analytics.errors import InputError
from analytics.types import FloatArray
from analytics.units import REFERENCE_DURATION_S

_LN10_OVER_10 = np.log(10.0) / 10.0


def _f64(x: object) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def sound_exposure_sum(
    laeq_db: FloatArray | float, duration_s: FloatArray | float, axis: int = -1
) -> FloatArray:
    """``E = Σ tᵢ·10^(Lᵢ/10)`` along ``axis`` (energy sum; never average decibels)."""
    level = np.asarray(laeq_db, dtype=np.float64)
    t = np.asarray(duration_s, dtype=np.float64)
    return _f64(np.sum(t * np.exp(level * _LN10_OVER_10), axis=axis))


def level_from_exposure(
    exposure_s: FloatArray | float, duration_s: FloatArray | float
) -> FloatArray:
    """Equivalent level over ``duration_s``: ``LAeq,T = 10·lg(E / T)``; NaN where T = 0."""
    e = np.asarray(exposure_s, dtype=np.float64)
    t = np.asarray(duration_s, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > 0.0, 10.0 * np.log10(e / np.where(t > 0.0, t, 1.0)), np.nan)


def lex_8h_from_exposure(exposure_s: FloatArray | float) -> FloatArray:
    """``LEX,8h = 10·lg(E / 8 h)`` when ``E`` covers the whole day (ISO 9612:2009 §3.9)."""
    return level_from_exposure(exposure_s, REFERENCE_DURATION_S)


def dose_sum(
    conc_mg_m3: FloatArray | float, duration_s: FloatArray | float, axis: int = -1
) -> FloatArray:
    """``D = Σ Cᵢ·tᵢ`` along ``axis``, mg·s/m³."""
    c = np.asarray(conc_mg_m3, dtype=np.float64)
    t = np.asarray(duration_s, dtype=np.float64)
    return _f64(np.sum(c * t, axis=axis))


def twa_8h_from_dose(dose_mg_s_m3: FloatArray | float) -> FloatArray:
    """``TWA = D / 8 h`` (29 CFR 1910.1000(d)(1)(i): E = Σ CᵢTᵢ / 8)."""
    return np.asarray(dose_mg_s_m3, dtype=np.float64) / REFERENCE_DURATION_S


def vibration_energy_sum(
    a_m_s2: FloatArray | float, duration_s: FloatArray | float, axis: int = -1
) -> FloatArray:
    """``V = Σ aᵢ²·tᵢ`` along ``axis``, m²/s⁴·s."""
    a = np.asarray(a_m_s2, dtype=np.float64)
    t = np.asarray(duration_s, dtype=np.float64)
    return _f64(np.sum(a * a * t, axis=axis))


def a8_from_energy(energy_m2_s3: FloatArray | float, k: float = 1.0) -> FloatArray:
    """``A(8) = k·√(V / 8 h)`` (ISO 5349-1:2001 eq. 3; UK SI 2005/1093 Sch. 2 for ``k``)."""
    return k * np.sqrt(np.asarray(energy_m2_s3, dtype=np.float64) / REFERENCE_DURATION_S)


def project_sum(
    partial_sum: FloatArray | float,
    elapsed_s: FloatArray | float,
    shift_duration_s: FloatArray | float,
    rate_per_s: FloatArray | float | None = None,
) -> FloatArray:
    """Project a partial running sum to the end of the shift.

    ``S_end = S + r·(T_shift − t)``, with ``r`` the given rate per second (e.g. the current
    sample's ``10^(L/10)``, or a planned remainder) or, when ``rate_per_s`` is None, the mean
    rate so far ``S / t``. Pass the result to :func:`lex_8h_from_exposure`,
    :func:`twa_8h_from_dose` or :func:`a8_from_energy`.
    """
    s = np.asarray(partial_sum, dtype=np.float64)
    t = np.asarray(elapsed_s, dtype=np.float64)
    total = np.asarray(shift_duration_s, dtype=np.float64)
    if np.any(t < 0.0) or np.any(total <= 0.0):
        raise InputError("elapsed_s must be ≥ 0 and shift_duration_s > 0")
    remaining = np.maximum(total - t, 0.0)
    if rate_per_s is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(t > 0.0, s / np.where(t > 0.0, t, 1.0), 0.0)
    else:
        rate = np.asarray(rate_per_s, dtype=np.float64)
    return _f64(s + rate * remaining)


def project_unmeasured(
    total: FloatArray | float,
    measured_s: FloatArray | float,
    covered_s: FloatArray | float,
    shift_duration_s: float,
) -> FloatArray:
    """A shift's sum with its unmeasured time filled in at the measured rate.

    ``S_proj = S + (S / M)·max(T_shift − C, 0)``, ``M`` the whole measured time and ``C`` the
    part of it inside the declared shift (:meth:`analytics.sampling.Holds.covered_s`): the time
    the instruments did not see is assumed to have been like the time they did, never silent
    and never clean air. Equals ``S`` when the shift is covered; NaN where nothing was measured.
    Pass the result to :func:`lex_8h_from_exposure`, :func:`twa_8h_from_dose` or
    :func:`a8_from_energy`.
    """
    s = np.asarray(total, dtype=np.float64)
    m = np.asarray(measured_s, dtype=np.float64)
    c = np.asarray(covered_s, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(m > 0.0, s / np.where(m > 0.0, m, 1.0), np.nan)
    return _f64(project_sum(s, np.minimum(c, shift_duration_s), shift_duration_s, rate))


def coverage_of(covered_s: FloatArray | float, shift_duration_s: float) -> FloatArray:
    """Fraction of the declared shift with readings, ``min(C / T_shift, 1)``."""
    return _f64(np.minimum(np.asarray(covered_s, dtype=np.float64) / shift_duration_s, 1.0))


__all__ = [
    "a8_from_energy",
    "coverage_of",
    "dose_sum",
    "level_from_exposure",
    "lex_8h_from_exposure",
    "project_sum",
    "project_unmeasured",
    "sound_exposure_sum",
    "twa_8h_from_dose",
    "vibration_energy_sum",
]
