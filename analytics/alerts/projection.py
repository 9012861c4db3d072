"""The running shift's exposure and its projection to the end of the shift: one function for
the ``projected_exposure`` detector and for the dashboard's "so far / projected" figures, so
both show the same number for the same sums.

Inputs are sufficient statistics of a sensor's shift (``Σ w·x`` in the quantity's linear
space and ``Σ w``), the same statistics over the last ``rate_window_s`` (the current rate), the
time of the latest sample and the shift's ``[start, end)``, all in epoch seconds. The projection
is ``S_end = S + r·(T_end − t)`` (:func:`analytics.project_sum`), turned into LEX,8h, A(8) or
TWA. A shift that has ended projects nothing: its figure is what it came to. Pure and
vectorized over sensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.alerts.subjects import PROJ_A8, PROJ_LEX
from analytics.sums import a8_from_energy, lex_8h_from_exposure, project_sum, twa_8h_from_dose
from analytics.types import BoolArray, FloatArray, IntArray
from analytics.units import REFERENCE_DURATION_S


@dataclass(frozen=True, slots=True)
class ShiftProjection:
    """Per sensor: the daily value of the exposure so far and at the end of the shift."""

    so_far: FloatArray  # the running sum as a daily value (LEX,8h, A(8) or TWA)
    projected: FloatArray  # the same at the end of the shift at the current rate
    rate: FloatArray  # linear units per second over the rate window (0: none measured)
    elapsed_s: FloatArray  # latest sample − shift start (0 outside the shift)
    inside: BoolArray  # the latest sample is inside the shift the sums are of
    ended: BoolArray  # the latest sample is at or after the shift's end


def daily_value(kind: IntArray, total: FloatArray, k: FloatArray) -> FloatArray:
    """A shift's sum as its daily value: LEX,8h (dB(A)), A(8) (m/s², × ``k``) or TWA."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = np.where(
            kind == PROJ_LEX,
            lex_8h_from_exposure(total),
            np.where(kind == PROJ_A8, a8_from_energy(total) * k, twa_8h_from_dose(total)),
        )
    return out


def sum_for(kind: int, level: float, k: float) -> float:
    """The shift sum whose daily value is ``level``: the inverse of :func:`daily_value`."""
    if kind == PROJ_LEX:
        return float(REFERENCE_DURATION_S * 10.0 ** (level / 10.0))
    if kind == PROJ_A8:
        return float(REFERENCE_DURATION_S * (level / k) ** 2)
    return float(REFERENCE_DURATION_S * level)


def project_shift(
    kind: IntArray,
    k: FloatArray,
    shift_sum: FloatArray,
    window_wsum: FloatArray,
    window_w: FloatArray,
    t: FloatArray,
    start: FloatArray,
    end: FloatArray,
) -> ShiftProjection:
    """So far and projected daily values of sensors whose latest sample is at ``t``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(window_w > 0, window_wsum / np.where(window_w > 0, window_w, 1.0), 0.0)
    # Only while the latest sample is inside the shift the sums are of is there anything left
    # to project; a late sample of an earlier shift decides nothing.
    inside = (t >= start) & (t < end)
    ended = t >= end
    with np.errstate(invalid="ignore"):
        length = np.where(inside, end - start, 1.0)
        elapsed = np.where(inside, t - start, 0.0)
    projected_sum = np.where(inside, project_sum(shift_sum, elapsed, length, rate), shift_sum)
    return ShiftProjection(
        so_far=daily_value(kind, shift_sum, k),
        projected=daily_value(kind, projected_sum, k),
        rate=rate,
        elapsed_s=elapsed,
        inside=inside,
        ended=ended,
    )


def time_to_level(
    kind: int, level: float, k: float, have_sum: float, rate: float, projected: float
) -> float | None:
    """Seconds from the latest sample until the shift's sum reaches ``level`` at ``rate``:
    0 when it has, None when the shift ends first (the projection stays below ``level``)."""
    target = sum_for(kind, level, k)
    if have_sum >= target:
        return 0.0
    if rate > 0 and projected >= level:
        return (target - have_sum) / rate
    return None
