"""Shift schedules: who is working, at what, at a given instant.

Times of day are local (the enterprise's UTC offset); tasks, breaks, events and fault windows
are given relative to the start of each shift, so one description repeats every shift.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

DAY_S = 86_400

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_clock(text: str) -> float:
    """``"8:30"`` or ``"08:30:15"`` → seconds (no upper bound: ``"26:00"`` is fine for
    shift-relative times)."""
    m = _CLOCK.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a time of the form H:MM or H:MM:SS")
    hours, minutes, seconds = int(m[1]), int(m[2]), int(m[3] or 0)
    if minutes >= 60 or seconds >= 60:
        raise ValueError(f"{text!r}: minutes and seconds must be below 60")
    return hours * 3600.0 + minutes * 60.0 + seconds


def parse_duration(value: str | float | int) -> float:
    """``"90s"``, ``"20m"``, ``"8h"``, ``"2d"`` or a number of seconds → seconds."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(value)
        if not m:
            raise ValueError(f"{value!r} is not a duration such as 90s, 20m, 8h or 2d")
        seconds = float(m[1]) * _DURATION_UNITS[m[2] or "s"]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration {value!r} must be finite and not negative")
    return seconds


def parse_utc_offset(text: str) -> timezone:
    """``"+05:00"`` → a fixed-offset time zone (no tz database needed on small devices)."""
    m = re.match(r"^([+-])(\d{2}):(\d{2})$", text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a UTC offset such as +05:00")
    sign = 1 if m[1] == "+" else -1
    return timezone(sign * timedelta(hours=int(m[2]), minutes=int(m[3])))


@dataclass(frozen=True, slots=True)
class Window:
    """``[start_s, end_s)`` seconds after the start of a shift."""

    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        if self.end_s <= self.start_s:
            raise ValueError(f"a window must end after it starts ({self.start_s}–{self.end_s} s)")

    def contains(self, rel_s: float) -> bool:
        return self.start_s <= rel_s < self.end_s


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    window: Window
    level: float = 1.0  # share of the time the workplace's machines run (0..1)


@dataclass(frozen=True, slots=True)
class Activity:
    """What is happening at a workplace at one instant."""

    level: float  # 0 off shift or on a break; else the task's level or the idle level
    task: str | None = None
    shift_rel_s: float | None = None  # seconds since the start of the current shift

    @property
    def on_shift(self) -> bool:
        return self.shift_rel_s is not None


OFF = Activity(0.0)


@dataclass(frozen=True, slots=True)
class Shifts:
    """Shifts that start at fixed local times every day and last ``length_s``."""

    starts_s: tuple[float, ...]  # seconds after local midnight
    length_s: float
    tz: timezone = UTC
    breaks: tuple[Window, ...] = ()

    def __post_init__(self) -> None:
        if not self.starts_s:
            raise ValueError("a schedule needs at least one shift start")
        if not 0 < self.length_s <= DAY_S:
            raise ValueError("a shift lasts more than 0 and at most 24 hours")

    def _offset_s(self) -> float:
        offset = self.tz.utcoffset(None)
        return offset.total_seconds() if offset is not None else 0.0

    def shift_rel(self, t_s: float) -> float | None:
        """Seconds since the start of the shift under way at epoch time ``t_s``, or None."""
        local_day_s = (t_s + self._offset_s()) % DAY_S
        best: float | None = None
        for start in self.starts_s:
            rel = (local_day_s - start) % DAY_S
            if rel < self.length_s and (best is None or rel < best):
                best = rel
        return best

    def on_break(self, rel_s: float) -> bool:
        return any(w.contains(rel_s) for w in self.breaks)

    def latest_start(self, before: datetime) -> datetime:
        """The start of the last shift that began at or before ``before``."""
        local = before.astimezone(self.tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        candidates = [
            midnight + timedelta(days=d, seconds=s) for d in (-1, 0) for s in self.starts_s
        ]
        return max(c for c in candidates if c <= local).astimezone(UTC)

    def last_complete(self, now: datetime) -> tuple[datetime, datetime]:
        """The most recent shift that has ended by ``now``: (start, end) in UTC."""
        start = self.latest_start(now)
        while start + timedelta(seconds=self.length_s) > now:
            start = self.latest_start(start - timedelta(seconds=1))
        return start, start + timedelta(seconds=self.length_s)


@dataclass(frozen=True, slots=True)
class WorkplaceSchedule:
    shifts: Shifts
    tasks: tuple[Task, ...] = ()
    idle_level: float = 0.2  # on shift, between tasks: people walking, machines idling
    always_on: bool = False  # for demo devices with no schedule: work never stops

    def activity(self, t_s: float) -> Activity:
        if self.always_on:
            return Activity(1.0, "work", t_s % DAY_S)
        rel = self.shifts.shift_rel(t_s)
        if rel is None:
            return OFF
        if self.shifts.on_break(rel):
            return Activity(0.0, "break", rel)
        for task in self.tasks:
            if task.window.contains(rel):
                return Activity(task.level, task.name, rel)
        return Activity(self.idle_level, None, rel)


ALWAYS = WorkplaceSchedule(Shifts((0.0,), DAY_S), always_on=True)
