"""The streaming detectors: ``evaluate(state, batch, now) -> (state, events)``.

State is a set of arrays indexed by a subject *slot* (one per sensor and one per device),
holding time-binned sufficient statistics (:mod:`analytics.alerts.window`), shift running sums
(``Σ w·x`` in the quantity's linear space, ``Σ w``), message-arrival statistics and the
lifecycle cells (:mod:`analytics.alerts.lifecycle`). A batch is any number of samples of any
sensors; the numeric work is done with arrays across all sensors of the batch, and only the few
cells that are active or hold an alert go through the per-cell lifecycle rules.

Time: detectors about values run on **sample time** (the batch's latest sample per sensor), so
backfilled readings give the same alerts as live ones. Detectors about silence, offline devices,
missing messages, calibration and escalation run on ``now``, the engine clock passed in; the
functions here never read a clock. ``evaluate`` updates ``state`` in place (the arrays are large)
and returns it.

Detectors (thresholds from :func:`analytics.alerts.subjects.thresholds_for`):

* ``ceiling``: the batch maximum above the ceiling (acute gas ``k × ПДК_max``, LCpeak, LAmax,
  % LEL).
* ``pre_exceedance``: the batch maximum at or above ``fraction × ПДК_max`` (or the first % LEL
  or methane alarm).
* ``floor`` / ``pre_floor``: the batch minimum below the second / at or below the first low
  alarm (oxygen deficiency in % vol); the oxygen enrichment alarm is a ``ceiling``.
* ``short_term``: the time-weighted mean over the last 15 min (bins) above ПДК_max, once the
  window is measured to ``min_window_fraction``.
* ``projected_exposure``: ``S_end = S + r·(T_end − t)`` with the shift's running sum ``S``, the
  mean rate ``r`` of the last ``rate_window_s`` and the shift end ``T_end``; turned into
  LEX,8h, TWA or A(8) and compared with the action/limit levels; ``time_left_s`` is when the
  running sum reaches the crossed level at rate ``r``. The shift is the one of the sensor's
  workplace schedule that holds the sample (:mod:`analytics.alerts.shifts`: calendars the
  shell derives from ``application.schedule``); a sample between shifts adds to no shift, and
  once a shift has ended its projection clears.
  Projections, trends and the sensor-health windows run once per sensor and bin.
* ``trend``: Theil–Sen slope of segment means over ``trend.window_s``; raised when most pairwise
  slopes rise and ``level + slope·horizon`` reaches the limit.
* ``flatline``: a full window of measured bins whose values span nothing (a stuck sensor;
  exactly zero is excluded, being the normal reading of a gas sensor in clean air).
* ``out_of_range``: bad samples (non-finite, outside the instrument range) in the last window.
* ``sensor_silent``: ``now − last arrival > factor × interval`` while the device is not offline;
  the interval is learned from the cadence of the sensor's messages (sample times).
* ``sequence_gap``: sequence numbers missing among the device's last ``sequence_window``.
* ``device_offline``: the device's status topic says ``online: false``.
* ``calibration_overdue``: ``now`` past the registry's calibration date.
"""

# Messages are closures over loop variables on purpose: the lifecycle formats one at once,
# inside the same iteration, and only when a transition happens.
# ruff: noqa: B023

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from analytics.alerts.lifecycle import (
    IDLE,
    AlertEvent,
    Cells,
    Observation,
    act,
    escalate,
    step_cell,
)
from analytics.alerts.params import KIND_INDEX, AlertKind, AlertNorms, Severity
from analytics.alerts.projection import ShiftProjection, project_shift, time_to_level
from analytics.alerts.shifts import Calendars, ShiftCalendar
from analytics.alerts.subjects import (
    DEVICE,
    PROJ_LEX,
    PROJ_NONE,
    QUANTITY_CODES,
    SubjectSpec,
    Thresholds,
    thresholds_for,
)
from analytics.alerts.text import duration, fmt, what, where
from analytics.alerts.window import Bins, theil_sen_slope
from analytics.errors import InputError
from analytics.norms import Norms
from analytics.types import BoolArray, FloatArray, IntArray

#: Formats epoch seconds for a person in an IANA zone: ``(time_s, zone) -> text``.
TimeText = Callable[[float, str], str]


def utc_time_text(time_s: float, zone: str) -> str:
    """Epoch seconds as ``HH:MM UTC``: right, though not local (the core reads no zone data;
    the shell passes a formatter that gives the enterprise's local time with its zone)."""
    return f"{datetime.fromtimestamp(time_s, UTC):%H:%M} UTC"


@dataclass(frozen=True, slots=True)
class Batch:
    """Samples and message facts since the previous evaluation (all arrays 1-D).

    * samples: ``slot`` (sensor), ``time_s`` (epoch seconds), ``value``, ``duration_s`` (the
      time each sample stands for, e.g. the channel's period), ``valid`` (False: non-finite or
      outside the instrument range; such samples only feed the sensor-health detector);
    * arrivals: one row per (message, sensor) with the message's latest sample time of that
      sensor and the engine clock at receipt;
    * statuses: device slot and whether it said it is online.
    """

    slot: IntArray
    time_s: FloatArray
    value: FloatArray
    duration_s: FloatArray
    valid: BoolArray
    arrival_slot: IntArray
    arrival_end_s: FloatArray
    arrival_now_s: FloatArray
    status_slot: IntArray
    status_online: BoolArray

    @classmethod
    def empty(cls) -> Batch:
        f = np.zeros(0)
        i = np.zeros(0, dtype=np.intp)
        b = np.zeros(0, dtype=bool)
        return cls(i, f, f, f, b, i, f, f, i, b)


@dataclass(slots=True)
class BatchBuilder:
    """Collects channels of decoded messages into one :class:`Batch` (lists, then arrays)."""

    _slot: list[IntArray] = field(default_factory=list)
    _time: list[FloatArray] = field(default_factory=list)
    _value: list[FloatArray] = field(default_factory=list)
    _dur: list[FloatArray] = field(default_factory=list)
    _valid: list[BoolArray] = field(default_factory=list)
    _arr_slot: list[int] = field(default_factory=list)
    _arr_end: list[float] = field(default_factory=list)
    _arr_now: list[float] = field(default_factory=list)
    _st_slot: list[int] = field(default_factory=list)
    _st_online: list[bool] = field(default_factory=list)

    def channel(
        self,
        slot: int,
        time_s: FloatArray,
        value: FloatArray,
        duration_s: float,
        valid: BoolArray,
        received_now_s: float,
    ) -> None:
        n = int(time_s.size)
        if n == 0:
            return
        self._slot.append(np.full(n, slot, dtype=np.intp))
        self._time.append(np.asarray(time_s, dtype=np.float64))
        self._value.append(np.asarray(value, dtype=np.float64))
        self._dur.append(np.full(n, duration_s))
        self._valid.append(np.asarray(valid, dtype=bool))
        self._arr_slot.append(slot)
        self._arr_end.append(float(np.max(time_s)))
        self._arr_now.append(received_now_s)

    def status(self, device_slot: int, online: bool) -> None:
        self._st_slot.append(device_slot)
        self._st_online.append(online)

    def __len__(self) -> int:
        return len(self._arr_slot) + len(self._st_slot)

    def build(self) -> Batch:
        def cat(parts: list[Any], dtype: Any) -> Any:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        return Batch(
            slot=cat(self._slot, np.intp),
            time_s=cat(self._time, np.float64),
            value=cat(self._value, np.float64),
            duration_s=cat(self._dur, np.float64),
            valid=cat(self._valid, np.bool_),
            arrival_slot=np.asarray(self._arr_slot, dtype=np.intp),
            arrival_end_s=np.asarray(self._arr_end, dtype=np.float64),
            arrival_now_s=np.asarray(self._arr_now, dtype=np.float64),
            status_slot=np.asarray(self._st_slot, dtype=np.intp),
            status_online=np.asarray(self._st_online, dtype=bool),
        )


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


def _grow(state: DetectorState, needed: int) -> None:
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


def add_subject(state: DetectorState, spec: SubjectSpec) -> int:
    """Register a sensor or device (its device first) and return its slot; re-registering a
    key updates its registry facts (workplace, calibration date, schedule) and keeps its state
    (but a new schedule starts its shift sums afresh: the old shift is not one of it)."""
    slot = state.index.get(spec.key)
    if slot is None:
        device_slot = -1
        if not spec.is_device:
            device_slot = state.index.get(spec.device, -1)
            if device_slot < 0:
                raise InputError(f"register device {spec.device!r} before its sensor {spec.key!r}")
        _grow(state, state.n + 1)
        slot = state.n
        state.n += 1
        state.subjects.append(spec)
        state.thresholds.append(Thresholds())
        state.index[spec.key] = slot
        state.device_slot[slot] = device_slot
    if spec.quantity is not None and spec.quantity not in QUANTITY_CODES:
        raise InputError(f"unknown quantity {spec.quantity!r}")
    th = thresholds_for(spec, state.norms, state.alerts)
    calendar = -1 if spec.schedule is None else state.calendars.id_of(spec.schedule)
    if calendar != state.calendar[slot]:
        state.calendar[slot] = calendar
        state.shift_start[slot] = state.shift_end[slot] = -np.inf
        state.shift_sum[slot] = state.shift_w[slot] = 0.0
    state.subjects[slot] = spec
    state.thresholds[slot] = th
    state.quantity[slot] = DEVICE if spec.quantity is None else QUANTITY_CODES[spec.quantity]
    state.linear[slot] = th.linear
    state.ceiling[slot] = th.ceiling
    state.pre[slot] = th.pre
    state.floor[slot] = th.floor
    state.pre_floor[slot] = th.pre_floor
    state.short_term[slot] = th.short_term
    state.trend_limit[slot] = th.trend
    state.projection[slot] = th.projection
    state.proj_k[slot] = th.projection_k
    state.calibration_due[slot] = spec.calibration_due_s
    return slot


def set_calendars(state: DetectorState, calendars: Mapping[Hashable, ShiftCalendar]) -> None:
    """Give (or renew) the shift calendars of some schedules. The shell keeps each calendar
    covering the past it accepts samples from to somewhat ahead of its clock."""
    state.calendars.update(calendars)


def schedules(state: DetectorState) -> list[Hashable]:
    """The schedules the state's subjects use (each needs a calendar)."""
    return list(state.calendars.ids)


def shift_at(
    state: DetectorState, slot: IntArray, time_s: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Start and end (epoch seconds) of the shift of ``slot``'s schedule holding ``time_s``;
    NaN where none does (between shifts, or no schedule)."""
    slot = np.asarray(slot, dtype=np.intp)
    return state.calendars.find(state.calendar[slot], np.asarray(time_s, dtype=np.float64))


def admit(state: DetectorState, device_slot: int, seq: int) -> Literal["new", "duplicate", "old"]:
    """De-duplicate by (device, seq) and remember the sequence number for gap detection.

    ``old``: older than the device's window of remembered numbers (neither stored twice nor
    counted as missing). A jump back by more than four windows is taken as a device whose
    counter restarted, and starts the window afresh.
    """
    window = state.seq_seen.shape[1]
    hi = int(state.seq_hi[device_slot])
    ring = state.seq_seen[device_slot]
    if hi < 0 or seq < hi - 4 * window:
        ring[:] = False
        ring[seq % window] = True
        state.seq_hi[device_slot] = seq
        state.seq_lo[device_slot] = seq
        return "new"
    if seq > hi:
        if seq - hi >= window:
            ring[:] = False
        else:
            skipped = np.arange(hi + 1, seq) % window
            ring[skipped] = False
        ring[seq % window] = True
        state.seq_hi[device_slot] = seq
        state.seq_lo[device_slot] = max(int(state.seq_lo[device_slot]), seq - window + 1)
        return "new"
    if seq <= hi - window:
        return "old"
    if ring[seq % window]:
        return "duplicate"
    ring[seq % window] = True
    state.seq_lo[device_slot] = min(int(state.seq_lo[device_slot]), seq)
    return "new"


def _linear(kind: IntArray, value: FloatArray) -> FloatArray:
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.where(kind == 1, np.power(10.0, value / 10.0), value)
        out = np.where(kind == 2, value * value, out)
    return out


def warm(state: DetectorState, batch: Batch) -> DetectorState:
    """Add samples to the statistics without running detectors (rebuild after a restart)."""
    _accumulate(state, batch)
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


def _accumulate(
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


def _arrivals(state: DetectorState, batch: Batch) -> None:
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


def _hyst_clear(th: FloatArray, is_db: BoolArray, kind: AlertKind, a: AlertNorms) -> FloatArray:
    rule = a.kinds[kind]
    return np.where(is_db, th - rule.hysteresis_db, th * (1.0 - rule.hysteresis_fraction))


class _Stepper:
    """Feeds observations of interesting cells into the lifecycle."""

    def __init__(self, state: DetectorState, now: float, events: list[AlertEvent]) -> None:
        self.state = state
        self.now = now
        self.events = events

    def interesting(self, kind: AlertKind, slots: IntArray, active: BoolArray) -> IntArray:
        held = self.state.cells.status[slots, KIND_INDEX[kind]] != IDLE
        result: IntArray = np.nonzero(active | held)[0]
        return result

    def step(self, slot: int, kind: AlertKind, obs: Observation) -> None:
        step_cell(
            self.state.cells,
            self.state.subjects[slot],
            slot,
            KIND_INDEX[kind],
            obs,
            self.state.alerts,
            self.now,
            self.events,
        )


def _floor_detectors(
    state: DetectorState, touched: IntArray, t: FloatArray, vmin: FloatArray, st: _Stepper
) -> None:
    """Low alarms (oxygen deficiency): the batch minimum against the first and second floors;
    an alarm clears once the minimum is back above the floor plus its hysteresis."""
    a = state.alerts
    for kind, thr_all in ((AlertKind.FLOOR, state.floor), (AlertKind.PRE_FLOOR, state.pre_floor)):
        thr = thr_all[touched]
        applies = np.isfinite(thr) & np.isfinite(vmin)
        if not np.any(applies):
            continue
        active = applies & ((vmin < thr) if kind is AlertKind.FLOOR else (vmin <= thr))
        clear = applies & (vmin > thr * (1.0 + a.kinds[kind].hysteresis_fraction))
        for i in st.interesting(kind, touched, active):
            if not applies[i]:
                continue
            s = int(touched[i])
            spec = state.subjects[s]
            th = state.thresholds[s]
            value, limit = float(vmin[i]), float(thr[i])
            label = th.floor_label if kind is AlertKind.FLOOR else th.pre_floor_label

            def msg(value: float = value, limit: float = limit, label: str = label) -> str:
                return (
                    f"{what(spec)} {fmt(value)} {spec.unit} at {where(spec)} is below the "
                    f"{label} of {fmt(limit)} {spec.unit}"
                )

            st.step(
                s,
                kind,
                Observation(
                    bool(active[i]), bool(clear[i]), float(t[i]), value, limit,
                    a.kinds[kind].severity, spec.unit, spec.unit, msg,
                ),
            )  # fmt: skip


def _value_detectors(
    state: DetectorState, touched: IntArray, t: FloatArray, vmax: FloatArray, st: _Stepper
) -> None:
    a = state.alerts
    sensors = state.quantity[touched] != DEVICE
    touched, t, vmax = touched[sensors], t[sensors], vmax[sensors]
    if touched.size == 0:
        return
    is_db = state.linear[touched] == 1

    # ceiling and pre-exceedance: the batch maximum against the threshold
    for kind, thr_all in (
        (AlertKind.CEILING, state.ceiling),
        (AlertKind.PRE_EXCEEDANCE, state.pre),
    ):
        thr = thr_all[touched]
        applies = np.isfinite(thr) & np.isfinite(vmax)
        over = vmax > thr if kind is AlertKind.CEILING else vmax >= thr
        active = applies & over
        clear = applies & (vmax < _hyst_clear(thr, is_db, kind, a))
        for i in st.interesting(kind, touched, active):
            if not applies[i]:
                continue
            s = int(touched[i])
            spec = state.subjects[s]
            th = state.thresholds[s]
            value, limit = float(vmax[i]), float(thr[i])
            if kind is AlertKind.CEILING:

                def msg() -> str:
                    return (
                        f"{what(spec)} {fmt(value)} {spec.unit} at {where(spec)} is above the "
                        f"{th.ceiling_label} of {fmt(limit)} {spec.unit}"
                    )
            else:
                pct = 100.0 * value / th.pre_of if th.pre_of else math.nan

                def msg() -> str:
                    return (
                        f"{what(spec)} {fmt(value)} {spec.unit} at {where(spec)} has reached "
                        f"{pct:.0f} % of {th.pre_label} {fmt(th.pre_of)} {spec.unit}"
                    )

            severity = a.kinds[kind].severity
            st.step(
                s,
                kind,
                Observation(
                    bool(active[i]), bool(clear[i]), float(t[i]), value, limit, severity,
                    spec.unit, spec.unit, msg,
                ),
            )  # fmt: skip

    # rolling 15-min mean against ПДК_max
    st_limit = state.short_term[touched]
    has = np.isfinite(st_limit)
    if np.any(has):
        idx = touched[has]
        wsum, w = state.bins.window_sums(idx, t[has], a.short_term_window_s)
        covered = w >= a.short_term_min_fraction * a.short_term_window_s
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(w > 0, wsum / np.where(w > 0, w, 1.0), np.nan)
        lim = st_limit[has]
        active = covered & (mean > lim)
        clear = covered & (mean < _hyst_clear(lim, is_db[has], AlertKind.SHORT_TERM, a))
        for i in st.interesting(AlertKind.SHORT_TERM, idx, active):
            s = int(idx[i])
            spec = state.subjects[s]

            def msg() -> str:
                return (
                    f"15-minute mean {what(spec)} {fmt(float(mean[i]))} {spec.unit} at "
                    f"{where(spec)} is above ПДК_max {fmt(float(lim[i]))} {spec.unit}"
                )

            st.step(
                s,
                AlertKind.SHORT_TERM,
                Observation(
                    bool(active[i]), bool(clear[i]), float(t[has][i]), float(mean[i]),
                    float(lim[i]), a.kinds[AlertKind.SHORT_TERM].severity, spec.unit, spec.unit,
                    msg,
                ),
            )  # fmt: skip

    # Projections, trends and sensor health move on the scale of bins: run them once per
    # sensor and bin, which keeps the cost of a small batch (one live message) low.
    current = np.floor(t / a.bin_s).astype(np.intp)
    slow = current != state.slow_bin[touched]
    if np.any(slow):
        state.slow_bin[touched[slow]] = current[slow]
        _projection(state, touched[slow], t[slow], st)
        _trend(state, touched[slow], t[slow], st)
        _health_windows(state, touched[slow], t[slow], st)


def running_projections(
    state: DetectorState, slots: IntArray, t: FloatArray | None = None
) -> ShiftProjection:
    """So far and projected daily values of ``slots`` (sensors with a projection) at their
    latest samples ``t`` (default: the latest sample each has had): what the
    ``projected_exposure`` detector compares with its levels, and what the dashboard shows."""
    slots = np.asarray(slots, dtype=np.intp)
    tt = state.last_time[slots] if t is None else np.asarray(t, dtype=np.float64)
    wsum, w = state.bins.window_sums(slots, tt, state.alerts.projection_rate_window_s)
    return project_shift(
        state.projection[slots],
        state.proj_k[slots],
        state.shift_sum[slots],
        wsum,
        w,
        tt,
        state.shift_start[slots],
        state.shift_end[slots],
    )


def _projection(state: DetectorState, touched: IntArray, t: FloatArray, st: _Stepper) -> None:
    a = state.alerts
    kind = state.projection[touched]
    has = kind != PROJ_NONE
    if not np.any(has):
        return
    idx, tt, kk = touched[has], t[has], kind[has]
    p = running_projections(state, idx, tt)
    metric, rate, end = p.projected, p.rate, state.shift_end[idx]
    measured = p.inside & (state.shift_w[idx] >= a.projection_min_measured_s)
    lowest = np.array([state.thresholds[int(s)].projection_levels[0] for s in idx])
    is_db = kk == PROJ_LEX
    active = measured & (metric >= lowest)
    clear = p.ended | (
        measured & (metric < _hyst_clear(lowest, is_db, AlertKind.PROJECTED_EXPOSURE, a))
    )
    for i in st.interesting(AlertKind.PROJECTED_EXPOSURE, idx, active):
        s = int(idx[i])
        spec, th = state.subjects[s], state.thresholds[s]
        value = float(metric[i])
        crossed = [j for j, lv in enumerate(th.projection_levels) if value >= lv]
        j = crossed[-1] if crossed else 0
        level = th.projection_levels[j]
        severity = th.projection_severities[j]
        time_left = time_to_level(
            int(kk[i]), level, float(state.proj_k[s]), float(state.shift_sum[s]),
            float(rate[i]), value,
        )  # fmt: skip
        at_s = float(tt[i])
        shift_end = float(end[i])

        def msg() -> str:
            clock = state.time_text
            when = (
                "has already been reached"
                if time_left == 0.0
                else f"is reached in {duration(time_left)}, at "
                f"{clock(at_s + time_left, spec.timezone)}, at the current level"
                if time_left is not None
                else "is not reached at the current level"
            )
            return (
                f"at the current level {where(spec)} ends the shift at "
                f"{clock(shift_end, spec.timezone)} with {th.projection_metric} "
                f"{fmt(value)} {th.projection_unit}, over {fmt(level)} {th.projection_unit}; "
                f"{fmt(level)} {th.projection_unit} {when}"
            )

        st.step(
            s,
            AlertKind.PROJECTED_EXPOSURE,
            Observation(
                bool(active[i]), bool(clear[i]), float(tt[i]), value, level, severity,
                th.projection_unit, th.projection_unit, msg, time_left,
            ),
        )  # fmt: skip


def _trend(state: DetectorState, touched: IntArray, t: FloatArray, st: _Stepper) -> None:
    a = state.alerts
    limit = state.trend_limit[touched]
    has = np.isfinite(limit)
    if not np.any(has):
        return
    idx, tt, lim = touched[has], t[has], limit[has]
    means = state.bins.segment_means(idx, tt, a.trend_window_s, a.trend_segments)
    seg_s = a.trend_window_s / a.trend_segments
    slope, rising, points = theil_sen_slope(means, seg_s)
    with np.errstate(all="ignore"):
        latest = means[:, -1]
        for j in range(means.shape[1] - 2, -1, -1):
            latest = np.where(np.isnan(latest), means[:, j], latest)
        enough = points >= a.trend_min_segments_fraction * a.trend_segments
        ahead = latest + slope * a.trend_horizon_s
        active = (
            enough
            & (slope > 0)
            & (rising >= a.trend_min_rising_fraction)
            & (latest < lim)
            & (ahead >= lim)
        )
        rule = a.kinds[AlertKind.TREND]
        clear = enough & (
            ~(slope > 0) | (ahead < lim * (1 - rule.hysteresis_fraction)) | (latest >= lim)
        )
    for i in st.interesting(AlertKind.TREND, idx, active):
        s = int(idx[i])
        spec, th = state.subjects[s], state.thresholds[s]
        sl = float(slope[i])
        left = (float(lim[i]) - float(latest[i])) / sl if sl > 0 else math.nan

        def msg() -> str:
            return (
                f"{what(spec)} at {where(spec)} is rising {fmt(sl * 60)} {spec.unit} per minute "
                f"and reaches {th.trend_label} {fmt(float(lim[i]))} {spec.unit} in about "
                f"{duration(max(left, 0.0)) if math.isfinite(left) else 'an unknown time'}"
            )

        st.step(
            s,
            AlertKind.TREND,
            Observation(
                bool(active[i]), bool(clear[i]), float(tt[i]), float(latest[i]), float(lim[i]),
                rule.severity, spec.unit, spec.unit, msg,
                left if math.isfinite(left) and left > 0 else None,
            ),
        )  # fmt: skip


def _health_windows(state: DetectorState, touched: IntArray, t: FloatArray, st: _Stepper) -> None:
    a = state.alerts
    # flatline: every bin of a full window measured, and the values span nothing
    vmin, vmax, measured, _ = state.bins.window_extremes(touched, t, a.flatline_window_s)
    full = measured >= state.bins.bins_for(a.flatline_window_s)
    scale = np.maximum(np.abs(vmax), np.abs(vmin))
    with np.errstate(invalid="ignore"):
        flat = full & (vmax - vmin <= a.flatline_relative_tolerance * scale) & (scale > 0)
    not_flat = ~flat
    for i in st.interesting(AlertKind.FLATLINE, touched, flat):
        s = int(touched[i])
        spec = state.subjects[s]

        def msg() -> str:
            return (
                f"{where(spec)} has reported the same value {fmt(float(vmax[i]))} {spec.unit} "
                f"for {duration(a.flatline_window_s)}: check the sensor"
            )

        st.step(
            s,
            AlertKind.FLATLINE,
            Observation(
                bool(flat[i]), bool(not_flat[i]), float(t[i]), float(vmax[i]),
                a.flatline_window_s, a.kinds[AlertKind.FLATLINE].severity, spec.unit, "s", msg,
            ),
        )  # fmt: skip
    # out of range / non-finite samples in the last window
    _, _, _, bad = state.bins.window_extremes(touched, t, a.out_of_range_window_s)
    active = bad > 0
    for i in st.interesting(AlertKind.OUT_OF_RANGE, touched, active):
        s = int(touched[i])
        spec = state.subjects[s]

        def msg() -> str:
            return (
                f"{where(spec)} sent {int(bad[i])} samples in the last "
                f"{duration(a.out_of_range_window_s)} that are outside its range or not numbers"
            )

        st.step(
            s,
            AlertKind.OUT_OF_RANGE,
            Observation(
                bool(active[i]), not bool(active[i]), float(t[i]), float(bad[i]), 0.0,
                a.kinds[AlertKind.OUT_OF_RANGE].severity, "samples", "samples", msg,
            ),
        )  # fmt: skip


def _clock_detectors(state: DetectorState, now: float, st: _Stepper) -> None:
    a = state.alerts
    n = state.n
    if n == 0:
        return
    slots = np.arange(n)
    q = state.quantity[:n]
    is_dev = q == DEVICE

    # device offline (status topic)
    online = state.online[:n]
    offline = is_dev & (online == 0)
    back = is_dev & (online == 1)
    for i in st.interesting(AlertKind.DEVICE_OFFLINE, slots, offline):
        if not is_dev[i]:
            continue
        spec = state.subjects[int(i)]
        st.step(
            int(i),
            AlertKind.DEVICE_OFFLINE,
            Observation(
                bool(offline[i]), bool(back[i]), now, 0.0, 0.0,
                a.kinds[AlertKind.DEVICE_OFFLINE].severity, "", "",
                lambda: f"device {spec.device} reports that it is offline",
            ),
        )  # fmt: skip

    # silent sensors of devices that are not offline
    dev = state.device_slot[:n]
    dev_offline = np.where(dev >= 0, state.online[np.maximum(dev, 0)] == 0, False)
    learned = (~is_dev) & (state.intervals_seen[:n] >= a.silence_min_messages)
    silent_s = now - state.last_arrival_now[:n]
    limit = a.silence_interval_factor * state.interval[:n]
    with np.errstate(invalid="ignore"):
        silent = learned & ~dev_offline & (silent_s > limit)
        talking = learned & (silent_s <= limit)
    for i in st.interesting(AlertKind.SENSOR_SILENT, slots, silent):
        spec = state.subjects[int(i)]

        def msg() -> str:
            return (
                f"{where(spec)} has sent nothing for {fmt(float(silent_s[i]))} s while its device "
                f"is live (usual interval {fmt(float(state.interval[i]))} s)"
            )

        st.step(
            int(i),
            AlertKind.SENSOR_SILENT,
            Observation(
                bool(silent[i]), bool(talking[i] or dev_offline[i]), now, float(silent_s[i]),
                float(limit[i]), a.kinds[AlertKind.SENSOR_SILENT].severity, "s", "s", msg,
            ),
        )  # fmt: skip

    # missing sequence numbers among the last window
    hi, lo = state.seq_hi[:n], state.seq_lo[:n]
    known = is_dev & (hi >= 0)
    missing = np.where(known, (hi - lo + 1) - state.seq_seen[:n].sum(axis=1), 0)
    gap = known & (missing > 0)
    for i in st.interesting(AlertKind.SEQUENCE_GAP, slots, gap):
        if not known[i]:
            continue
        spec = state.subjects[int(i)]

        def msg() -> str:
            return (
                f"{int(missing[i])} of the last {int(hi[i] - lo[i] + 1)} messages of device "
                f"{spec.device} are missing (sequence numbers {int(lo[i])}-{int(hi[i])})"
            )

        st.step(
            int(i),
            AlertKind.SEQUENCE_GAP,
            Observation(
                bool(gap[i]), not bool(gap[i]), now, float(missing[i]), 0.0,
                a.kinds[AlertKind.SEQUENCE_GAP].severity, "messages", "messages", msg,
            ),
        )  # fmt: skip

    # calibration overdue
    due = state.calibration_due[:n]
    with np.errstate(invalid="ignore"):
        overdue = np.isfinite(due) & (now >= due)
        fine = ~overdue
    for i in st.interesting(AlertKind.CALIBRATION_OVERDUE, slots, overdue):
        spec = state.subjects[int(i)]
        days = (now - float(due[i])) / 86400.0 if math.isfinite(float(due[i])) else 0.0

        def msg() -> str:
            return f"calibration of {where(spec)} is overdue by {max(days, 0.0):.0f} days"

        st.step(
            int(i),
            AlertKind.CALIBRATION_OVERDUE,
            Observation(
                bool(overdue[i]), bool(fine[i]), now, days, 0.0,
                a.kinds[AlertKind.CALIBRATION_OVERDUE].severity, "d", "d", msg,
            ),
        )  # fmt: skip


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
    st = _Stepper(state, now, events)
    if batch.status_slot.size:
        state.online[batch.status_slot] = batch.status_online.astype(np.int64)
    _arrivals(state, batch)
    touched, t_last, vmax, vmin = _accumulate(state, batch)
    if touched.size:
        _value_detectors(state, touched, t_last, vmax, st)
        _floor_detectors(state, touched, t_last, vmin, st)
    if clock_checks or batch.status_slot.size:
        _clock_detectors(state, now, st)
        events.extend(escalate(state.cells, state.subjects, state.alerts, now))
    return state, events


def acknowledge(
    state: DetectorState, ident: str, now: float, *, actor: str | None, comment: str | None
) -> tuple[DetectorState, AlertEvent]:
    """A person acknowledged alert ``ident`` (stops escalation)."""
    return state, act(
        state.cells, state.subjects, ident, "acknowledge", now, actor=actor, comment=comment
    )


def resolve(
    state: DetectorState, ident: str, now: float, *, actor: str | None, comment: str | None
) -> tuple[DetectorState, AlertEvent]:
    """A person resolved alert ``ident``; the cell re-arms once its condition is clear."""
    return state, act(
        state.cells, state.subjects, ident, "resolve", now, actor=actor, comment=comment
    )


def open_alerts(state: DetectorState) -> list[tuple[str, AlertKind, str, Severity]]:
    """``(alert id, kind, subject key, severity)`` of every alert the state holds."""
    out = []
    for ident, (slot, k) in state.cells.by_id.items():
        kind = list(AlertKind)[k]
        out.append(
            (ident, kind, state.subjects[slot].key, Severity(int(state.cells.severity[slot, k])))
        )
    return out


__all__ = [
    "Batch",
    "BatchBuilder",
    "DetectorState",
    "acknowledge",
    "add_subject",
    "admit",
    "evaluate",
    "new_state",
    "open_alerts",
    "resolve",
    "schedules",
    "seed",
    "set_calendars",
    "shift_at",
    "utc_time_text",
    "warm",
]
