"""The alert engine's calendars of the workplaces' schedules: built for the past ingest accepts
to two days ahead, renewed before they run out, and always agreeing with
``application.schedule``. No services: the clock is an argument."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import numpy as np

from analytics import load_norms
from analytics.alerts import (
    DetectorState,
    SubjectSpec,
    add_subject,
    load_alert_norms,
    new_state,
    shift_at,
)
from application.schedule import Schedule, current_shift
from ingest.alerting.shifts import ShiftCalendars, schedule_of, time_text
from store.settings import DEFAULT_MAX_PAST_S

SCHEDULE = Schedule.of([time(7, 0), time(19, 30)], 43200, "Asia/Almaty")


def _engine_shift(state: DetectorState, slot: int, at: datetime) -> tuple[float, float]:
    start, end = shift_at(state, np.array([slot]), np.array([at.timestamp()]))
    return float(start[0]), float(end[0])


def test_calendars_cover_the_accepted_past_and_are_renewed_before_they_run_out() -> None:
    state = new_state(load_norms("default"), load_alert_norms("default"))
    add_subject(state, SubjectSpec(enterprise="e", device="d"))
    slot = add_subject(
        state,
        SubjectSpec(
            enterprise="e",
            device="d",
            sensor="d.n",
            quantity="noise_laeq",
            unit="dB(A)",
            schedule=SCHEDULE,
            timezone=SCHEDULE.timezone,
        ),
    )
    calendars = ShiftCalendars()
    now = datetime(2026, 12, 2, 10, 15, tzinfo=UTC)
    calendars.attach(state, now.timestamp())

    def agrees(at: datetime) -> None:
        s = current_shift(SCHEDULE, at)
        want = (s.start.timestamp(), s.end.timestamp()) if at < s.end else (np.nan, np.nan)
        np.testing.assert_array_equal(_engine_shift(state, slot, at), want)

    for at in (now, now - timedelta(seconds=DEFAULT_MAX_PAST_S), now + timedelta(hours=30)):
        agrees(at)
    # Three days on, the first calendar has run out; the engine renews it as it evaluates.
    later = now + timedelta(days=3)
    assert np.isnan(_engine_shift(state, slot, later)[0])
    assert calendars.due(later.timestamp())
    calendars.renew([state], later.timestamp())
    assert not calendars.due(later.timestamp())
    agrees(later)
    agrees(later + timedelta(hours=30))


def test_times_in_messages_carry_the_enterprise_zone() -> None:
    at = datetime(2026, 12, 2, 11, 27, tzinfo=UTC).timestamp()
    assert time_text(at, "Asia/Almaty") == "16:27 +05 (Asia/Almaty)"
    assert time_text(at, "Europe/Berlin") == "12:27 CET (Europe/Berlin)"
    assert time_text(at, "UTC") == "11:27 UTC"
    assert time_text(at, "Nowhere/Atlantis") == "11:27 UTC"  # still the right moment


def test_a_sensor_without_a_workplace_or_zone_has_no_schedule() -> None:
    assert schedule_of(None, None, "Asia/Almaty") is None
    assert schedule_of([time(8)], 28800, "Nowhere/Atlantis") is None
    assert schedule_of([time(19, 30), time(7)], 43200, "Asia/Almaty") == SCHEDULE
