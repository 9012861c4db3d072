"""Samples into statistics: time bins, shift running sums and message cadence.

Every path by which readings reach the state goes through here: live batches before the
detectors run (:func:`accumulate`, :func:`learn_arrivals`), and the warm start after a restart
from raw samples (:func:`warm`) or from aggregates (:func:`seed`), so the detectors see the
same statistics whichever way the readings came in.
"""

from __future__ import annotations

import numpy as np

from analytics.alerts.batch import Batch
from analytics.alerts.registration import shift_at
from analytics.alerts.state import DetectorState
from analytics.errors import InputError
from analytics.types import BoolArray, FloatArray, IntArray


def _linear(kind: IntArray, value: FloatArray) -> FloatArray:
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.where(kind == 1, np.power(10.0, value / 10.0), value)
        out = np.where(kind == 2, value * value, out)
    return out


def warm(state: DetectorState, batch: Batch) -> DetectorState:
    """Add samples to the statistics without running detectors (rebuild after a restart)."""
    accumulate(state, batch)
    return state


def seed(
    state: DetectorState,
    slot: IntArray,
    time_s: FloatArray,
    wsum_linear: FloatArray,
    weight_s: FloatArray,
    vmin: FloatArray,
    vmax: FloatArray,
    *,
    windows: bool = True,
) -> DetectorState:
    """Add pre-aggregated statistics (``Σ w·x`` in linear space, ``Σ w``, extremes) at
    ``time_s``, e.g. from per-minute rollups or SQL over raw readings after a restart.

    ``windows=False`` adds to the shift sums only (the part of the shift older than the
    windows). Each aggregate enters its bin and its shift like two samples carrying the
    minimum and the maximum, each with half the weight, so sums, extremes and shift totals
    are exactly those of the original samples.
    """
    slot = np.asarray(slot, dtype=np.intp)
    time_s = np.asarray(time_s, dtype=np.float64)
    half = np.asarray(weight_s, dtype=np.float64) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(half > 0, np.asarray(wsum_linear) / (2.0 * half), 0.0)
    valid = half > 0
    if windows:
        for raw in (np.asarray(vmin, dtype=np.float64), np.asarray(vmax, dtype=np.float64)):
            state.bins.add(slot, time_s, raw, mean, half, valid)
    wsum = np.asarray(wsum_linear, dtype=np.float64)
    _add_to_shifts(state, slot, np.unique(slot, return_inverse=True), time_s, wsum, 2 * half, valid)
    return state


def _add_to_shifts(
    state: DetectorState,
    slot: IntArray,
    unique: tuple[IntArray, IntArray],
    t: FloatArray,
    wsum: FloatArray,
    weight: FloatArray,
    valid: BoolArray,
) -> None:
    """Add ``Σ w·x`` and ``Σ w`` to the running sums of each sample's shift. A sample of a
    later shift than a sensor's current one starts that shift afresh; samples of an earlier
    shift (arriving late) and samples between shifts are left out. ``unique``: the distinct
    slots and each sample's index among them (``np.unique(slot, return_inverse=True)``)."""
    start, end = shift_at(state, slot, t)
    inside = valid & np.isfinite(start)
    touched, inverse = unique
    latest = np.full(touched.size, -np.inf)
    np.maximum.at(latest, inverse[inside], start[inside])
    # Within one calendar a later start has a later end, so the latest end is that shift's.
    latest_end = np.full(touched.size, -np.inf)
    np.maximum.at(latest_end, inverse[inside], end[inside])
    later = latest > state.shift_start[touched]
    if np.any(later):
        s = touched[later]
        state.shift_start[s] = latest[later]
        state.shift_end[s] = latest_end[later]
        state.shift_sum[s] = 0.0
        state.shift_w[s] = 0.0
    use = inside & (start == state.shift_start[slot])
    np.add.at(state.shift_sum, slot[use], wsum[use])
    np.add.at(state.shift_w, slot[use], weight[use])


def accumulate(
    state: DetectorState, batch: Batch
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray]:
    """Add samples to bins and shift sums. Returns the touched slots, their latest sample time
    and the batch maximum and minimum of valid values (−inf / +inf if none)."""
    slot = batch.slot
    if slot.size == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0), np.zeros(0), np.zeros(0)
    if np.any(slot >= state.n) or np.any(slot < 0):
        raise InputError("batch names a slot that is not registered")
    t = batch.time_s
    valid = batch.valid & np.isfinite(batch.value) & np.isfinite(t)
    lin = _linear(state.linear[slot], batch.value)
    state.bins.add(slot, t, batch.value, lin, batch.duration_s, valid)

    touched, inverse = np.unique(slot, return_inverse=True)
    _add_to_shifts(
        state, slot, (touched, inverse), t, batch.duration_s * lin, batch.duration_s, valid
    )
    t_last = np.full(touched.size, -np.inf)
    np.maximum.at(t_last, inverse, np.where(np.isfinite(t), t, -np.inf))
    vmax = np.full(touched.size, -np.inf)
    np.maximum.at(vmax, inverse[valid], batch.value[valid])
    vmin = np.full(touched.size, np.inf)
    np.minimum.at(vmin, inverse[valid], batch.value[valid])
    state.last_time[touched] = np.fmax(state.last_time[touched], t_last)
    return touched, t_last, vmax, vmin


def learn_arrivals(state: DetectorState, batch: Batch) -> None:
    """Learn each sensor's message interval from the cadence of its sample times."""
    if batch.arrival_slot.size == 0:
        return
    a = state.alerts
    slots, inverse, counts = np.unique(batch.arrival_slot, return_inverse=True, return_counts=True)
    end = np.full(slots.size, -np.inf)
    np.maximum.at(end, inverse, batch.arrival_end_s)
    now = np.full(slots.size, -np.inf)
    np.maximum.at(now, inverse, batch.arrival_now_s)
    prev = state.last_arrival_end[slots]
    gap = (end - prev) / counts
    learn = np.isfinite(prev) & (gap > 0)
    old = state.interval[slots]
    smoothed = np.where(
        np.isnan(old), gap, (1 - a.interval_smoothing) * old + a.interval_smoothing * gap
    )
    state.interval[slots] = np.where(learn, smoothed, old)
    state.intervals_seen[slots] += learn.astype(np.int64) * counts
    state.last_arrival_end[slots] = np.fmax(prev, end)
    state.last_arrival_now[slots] = np.fmax(state.last_arrival_now[slots], now)


__all__ = ["accumulate", "learn_arrivals", "seed", "warm"]
