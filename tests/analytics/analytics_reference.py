"""Straightforward float64 reference implementations of the regular-grid metrics.

These are the formulas of docs/exposure.md written the obvious way (one float64 pass per
quantity, masked sums for NaN, a full-length cumulative sum for the 15-min maximum), as the
numeric core computed them before the performance work. The fast paths in ``analytics`` are
tested against them; keep them simple rather than fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LN10_OVER_10 = math.log(10.0) / 10.0
REFERENCE_S = 28800.0


@dataclass(frozen=True)
class Noise:
    laeq_db: np.ndarray
    lex8h_db: np.ndarray
    lamax_db: np.ndarray
    dose_pct: np.ndarray
    measured_s: np.ndarray
    lex8h_projected_db: np.ndarray


@dataclass(frozen=True)
class Concentration:
    twa8h_mg_m3: np.ndarray
    twa8h_projected_mg_m3: np.ndarray
    mean_mg_m3: np.ndarray
    max15min_mg_m3: np.ndarray
    max_mg_m3: np.ndarray
    measured_s: np.ndarray


@dataclass(frozen=True)
class Vibration:
    a_rms_m_s2: np.ndarray
    a8_m_s2: np.ndarray
    measured_s: np.ndarray


def _masked_sum_count(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fin = np.isfinite(v)
    return np.where(fin, v, 0.0).sum(axis=-1), fin.sum(axis=-1).astype(np.float64)


def noise(x: np.ndarray, period_s: float, shift_s: float, criterion_db: float) -> Noise:
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    with np.errstate(over="ignore"):
        energy, count = _masked_sum_count(np.exp(x * LN10_OVER_10))
    measured = count * period_s
    with np.errstate(divide="ignore", invalid="ignore"):
        laeq = np.where(measured > 0, 10.0 * np.log10(energy * period_s / measured), np.nan)
    # Σ over the measured samples / 8 h; the projection fills the rest of the shift (these
    # grids never run past the shift end) at the measured LAeq.
    with np.errstate(divide="ignore"):
        lex = laeq + 10.0 * np.log10(measured / REFERENCE_S)
    return Noise(
        laeq_db=laeq,
        lex8h_db=lex,
        lamax_db=np.fmax.reduce(x, axis=-1),
        dose_pct=100.0 * 10.0 ** ((lex - criterion_db) / 10.0),
        measured_s=measured,
        lex8h_projected_db=laeq + 10.0 * np.log10(shift_s / REFERENCE_S),
    )


def vibration(a: np.ndarray, period_s: float, shift_s: float, k: float = 1.0) -> Vibration:
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    energy, count = _masked_sum_count(a * a)
    measured = count * period_s
    with np.errstate(divide="ignore", invalid="ignore"):
        rms = np.where(measured > 0, np.sqrt(energy * period_s / measured), np.nan)
    return Vibration(rms, k * rms * np.sqrt(measured / REFERENCE_S), measured)


def max_window_mean(x: np.ndarray, k: int, min_fraction: float) -> np.ndarray:
    """Maximum mean of the finite samples of any length-k window with ≥ min_fraction·k of them."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n = x.shape[-1]
    out = np.full(x.shape[0], np.nan)
    if n < k:
        return out
    fin = np.isfinite(x)
    cv = np.concatenate((np.zeros((x.shape[0], 1)), np.cumsum(np.where(fin, x, 0.0), axis=-1)), 1)
    cn = np.concatenate((np.zeros((x.shape[0], 1)), np.cumsum(fin, axis=-1)), 1)
    wv = cv[:, k:] - cv[:, :-k]
    wn = cn[:, k:] - cn[:, :-k]
    clean = fin.all(axis=-1)
    ok = (wn >= min_fraction * k) | clean[:, np.newaxis]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, wv / np.where(wn > 0, wn, 1.0), -np.inf)
    best = mean.max(axis=-1)
    return np.where(np.isneginf(best), np.nan, best)


def concentration(
    c: np.ndarray, period_s: float, shift_s: float, min_fraction: float
) -> Concentration:
    c = np.atleast_2d(np.asarray(c, dtype=np.float64))
    total, count = _masked_sum_count(c)
    measured = count * period_s
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(measured > 0, total * period_s / measured, np.nan)
    k = max(1, round(900.0 / period_s))
    return Concentration(
        twa8h_mg_m3=mean * measured / REFERENCE_S,
        twa8h_projected_mg_m3=mean * shift_s / REFERENCE_S,
        mean_mg_m3=mean,
        max15min_mg_m3=max_window_mean(c, k, min_fraction),
        max_mg_m3=np.fmax.reduce(c, axis=-1),
        measured_s=measured,
    )


def max_window_sum_loop(row: list[float], k: int) -> float:
    """Exact maximum window sum by plain loops with math.fsum (the slow oracle)."""
    return max(math.fsum(row[s : s + k]) for s in range(len(row) - k + 1))
