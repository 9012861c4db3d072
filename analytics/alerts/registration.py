"""What the shell tells the state about the world: its subjects and their shift calendars.

A sensor or device gets a slot once and keeps it; re-registering updates the registry facts
(thresholds, calibration date, schedule) without losing the statistics. Calendars are looked
up by the schedule of each subject, so one calendar serves every workplace on that schedule.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np

from analytics.alerts.shifts import ShiftCalendar
from analytics.alerts.state import DetectorState, grow
from analytics.alerts.subjects import (
    DEVICE,
    QUANTITY_CODES,
    SubjectSpec,
    Thresholds,
    thresholds_for,
)
from analytics.errors import InputError
from analytics.types import FloatArray, IntArray


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
        grow(state, state.n + 1)
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


__all__ = ["add_subject", "schedules", "set_calendars", "shift_at"]
