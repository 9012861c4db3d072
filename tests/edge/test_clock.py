"""The agent's clocks: UTC that never runs backwards within a run, and simulated time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge.clock import AnchoredClock, ScaledClock

SECOND = 1_000_000_000


class FakeTime:
    def __init__(self) -> None:
        self.wall = 1_795_000_000 * SECOND
        self.mono = 5 * SECOND

    def advance(self, seconds: float, *, wall_extra: float = 0.0) -> None:
        self.mono += int(seconds * SECOND)
        self.wall += int((seconds + wall_extra) * SECOND)


def clock_on(fake: FakeTime) -> AnchoredClock:
    return AnchoredClock(wall_ns=lambda: fake.wall, monotonic_ns=lambda: fake.mono)


def test_anchored_clock_is_utc_and_follows_the_monotonic_clock() -> None:
    fake = FakeTime()
    clock = clock_on(fake)
    first = clock()
    assert first.tzinfo is UTC
    assert first == datetime.fromtimestamp(1_795_000_000, UTC)
    fake.advance(2.5, wall_extra=-0.3)  # the system clock is slewed back a little: ignored
    assert clock() - first == timedelta(seconds=2.5)
    assert clock.steps == 0


def test_anchored_clock_follows_a_step_of_the_system_clock_and_counts_it() -> None:
    fake = FakeTime()
    clock = clock_on(fake)
    fake.advance(1.0, wall_extra=3600.0)  # NTP sets the time after boot
    assert clock() == datetime.fromtimestamp(1_795_000_000 + 3601, UTC)
    assert clock.steps == 1
    assert clock.last_step_s == pytest.approx(3600.0)


def test_scaled_clock_runs_faster_from_its_origin() -> None:
    now = [100.0]
    origin = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    clock = ScaledClock(origin, 60.0, monotonic=lambda: now[0])
    assert clock() == origin
    now[0] += 2.0
    assert clock() == origin + timedelta(minutes=2)
    with pytest.raises(ValueError, match="positive"):
        ScaledClock(origin, 0.0)
    with pytest.raises(ValueError, match="timezone-aware"):
        ScaledClock(datetime(2026, 1, 1), 1.0)
