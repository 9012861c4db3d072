"""Shift windows of a workplace: shift n of a local date starts at the n-th start time of its
schedule, in the enterprise's time zone, and lasts the schedule's duration. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from api.errors import UnprocessableError


@dataclass(frozen=True, slots=True)
class Schedule:
    starts: tuple[time, ...]
    duration_s: int
    timezone: str

    @classmethod
    def of(cls, starts: Sequence[time], duration_s: int, timezone: str) -> Schedule:
        return cls(tuple(sorted(starts)), int(duration_s), timezone)


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
        raise UnprocessableError(
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


def last_finished(schedule: Schedule, now: datetime) -> Shift:
    """The latest shift that has ended at ``now``."""
    day = today(schedule, now)
    candidates = shifts_between(schedule, day - timedelta(days=2), day)
    return [s for s in candidates if s.end <= now][-1]
