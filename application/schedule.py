"""The only definition of a shift: a workplace's schedule.

Shift n of a local date starts at the n-th start time of the schedule, in the enterprise's IANA
time zone, and lasts the schedule's duration (so a night shift crosses midnight, and a shift
that starts on the day clocks change still starts at its local time and lasts its duration in
real seconds). Every surface (API, dashboard, reports, exports, the CLI, the assessment service
and the alert engine's projections) takes its shifts from here. Pure functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from vocabulary.errors import QorgauError


class NoSuchShiftError(QorgauError):
    """A shift number outside the workplace's schedule."""


@dataclass(frozen=True, slots=True)
class Schedule:
    starts: tuple[time, ...]  # local start times, sorted
    duration_s: int
    timezone: str  # IANA zone of the enterprise

    @classmethod
    def of(cls, starts: Sequence[time], duration_s: int, timezone: str) -> Schedule:
        return cls(tuple(sorted(starts)), int(duration_s), timezone)

    @classmethod
    def of_workplace(cls, workplace: Any) -> Schedule:
        """The schedule of a workplace row (``shift_starts``, ``shift_duration_s``,
        ``timezone``)."""
        return cls.of(
            workplace["shift_starts"], workplace["shift_duration_s"], workplace["timezone"]
        )


@dataclass(frozen=True, slots=True)
class Shift:
    day: date  # local date on which the shift starts
    number: int  # 1-based position in the day's schedule
    start: datetime  # UTC
    end: datetime  # UTC

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


def shift(schedule: Schedule, day: date, number: int) -> Shift:
    if not 1 <= number <= len(schedule.starts):
        raise NoSuchShiftError(
            f"shift {number} does not exist: the workplace has {len(schedule.starts)} shift(s) "
            "a day, numbered from 1"
        )
    local = datetime.combine(day, schedule.starts[number - 1], tzinfo=ZoneInfo(schedule.timezone))
    start = local.astimezone(UTC)
    return Shift(day, number, start, start + timedelta(seconds=schedule.duration_s))


def shifts_between(schedule: Schedule, first: date, last: date) -> list[Shift]:
    """Every shift starting on a local date in ``first..last`` (inclusive), in time order."""
    found: list[Shift] = []
    day = first
    while day <= last:
        found.extend(shift(schedule, day, n) for n in range(1, len(schedule.starts) + 1))
        day += timedelta(days=1)
    return found


def today(schedule: Schedule, now: datetime) -> date:
    return now.astimezone(ZoneInfo(schedule.timezone)).date()


def local_day(schedule: Schedule, at: datetime) -> date:
    """The local date of ``at`` in the schedule's zone."""
    return at.astimezone(ZoneInfo(schedule.timezone)).date()


def overlapping(schedule: Schedule, lo: datetime, hi: datetime) -> list[Shift]:
    """Every shift that holds some instant of ``[lo, hi]``, in time order."""
    # A shift holding ``lo`` started at most its duration before it, a day or more earlier
    # for schedules longer than a day.
    back = timedelta(seconds=schedule.duration_s) + timedelta(days=1)
    first = local_day(schedule, lo - back)
    last = local_day(schedule, hi)
    return [s for s in shifts_between(schedule, first, last) if s.start <= hi and s.end > lo]


def current_shift(schedule: Schedule, now: datetime) -> Shift:
    """The shift under way at ``now`` (the latest started of several), or else the latest one
    that has started."""
    day = today(schedule, now)
    started = [
        s
        for s in shifts_between(schedule, day - timedelta(days=2), day + timedelta(days=1))
        if s.start <= now
    ]
    running = [s for s in started if now < s.end]
    return (running or started)[-1]


def last_finished(schedule: Schedule, now: datetime) -> Shift:
    """The latest shift that has ended at ``now``."""
    day = today(schedule, now)
    candidates = shifts_between(schedule, day - timedelta(days=2), day)
    return [s for s in candidates if s.end <= now][-1]


def bounds_s(schedule: Schedule, lo: datetime, hi: datetime) -> tuple[list[int], list[int]]:
    """Start and end epoch seconds of every shift holding some instant of ``[lo, hi]``, in time
    order: the calendar that streaming code (the alert engine) searches instead of calling
    :func:`overlapping` per sample. Whole seconds: a start time given to the fraction of a
    second is taken at its whole second. Sorted by start, one shift per start: on the day
    clocks go forward a start time that does not exist (02:30 in Berlin) falls before a later
    start of that morning (03:15), and two start times may fall on one instant."""
    starts = sorted({int(s.start.timestamp() // 1) for s in overlapping(schedule, lo, hi)})
    return starts, [start + schedule.duration_s for start in starts]


def local_time_text(at: datetime, timezone: str) -> str:
    """A moment as people should read it: local time with its offset or abbreviation and the
    zone, e.g. ``16:27 +05 (Asia/Almaty)``, ``07:00 CET (Europe/Berlin)``, ``14:27 UTC``."""
    local = at.astimezone(ZoneInfo(timezone))
    label = local.tzname() or local.strftime("%z")
    return f"{local:%H:%M} {label}" + ("" if label == timezone else f" ({timezone})")
