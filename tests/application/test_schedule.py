"""Shift windows: local start times in the enterprise's zone, several shifts a day."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from application.schedule import NoSuchShiftError, Schedule, last_finished, shift, shifts_between

ALMATY = Schedule.of([time(8, 0)], 28800, "Asia/Almaty")


def test_default_shift_is_0800_local() -> None:
    s = shift(ALMATY, date(2026, 11, 10), 1)
    assert s.start == datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
    assert s.end == datetime(2026, 11, 10, 11, 0, tzinfo=UTC)
    assert s.duration_s == 28800


def test_night_shift_crosses_midnight() -> None:
    two = Schedule.of([time(20, 0), time(8, 0)], 43200, "Asia/Almaty")
    day, night = shifts_between(two, date(2026, 11, 10), date(2026, 11, 10))
    assert (day.number, night.number) == (1, 2), "numbered by start time"
    assert night.start == datetime(2026, 11, 10, 15, 0, tzinfo=UTC)
    assert night.end == datetime(2026, 11, 11, 3, 0, tzinfo=UTC)


def test_missing_shift_number_says_how_many_exist() -> None:
    with pytest.raises(NoSuchShiftError, match="1 shift"):
        shift(ALMATY, date(2026, 11, 10), 2)


def test_last_finished_shift() -> None:
    before_end = datetime(2026, 11, 10, 10, 59, tzinfo=UTC)
    after_end = datetime(2026, 11, 10, 11, 0, tzinfo=UTC)
    assert last_finished(ALMATY, before_end).day == date(2026, 11, 9)
    assert last_finished(ALMATY, after_end).day == date(2026, 11, 10)


def test_other_zone() -> None:
    berlin = Schedule.of([time(8, 0)], 28800, "Europe/Berlin")
    assert shift(berlin, date(2026, 7, 1), 1).start == datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
