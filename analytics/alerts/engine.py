"""The streaming detectors run over a batch: ``evaluate(state, batch, now) -> (state, events)``.

The state (:mod:`analytics.alerts.state`) is a set of arrays indexed by a subject *slot*. A
batch (:mod:`analytics.alerts.batch`) is any number of samples of any sensors; its samples are
added to the statistics first (:mod:`analytics.alerts.accumulate`), then the detectors
(:mod:`analytics.alerts.detectors`) work with arrays across all sensors of the batch, and only
the few cells that are active or hold an alert go through the per-cell lifecycle rules
(:mod:`analytics.alerts.lifecycle`).

Time: detectors about values run on **sample time** (the batch's latest sample per sensor), so
backfilled readings give the same alerts as live ones. Detectors about silence, offline devices,
missing messages, calibration and escalation run on ``now``, the engine clock passed in; the
functions here never read a clock. ``evaluate`` updates ``state`` in place (the arrays are large)
and returns it.
"""

from __future__ import annotations

import numpy as np

from analytics.alerts.accumulate import accumulate, learn_arrivals
from analytics.alerts.batch import Batch
from analytics.alerts.detectors.clock import clock_detectors
from analytics.alerts.detectors.levels import ceilings, floors
from analytics.alerts.detectors.projected_exposure import projected_exposure
from analytics.alerts.detectors.sensor_health import flatline, out_of_range
from analytics.alerts.detectors.short_term import short_term_mean
from analytics.alerts.detectors.stepper import Stepper
from analytics.alerts.detectors.trend import trend
from analytics.alerts.lifecycle import AlertEvent, escalate
from analytics.alerts.state import DetectorState
from analytics.alerts.subjects import DEVICE
from analytics.types import FloatArray, IntArray


def evaluate(
    state: DetectorState, batch: Batch, now: float, *, clock_checks: bool = True
) -> tuple[DetectorState, list[AlertEvent]]:
    """Run every detector on ``batch`` and the clock-driven ones at ``now`` (epoch seconds).

    Returns the (updated) state and the alert transitions in the order they happened within
    each detector. An empty batch is a clock tick: silence, offline devices, missing messages,
    calibration dates and escalation. ``clock_checks=False`` leaves those out (they look at
    every subject): a caller that ticks often runs them on its ticks only.
    """
    events: list[AlertEvent] = []
    st = Stepper(state, now, events)
    if batch.status_slot.size:
        state.online[batch.status_slot] = batch.status_online.astype(np.int64)
    learn_arrivals(state, batch)
    touched, t_last, vmax, vmin = accumulate(state, batch)
    if touched.size:
        _sample_detectors(state, touched, t_last, vmax, vmin, st)
    if clock_checks or batch.status_slot.size:
        clock_detectors(state, now, st)
        events.extend(escalate(state.cells, state.subjects, state.alerts, now))
    return state, events


def _sample_detectors(
    state: DetectorState,
    touched: IntArray,
    t: FloatArray,
    vmax: FloatArray,
    vmin: FloatArray,
    st: Stepper,
) -> None:
    """The detectors about values, on the touched subjects' latest sample times ``t`` and the
    batch's extremes of each."""
    sensors = state.quantity[touched] != DEVICE
    if np.any(sensors):
        s_touched, s_t = touched[sensors], t[sensors]
        is_db = state.linear[s_touched] == 1
        ceilings(state, s_touched, s_t, vmax[sensors], is_db, st)
        short_term_mean(state, s_touched, s_t, is_db, st)
        _once_per_bin(state, s_touched, s_t, st)
    floors(state, touched, t, vmin, st)


def _once_per_bin(state: DetectorState, touched: IntArray, t: FloatArray, st: Stepper) -> None:
    """Projections, trends and sensor health move on the scale of bins: run them once per
    sensor and bin, which keeps the cost of a small batch (one live message) low."""
    current = np.floor(t / state.alerts.bin_s).astype(np.intp)
    slow = current != state.slow_bin[touched]
    if not np.any(slow):
        return
    state.slow_bin[touched[slow]] = current[slow]
    idx, tt = touched[slow], t[slow]
    projected_exposure(state, idx, tt, st)
    trend(state, idx, tt, st)
    flatline(state, idx, tt, st)
    out_of_range(state, idx, tt, st)


__all__ = ["evaluate"]
