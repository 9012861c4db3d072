"""Where the agent's timestamps come from.

``AnchoredClock`` reads the system clock once (UTC) and then advances with the monotonic clock,
so that timestamps within a run never go backwards or jump when the system time is slewed. If
the system clock moves away by more than ``max_step_s`` (an NTP step, or a device without a
real-time clock setting its time after boot) the clock re-anchors to it and counts the step:
the system clock is the only source of UTC the device has.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class AnchoredClock:
    def __init__(
        self,
        *,
        max_step_s: float = 1.0,
        wall_ns: Callable[[], int] = time.time_ns,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.max_step_s = max_step_s
        self._wall_ns = wall_ns
        self._monotonic_ns = monotonic_ns
        self.steps = 0
        self.last_step_s = 0.0
        self._anchor()

    def _anchor(self) -> None:
        self._anchor_wall = self._wall_ns()
        self._anchor_mono = self._monotonic_ns()

    def __call__(self) -> datetime:
        ours = self._anchor_wall + (self._monotonic_ns() - self._anchor_mono)
        step_ns = self._wall_ns() - ours
        if abs(step_ns) > self.max_step_s * 1e9:
            self.steps += 1
            self.last_step_s = step_ns / 1e9
            log.warning("system clock stepped by %+.3f s; re-anchoring", self.last_step_s)
            self._anchor()
            ours = self._anchor_wall
        return _EPOCH + timedelta(microseconds=ours // 1000)


class ScaledClock:
    """Simulated time: starts at ``origin`` and runs ``speed`` times faster than real time."""

    def __init__(
        self,
        origin: datetime,
        speed: float = 1.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if origin.tzinfo is None:
            raise ValueError("origin must be timezone-aware")
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.origin = origin.astimezone(UTC)
        self.speed = speed
        self._monotonic = monotonic
        self._start = monotonic()

    def __call__(self) -> datetime:
        return self.origin + timedelta(seconds=(self._monotonic() - self._start) * self.speed)
