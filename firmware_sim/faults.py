"""Fault injection, in the two places faults happen in the field.

- **Instrument faults** (``SampleFault``) change what the device measures or when it says it
  measured: a stuck sensor (flatline), missing samples (dropout), single wild values (spikes),
  error codes or overflow (out_of_range), a zero that wanders (drift), a clock that is off
  (clock_skew). ``SimulatedDevice`` applies them to each channel's samples, so they travel in
  well-formed messages, as they would from a real faulty instrument.
- **Transmission faults** (``MessageFaults``) change what goes over the wire: the same message
  sent twice (duplicate) or a corrupted payload (malformed). They plug into the agent's
  ``payload_filter`` seam between the outbox and the broker, after the outbox has stored the
  good message.

Every decision is a pure function of the seed and the sample index or sequence number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

from firmware_sim.rng import Rng
from firmware_sim.schedule import Shifts, Window

SampleFaultKind = Literal["flatline", "dropout", "spikes", "out_of_range", "drift", "clock_skew"]
MessageFaultKind = Literal["duplicate", "malformed"]
SAMPLE_FAULT_KINDS: tuple[str, ...] = (
    "flatline",
    "dropout",
    "spikes",
    "out_of_range",
    "drift",
    "clock_skew",
)
MESSAGE_FAULT_KINDS: tuple[str, ...] = ("duplicate", "malformed")


@dataclass(frozen=True, slots=True)
class When:
    """When a fault is active: within ``window`` of every shift, between absolute
    ``since``/``until`` times, or always (neither given)."""

    window: Window | None = None
    since: datetime | None = None
    until: datetime | None = None

    def elapsed_s(self, t_s: float, shifts: Shifts | None) -> float | None:
        """Seconds since the fault became active, or None when it is not active at ``t_s``."""
        if self.since is not None or self.until is not None:
            if self.since is not None and t_s < self.since.timestamp():
                return None
            if self.until is not None and t_s >= self.until.timestamp():
                return None
            return t_s - self.since.timestamp() if self.since is not None else t_s
        if self.window is None:
            return t_s
        rel = shifts.shift_rel(t_s) if shifts is not None else None
        if rel is None or not self.window.contains(rel):
            return None
        return rel - self.window.start_s


ALWAYS = When()


@dataclass(frozen=True, slots=True)
class SampleFault:
    """One instrument fault on some channels (keys; empty: every channel of the device).

    Parameters by kind: ``spikes``: ``rate_per_h`` and ``factor`` (a spike multiplies the
    reading, or adds ``factor`` to a zero reading); ``out_of_range``: ``value`` (an error code
    such as −999, a number past full scale, or NaN); ``drift``: ``per_hour`` added per hour
    since the fault began; ``clock_skew``: ``offset_s`` added to the sample times.
    """

    kind: SampleFaultKind
    channels: frozenset[str] = frozenset()
    when: When = ALWAYS
    rate_per_h: float = 6.0
    factor: float = 10.0
    value: float = -999.0
    per_hour: float = 1.0
    offset_s: float = 0.0

    KINDS: ClassVar[tuple[str, ...]] = SAMPLE_FAULT_KINDS

    def __post_init__(self) -> None:
        if self.kind not in SAMPLE_FAULT_KINDS:
            raise ValueError(f"unknown instrument fault {self.kind!r}; use {SAMPLE_FAULT_KINDS}")

    def applies_to(self, key: str) -> bool:
        return not self.channels or key in self.channels


def apply_faults(
    faults: Sequence[tuple[SampleFault, Rng]],
    key: str,
    k: int,
    t_s: float,
    value: float,
    *,
    shifts: Shifts | None,
    period_s: float,
    raw_at: Callable[[int], float],
) -> tuple[float, float | None]:
    """Sample ``k`` of channel ``key`` as the faulty instrument reports it: (time in epoch
    seconds, value or None when the sample is missing)."""
    time_s = t_s
    out: float | None = value
    for fault, rng in faults:
        if not fault.applies_to(key):
            continue
        since = fault.when.elapsed_s(t_s, shifts)
        if since is None:
            continue
        if fault.kind == "clock_skew":
            time_s += fault.offset_s
        elif out is not None:
            out = _faulty_value(fault, rng, k, since, out, period_s, raw_at)
    return time_s, out


def _faulty_value(
    fault: SampleFault,
    rng: Rng,
    k: int,
    since: float,
    value: float,
    period_s: float,
    raw_at: Callable[[int], float],
) -> float | None:
    """The value of sample ``k`` under ``fault``, active for ``since`` seconds (None: missing)."""
    match fault.kind:
        case "dropout":
            return None
        case "flatline":
            # Stuck at what it read when the fault began.
            return raw_at(k - round(since / period_s))
        case "out_of_range":
            return fault.value
        case "spikes":
            if rng.uniform(k) < fault.rate_per_h * period_s / 3600.0:
                return value * fault.factor if value != 0 else fault.factor
            return value
        case "drift":
            return round(value + fault.per_hour * since / 3600.0, 6)
    return value


@dataclass(frozen=True, slots=True)
class MessageFaults:
    """Transmission faults as the agent's payload filter: ``duplicate_share`` of messages are
    published twice, ``malformed_share`` are replaced by a corrupted payload (ingest must
    quarantine it as malformed JSON; its readings are lost, as with a real garbled send)."""

    seed: int = 0
    duplicate_share: float = 0.0
    malformed_share: float = 0.0

    def __post_init__(self) -> None:
        for name in ("duplicate_share", "malformed_share"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {share}")
        if self.duplicate_share + self.malformed_share > 1.0:
            raise ValueError("duplicate_share + malformed_share must not exceed 1")

    def __bool__(self) -> bool:
        return self.duplicate_share > 0 or self.malformed_share > 0

    def __call__(self, seq: int, payload: bytes) -> list[bytes]:
        u = Rng(self.seed, "message-faults").uniform(seq)
        if u < self.malformed_share:
            return [corrupt(payload)]
        if u < self.malformed_share + self.duplicate_share:
            return [payload, payload]
        return [payload]


def corrupt(payload: bytes) -> bytes:
    """A payload cut short and garbled, the way a serial glitch or a full buffer leaves it."""
    cut = max(1, math.floor(len(payload) * 0.6))
    return payload[:cut] + b"\x00\xff}{"
