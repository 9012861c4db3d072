"""Shift calendars: which shift of its workplace's schedule a sample belongs to.

A workplace's schedule (local start times in the enterprise's IANA zone, one duration, night
shifts across midnight, DST) is defined once, in ``application.schedule``. The shell turns each
distinct schedule into a *calendar*: the ``[start, end)`` epoch seconds of its shifts over a
span of time (the past that ingest accepts to a day or two ahead), and renews it as time
passes. Here a calendar is two arrays and nothing else: no zone, no clock.

All calendars of a detector state are kept as one sorted array of int64 keys
``id·2³⁵ + start`` (whole seconds; 2³⁵ s after 1970 is the year 3058), so that the shifts of
any number of samples of any number of schedules are found by one ``np.searchsorted``.

A sample at ``t`` belongs to the latest shift started at or before ``t`` if that shift has not
ended (where two shifts overlap, the later one: the rule of
``application.schedule.current_shift``). A sample between shifts, or outside the span of its
calendar, belongs to no shift.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from analytics.errors import InputError
from analytics.types import FloatArray, Int64Array, IntArray

_BITS = 35
_SPAN = 1 << _BITS  # seconds after 1970 a calendar can hold
_MASK = _SPAN - 1


def _whole_seconds(values: ArrayLike, name: str) -> Int64Array:
    raw = np.asarray(values, dtype=np.float64)
    if raw.ndim != 1:
        raise InputError(f"{name} must be a 1-D array of epoch seconds")
    if not np.all(np.isfinite(raw)) or np.any(raw != np.floor(raw)):
        raise InputError(f"{name} must be whole epoch seconds")
    if np.any(raw < 0) or np.any(raw >= _SPAN):
        raise InputError(f"{name} must lie between 1970 and 3058")
    return raw.astype(np.int64)


@dataclass(frozen=True, slots=True)
class ShiftCalendar:
    """The shifts of one schedule over a span of time, in time order (epoch seconds)."""

    start_s: Int64Array
    end_s: Int64Array

    @classmethod
    def of(cls, start_s: ArrayLike, end_s: ArrayLike) -> ShiftCalendar:
        """Validate and build.

        Raises:
            InputError: unless starts and ends are whole epoch seconds of equal count, every
                shift ends after it starts, and both starts and ends strictly increase (a later
                shift never ends first: one schedule has one duration).
        """
        start = _whole_seconds(start_s, "start_s")
        end = _whole_seconds(end_s, "end_s")
        if start.shape != end.shape:
            raise InputError("start_s and end_s must have one entry per shift")
        if np.any(end <= start):
            raise InputError("every shift must end after it starts")
        if np.any(np.diff(start) <= 0) or np.any(np.diff(end) <= 0):
            raise InputError("shifts must be in time order, each starting and ending later")
        return cls(start, end)

    @classmethod
    def empty(cls) -> ShiftCalendar:
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none)

    def __len__(self) -> int:
        return int(self.start_s.size)


@dataclass(slots=True)
class Calendars:
    """The calendars of one detector state, by schedule (any hashable the shell chooses)."""

    ids: dict[Hashable, int] = field(default_factory=dict)
    calendars: list[ShiftCalendar] = field(default_factory=list)
    keys: Int64Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ends: Int64Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def id_of(self, schedule: Hashable) -> int:
        """The calendar id of ``schedule``, registered (with no shifts yet) if new."""
        found = self.ids.get(schedule)
        if found is None:
            found = self.ids[schedule] = len(self.calendars)
            self.calendars.append(ShiftCalendar.empty())
        return found

    def calendar(self, schedule: Hashable) -> ShiftCalendar | None:
        found = self.ids.get(schedule)
        return None if found is None else self.calendars[found]

    def update(self, calendars: Mapping[Hashable, ShiftCalendar]) -> None:
        """Set (or replace) the calendars of some schedules; the others keep theirs."""
        if not calendars:
            return
        for schedule, cal in calendars.items():
            self.calendars[self.id_of(schedule)] = cal
        # Ids are in registration order and each calendar's starts increase, so the
        # concatenation is sorted by (id, start): no sort needed.
        self.keys = np.concatenate(
            [(np.int64(i) << _BITS) | c.start_s for i, c in enumerate(self.calendars)]
        )
        self.ends = np.concatenate([c.end_s for c in self.calendars])

    def find(self, calendar: IntArray, time_s: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Start and end (epoch seconds) of the shift of each sample (calendar id ``calendar``,
        −1 for none, at ``time_s``); NaN where the sample belongs to no shift."""
        cal = np.asarray(calendar, dtype=np.int64)
        t = np.asarray(time_s, dtype=np.float64)
        start = np.full(t.shape, np.nan)
        end = np.full(t.shape, np.nan)
        if self.keys.size == 0 or t.size == 0:
            return start, end
        with np.errstate(invalid="ignore"):
            ok = (cal >= 0) & np.isfinite(t) & (t >= 0) & (t < _SPAN)
        # Boundaries are whole seconds, so start ≤ t ⇔ start ≤ ⌊t⌋ and t < end ⇔ ⌊t⌋ < end.
        sec = np.floor(np.where(ok, t, 0.0)).astype(np.int64)
        key = (np.where(ok, cal, 0) << _BITS) | sec
        i = np.searchsorted(self.keys, key, side="right") - 1
        at = np.maximum(i, 0)
        found_key = self.keys[at]
        hit = ok & (i >= 0) & ((found_key >> _BITS) == cal) & (sec < self.ends[at])
        start[hit] = (found_key & _MASK)[hit]
        end[hit] = self.ends[at][hit]
        return start, end


__all__ = ["Calendars", "ShiftCalendar"]
