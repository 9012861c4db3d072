"""The alert engine's shifts are the workplace schedule's: a two-shift schedule (07:00/19:30 ×
12 h) in a zone that leaves summer time (Europe/Berlin, last Sunday of October 2026), its
calendar built by ``application.schedule`` and searched by the pure core."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import Norms
from analytics.alerts import (
    AlertKind,
    AlertNorms,
    BatchBuilder,
    Calendars,
    ShiftCalendar,
    SubjectSpec,
    add_subject,
    evaluate,
    load_alert_norms,
    new_state,
    set_calendars,
    shift_at,
)
from analytics.errors import InputError
from application.schedule import (
    Schedule,
    bounds_s,
    current_shift,
    local_time_text,
    overlapping,
)

ZONE = "Europe/Berlin"
TWO_SHIFTS = Schedule.of([time(7, 0), time(19, 30)], 12 * 3600, ZONE)
# A noise sensor of a workplace on TWO_SHIFTS (its device "d" is registered first).
PRESS_NOISE = SubjectSpec(
    enterprise="e",
    device="d",
    sensor="d.noise",
    quantity="noise_laeq",
    unit="dB(A)",
    workplace="press-2",
    schedule=TWO_SHIFTS,
    timezone=ZONE,
)
# Summer time ends on Sunday 25 October 2026 at 03:00 CEST (01:00 UTC).
LO = datetime(2026, 10, 20, tzinfo=UTC)
HI = datetime(2026, 10, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def alert_norms() -> AlertNorms:
    return load_alert_norms("default")


def _calendar(schedule: Schedule = TWO_SHIFTS) -> ShiftCalendar:
    return ShiftCalendar.of(*bounds_s(schedule, LO, HI))


def _local(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 10, day, hour, minute, tzinfo=ZoneInfo(ZONE)).timestamp()


def _oracle(schedule: Schedule, t: float) -> tuple[float, float]:
    """The schedule module's answer, one sample at a time: the shift under way (the latest
    started of several), or none."""
    at = datetime.fromtimestamp(t, UTC)
    s = current_shift(schedule, at)
    if not s.start <= at < s.end:
        return math.nan, math.nan
    return s.start.timestamp(), s.end.timestamp()


def test_the_night_shift_across_the_change_of_clocks_lasts_its_duration() -> None:
    cal = Calendars()
    cal.update({TWO_SHIFTS: _calendar()})
    # The night shift of Saturday 24 October starts 19:30 CEST and lasts 12 real hours: it
    # ends 06:30 CET. From then to 07:00 no shift runs.
    night_start, night_end = _local(24, 19, 30), _local(25, 6, 30)
    assert night_end - night_start == 12 * 3600
    samples = np.array(
        [
            _local(24, 19, 30),
            _local(25, 2, 30),
            _local(25, 6, 29),
            _local(25, 6, 45),
            _local(25, 7, 0),
            _local(25, 7, 15),
            _local(25, 19, 15),
            _local(25, 19, 30),
        ]
    )
    start, end = cal.find(np.zeros(samples.size, dtype=np.intp), samples)
    day = (_local(25, 7), _local(25, 19))
    evening = (_local(25, 19, 30), _local(26, 7, 30))
    want = [
        (night_start, night_end),
        (night_start, night_end),
        (night_start, night_end),
        (math.nan, math.nan),
        day,
        day,
        (math.nan, math.nan),
        evening,
    ]
    np.testing.assert_array_equal(start, [w[0] for w in want])
    np.testing.assert_array_equal(end, [w[1] for w in want])
    # Where two shifts overlap (07:00-07:30 on an ordinary day), the later one holds the
    # sample, as application.schedule.current_shift says.
    overlap = _local(27, 7, 15)
    assert cal.find(np.array([0]), np.array([overlap]))[0][0] == _local(27, 7)
    assert _oracle(TWO_SHIFTS, overlap)[0] == _local(27, 7)


@settings(max_examples=60, deadline=None)
@given(
    offsets=st.lists(st.floats(0, (HI - LO).total_seconds() - 86400 * 2), min_size=1, max_size=40)
)
def test_the_shift_of_a_sample_is_the_schedule_modules_across_schedules(
    offsets: list[float],
) -> None:
    """Two schedules in one state (a one-shift Almaty workplace beside the Berlin one): the
    vectorized search finds what the schedule module finds sample by sample."""
    almaty = Schedule.of([time(8, 0)], 8 * 3600, "Asia/Almaty")
    cal = Calendars()
    cal.update({TWO_SHIFTS: _calendar(), almaty: _calendar(almaty)})
    t = LO.timestamp() + 86400 + np.asarray(offsets)
    which = np.arange(t.size) % 2
    start, end = cal.find(which, t)
    for i, (ti, w) in enumerate(zip(t, which, strict=True)):
        want = _oracle(TWO_SHIFTS if w == 0 else almaty, float(ti))
        np.testing.assert_array_equal([start[i], end[i]], want)
    # No schedule, or before the calendar's span: no shift.
    none = cal.find(np.array([-1, 0]), np.array([t[0], LO.timestamp() - 7 * 86400]))
    assert np.isnan(none[0]).all()


def test_a_calendar_must_be_whole_seconds_in_order() -> None:
    with pytest.raises(InputError, match="whole"):
        ShiftCalendar.of([0.5], [10.0])
    with pytest.raises(InputError, match="order"):
        ShiftCalendar.of([100, 50], [200, 150])
    with pytest.raises(InputError, match="end after"):
        ShiftCalendar.of([100], [100])


def test_projection_runs_to_the_end_of_the_schedules_shift(
    norms: Norms, alert_norms: AlertNorms
) -> None:
    """90 dB(A) from the start of the night shift of 24 October: the projected end of shift is
    06:30 CET, twelve real hours later, so the shift's LEX,8h is 90 + 10·lg(12/8) dB(A)."""

    def clock(t: float, zone: str) -> str:
        return local_time_text(datetime.fromtimestamp(t, UTC), zone)

    state = new_state(norms, alert_norms, time_text=clock)
    add_subject(state, SubjectSpec(enterprise="e", device="d"))
    slot = add_subject(state, PRESS_NOISE)
    set_calendars(state, {TWO_SHIFTS: _calendar()})
    start = _local(24, 19, 30)
    events = []
    for i in range(0, 1200, 5):
        t = start + i + np.arange(5.0)
        b = BatchBuilder()
        b.channel(slot, t, np.full(5, 90.0), 1.0, np.ones(5, bool), float(t[-1]))
        events += evaluate(state, b.build(), float(t[-1]))[1]
    assert state.shift_start[slot] == start
    assert state.shift_end[slot] == _local(25, 6, 30)
    (first, *_) = [e for e in events if e.kind is AlertKind.PROJECTED_EXPOSURE]
    assert first.transition == "opened"
    # (to a thousandth of a dB: the latest sample's second is both measured and still ahead)
    assert first.value == pytest.approx(90.0 + 10 * math.log10(12 / 8), abs=1e-3)
    assert "ends the shift at 06:30 CET (Europe/Berlin)" in first.message
    # The profile's limit L needs 28800·10^(L/10) of exposure, at 10^9 per second.
    limit = alert_norms.noise_lex8h_levels_db[-1]
    reached = start + 28800 * 10 ** ((limit - 90.0) / 10)
    assert first.time_left_s is not None
    assert first.at_s + first.time_left_s == pytest.approx(reached, abs=2.0)
    assert clock(first.at_s + first.time_left_s, ZONE) in first.message
    # Between the night shift's end and 07:00 a sample belongs to no shift: the night's sums
    # stay as they were and the projection clears.
    before = float(state.shift_sum[slot])
    gap = _local(25, 6, 40) + np.arange(600.0)
    for i in range(0, gap.size, 60):
        b = BatchBuilder()
        b.channel(slot, gap[i : i + 60], np.full(60, 95.0), 1.0, np.ones(60, bool), gap[i])
        events += evaluate(state, b.build(), float(gap[i + 59]))[1]
    assert state.shift_sum[slot] == before
    assert state.shift_start[slot] == start
    resolved = [
        e for e in events if e.kind is AlertKind.PROJECTED_EXPOSURE and e.transition == "resolved"
    ]
    assert resolved
    # The day shift's first sample starts that shift afresh, ending at 19:00 CET.
    b = BatchBuilder()
    t = np.array([_local(25, 7, 5)])
    b.channel(slot, t, np.array([80.0]), 1.0, np.ones(1, bool), float(t[0]))
    evaluate(state, b.build(), float(t[0]))
    assert (state.shift_start[slot], state.shift_end[slot]) == (_local(25, 7), _local(25, 19))
    assert state.shift_sum[slot] == pytest.approx(10**8.0)
    np.testing.assert_array_equal(
        shift_at(state, np.array([slot]), t), (np.array([_local(25, 7)]), [_local(25, 19)])
    )


def test_shifts_a_schedule_holds_are_those_overlapping_lists() -> None:
    starts, ends = bounds_s(TWO_SHIFTS, LO, HI)
    listed = overlapping(TWO_SHIFTS, LO, HI)
    assert starts == [int(s.start.timestamp()) for s in listed]
    assert ends == [int(s.end.timestamp()) for s in listed]
    assert all(e - s == 12 * 3600 for s, e in zip(starts, ends, strict=True))
    assert datetime.fromtimestamp(starts[0], UTC) <= LO + timedelta(hours=12)


def test_registry_refresh_keeps_the_shift_and_a_new_schedule_starts_afresh(
    norms: Norms, alert_norms: AlertNorms
) -> None:
    state = new_state(norms, alert_norms)
    add_subject(state, SubjectSpec(enterprise="e", device="d"))
    slot = add_subject(state, PRESS_NOISE)
    set_calendars(state, {TWO_SHIFTS: _calendar()})
    t = _local(27, 8) + np.arange(60.0)
    b = BatchBuilder()
    b.channel(slot, t, np.full(60, 90.0), 1.0, np.ones(60, bool), float(t[-1]))
    evaluate(state, b.build(), float(t[-1]))
    # The same schedule read again from the registry (an equal value): nothing changes.
    again = Schedule.of([time(19, 30), time(7, 0)], 12 * 3600, ZONE)
    add_subject(state, replace(PRESS_NOISE, schedule=again))
    assert state.shift_w[slot] == 60.0
    assert state.shift_start[slot] == _local(27, 7)
    # The workplace moved to one 8-h shift from 08:00: the old shift is not one of it.
    moved = Schedule.of([time(8, 0)], 8 * 3600, ZONE)
    add_subject(state, replace(PRESS_NOISE, schedule=moved))
    assert state.shift_w[slot] == 0.0
    set_calendars(state, {moved: _calendar(moved)})
    np.testing.assert_array_equal(
        shift_at(state, np.array([slot]), t[:1]), ([_local(27, 8)], [_local(27, 16)])
    )


def test_a_start_time_the_spring_change_skips_still_gives_a_calendar_in_time_order() -> None:
    """On 29 March 2026 Berlin's clocks jump from 02:00 to 03:00: a 02:30 start does not exist
    and falls (as the schedule module places it) before that morning's 03:15 start."""
    schedule = Schedule.of([time(2, 30), time(3, 15)], 3600, ZONE)
    lo, hi = datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)
    starts, ends = bounds_s(schedule, lo, hi)
    assert starts == sorted(int(s.start.timestamp()) for s in overlapping(schedule, lo, hi))
    cal = Calendars()
    cal.update({schedule: ShiftCalendar.of(starts, ends)})
    # 03:20 is in the 03:15 shift; "02:30" begins only at 03:30 that day.
    t = np.array([_local_march(29, 3, 20)])
    assert cal.find(np.array([0]), t)[0][0] == _local_march(29, 3, 15)


def _local_march(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 3, day, hour, minute, tzinfo=ZoneInfo(ZONE)).timestamp()
