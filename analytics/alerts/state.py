"""What the detectors remember: a set of arrays indexed by a subject *slot*.

One slot per sensor and one per device, holding time-binned sufficient statistics
(:mod:`analytics.alerts.window`), shift running sums (``Σ w·x`` in the quantity's linear space,
``Σ w``), message-arrival statistics, the sequence-number window of each device and the
lifecycle cells (:mod:`analytics.alerts.lifecycle`). Arrays rather than objects per subject,
so that a batch of many sensors is one vectorised pass; they grow by doubling as subjects
register (:mod:`analytics.alerts.registration`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from analytics.alerts.lifecycle import Cells
from analytics.alerts.params import AlertNorms
from analytics.alerts.shifts import Calendars
from analytics.alerts.subjects import SubjectSpec, Thresholds
from analytics.alerts.text import TimeText, utc_time_text
from analytics.alerts.window import Bins
from analytics.norms import Norms
from analytics.types import BoolArray, FloatArray, IntArray


@dataclass(slots=True)
class DetectorState:
    """Everything the detectors remember; build with :func:`new_state`."""

    norms: Norms
    alerts: AlertNorms
    calendars: Calendars
    time_text: TimeText
    subjects: list[SubjectSpec]
    thresholds: list[Thresholds]
    index: dict[str, int]
    capacity: int
    n: int
    bins: Bins
    cells: Cells
    # per subject
    quantity: IntArray
    device_slot: IntArray
    linear: IntArray
    ceiling: FloatArray
    pre: FloatArray
    floor: FloatArray
    pre_floor: FloatArray
    short_term: FloatArray
    trend_limit: FloatArray
    projection: IntArray
    proj_k: FloatArray
    calibration_due: FloatArray
    calendar: IntArray  # calendar id of the sensor's schedule, −1: none
    shift_start: FloatArray  # the shift the running sums are of (−inf: none yet)
    shift_end: FloatArray
    shift_sum: FloatArray
    shift_w: FloatArray
    last_time: FloatArray
    last_arrival_now: FloatArray
    last_arrival_end: FloatArray
    interval: FloatArray
    intervals_seen: IntArray
    online: IntArray  # -1 unknown, 0 offline, 1 online (devices)
    seq_hi: IntArray
    seq_lo: IntArray
    slow_bin: IntArray  # bin of the last run of the slow detectors
    seq_seen: BoolArray  # (subjects, sequence_window) ring of seen sequence numbers


_PER_SUBJECT_FLOAT = (
    "ceiling",
    "pre",
    "floor",
    "pre_floor",
    "short_term",
    "trend_limit",
    "proj_k",
    "calibration_due",
    "shift_start",
    "shift_end",
    "shift_sum",
    "shift_w",
    "last_time",
    "last_arrival_now",
    "last_arrival_end",
    "interval",
)
_PER_SUBJECT_INT = (
    "quantity",
    "device_slot",
    "linear",
    "projection",
    "calendar",
    "intervals_seen",
    "online",
    "seq_hi",
    "seq_lo",
    "slow_bin",
)
_INT_FILL = {
    "online": -1,
    "seq_hi": -1,
    "seq_lo": -1,
    "device_slot": -1,
    "calendar": -1,
    "slow_bin": -(2**62),
}
_FLOAT_FILL = {"shift_sum": 0.0, "shift_w": 0.0, "shift_start": -np.inf, "shift_end": -np.inf}


def new_state(
    norms: Norms, alerts: AlertNorms, capacity: int = 64, *, time_text: TimeText = utc_time_text
) -> DetectorState:
    """An empty state for ``norms`` and its ``[alerts]`` section; ``time_text`` formats the
    times that messages state, in the subject's zone."""
    longest = max(
        alerts.short_term_window_s,
        alerts.trend_window_s,
        alerts.flatline_window_s,
        alerts.out_of_range_window_s,
        alerts.projection_rate_window_s,
    )
    # A few spare bins keep samples that arrive slightly out of order inside the ring.
    n_bins = math.ceil(longest / alerts.bin_s) + 8
    capacity = max(1, capacity)
    floats: dict[str, Any] = {
        name: np.full(capacity, _FLOAT_FILL.get(name, np.nan)) for name in _PER_SUBJECT_FLOAT
    }
    ints: dict[str, Any] = {
        name: np.full(capacity, _INT_FILL.get(name, 0), dtype=np.intp) for name in _PER_SUBJECT_INT
    }
    return DetectorState(
        norms=norms,
        alerts=alerts,
        calendars=Calendars(),
        time_text=time_text,
        subjects=[],
        thresholds=[],
        index={},
        capacity=capacity,
        n=0,
        bins=Bins.empty(capacity, n_bins, alerts.bin_s),
        cells=Cells.empty(capacity),
        seq_seen=np.zeros((capacity, alerts.sequence_window), dtype=bool),
        **floats,
        **ints,
    )


def grow(state: DetectorState, needed: int) -> None:
    """Make room for ``needed`` subjects; doubling keeps registering many subjects cheap."""
    if needed <= state.capacity:
        return
    capacity = max(needed, 2 * state.capacity)
    extra = capacity - state.capacity
    for name in _PER_SUBJECT_FLOAT:
        more_f = np.full(extra, _FLOAT_FILL.get(name, np.nan))
        setattr(state, name, np.concatenate([getattr(state, name), more_f]))
    for name in _PER_SUBJECT_INT:
        more = np.full(extra, _INT_FILL.get(name, 0), dtype=np.intp)
        setattr(state, name, np.concatenate([getattr(state, name), more]))
    state.seq_seen = np.concatenate(
        [state.seq_seen, np.zeros((extra, state.seq_seen.shape[1]), dtype=bool)]
    )
    state.bins.grow(capacity)
    state.cells.grow(capacity)
    state.capacity = capacity


__all__ = ["DetectorState", "grow", "new_state"]
