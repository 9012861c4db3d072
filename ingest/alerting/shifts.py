"""The alert engine's shifts: each workplace's schedule (``application.schedule``, the one
definition of a shift every surface uses) as the calendars the pure detectors search.

A calendar lists the ``[start, end)`` of a schedule's shifts over a span: from the shift that
holds the oldest sample ingest accepts (28 days back) to two days ahead of the engine's clock.
Every schedule's calendar is built for the same span and renewed, all at once, a day before the
span runs out; a schedule seen for the first time (a new workplace, a changed schedule) gets
its calendar when its sensor is registered.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Sequence
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from analytics.alerts import DetectorState, ShiftCalendar, schedules, set_calendars, utc_time_text
from application.schedule import Schedule, bounds_s, local_time_text
from store.settings import DEFAULT_MAX_PAST_S

log = logging.getLogger(__name__)

_DAY_S = 86_400.0


def time_text(time_s: float, zone: str) -> str:
    """Epoch seconds as people read them in ``zone``: ``16:27 +05 (Asia/Almaty)``."""
    try:
        return local_time_text(datetime.fromtimestamp(time_s, UTC), zone)
    except (ZoneInfoNotFoundError, ValueError):
        return utc_time_text(time_s, zone)  # a zone the registry should not hold: still right


def schedule_of(
    starts: Sequence[time] | None, duration_s: int | None, zone: str
) -> Schedule | None:
    """The schedule of a workplace, or None when there is none (no workplace) or the zone is
    unknown to this machine (logged: the sensor then gets no projections)."""
    if starts is None or duration_s is None:
        return None
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        log.error("unknown time zone %r: sensors of its workplaces get no shift projections", zone)
        return None
    return Schedule.of(starts, duration_s, zone)


class ShiftCalendars:
    """Builds, shares and renews the calendars of the schedules of the engine's states."""

    def __init__(
        self,
        *,
        past_s: float = DEFAULT_MAX_PAST_S + _DAY_S,
        ahead_s: float = 2 * _DAY_S,
        renew_before_s: float = _DAY_S,
    ) -> None:
        if not 0 < renew_before_s < ahead_s:
            raise ValueError("renew_before_s must be positive and less than ahead_s")
        self.past_s = past_s
        self.ahead_s = ahead_s
        self.renew_before_s = renew_before_s
        self._span: tuple[datetime, datetime] | None = None
        self._built: dict[Schedule, ShiftCalendar] = {}

    def _calendar(self, schedule: Schedule) -> ShiftCalendar:
        assert self._span is not None
        cal = self._built.get(schedule)
        if cal is None:
            cal = self._built[schedule] = ShiftCalendar.of(*bounds_s(schedule, *self._span))
        return cal

    def _new_span(self, now: float) -> None:
        self._span = (
            datetime.fromtimestamp(now - self.past_s, UTC),
            datetime.fromtimestamp(now + self.ahead_s, UTC),
        )
        self._built.clear()

    def due(self, now: float) -> bool:
        return self._span is None or now + self.renew_before_s >= self._span[1].timestamp()

    def attach(
        self, state: DetectorState, now: float, wanted: Iterable[Hashable] | None = None
    ) -> None:
        """Give ``state`` the calendars it lacks of the schedules ``wanted`` (all of its
        schedules when None), of the current span (:meth:`renew` moves the span on, for every
        state)."""
        if self._span is None:
            self._new_span(now)
        missing: dict[Hashable, ShiftCalendar] = {}
        for s in schedules(state) if wanted is None else wanted:
            if isinstance(s, Schedule) and state.calendars.calendar(s) is not self._calendar(s):
                missing[s] = self._calendar(s)
        set_calendars(state, missing)

    def renew(self, states: Iterable[DetectorState], now: float) -> None:
        """Move every calendar's span on (when it is due), in every state."""
        if not self.due(now):
            return
        self._new_span(now)
        for state in states:
            self.attach(state, now)
        log.info("shift calendars of %d schedules renewed", len(self._built))

    @property
    def longest_shift_s(self) -> float:
        """The longest shift of any schedule with a calendar (8 h when there is none)."""
        return float(max((s.duration_s for s in self._built), default=8 * 3600))


__all__ = ["ShiftCalendars", "schedule_of", "time_text"]
