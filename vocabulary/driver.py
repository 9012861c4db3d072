"""The interface between the agent and an instrument.

A driver knows its channels and hands over every sample taken before a given time, once. The
simulator implements it; a serial or Modbus instrument would too (see ``docs/edge.md``): its
``read(until)`` drains what the instrument buffered, timestamped with the agent's UTC clock or
the instrument's own.

A driver that can re-read the past (an instrument with a data logger, or the simulator) also
implements ``resume(after)``: the agent stores, with every message, the time up to which it has
read, and after a restart asks the driver to continue from there, so a killed agent neither
loses nor repeats samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from vocabulary.protocol import Quantity


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    sensor: str
    quantity: Quantity
    unit: str
    substance: str | None = None
    period_s: float = 1.0


@dataclass(frozen=True, slots=True)
class SampleBlock:
    """Samples of one channel: at ``t0 + i·period_s``, or at ``t0 + offsets_s[i]`` if given."""

    spec: ChannelSpec
    t0: datetime
    values: tuple[float, ...]
    offsets_s: tuple[float, ...] | None = None


class Driver(Protocol):
    @property
    def device(self) -> str: ...

    def channels(self) -> Sequence[ChannelSpec]: ...

    def read(self, until: datetime) -> list[SampleBlock]:
        """Samples taken before ``until`` that were not returned yet (empty blocks omitted)."""
        ...


@runtime_checkable
class Resumable(Protocol):
    def resume(self, after: datetime) -> None:
        """Continue with the first sample at or after ``after`` (samples before it have been
        handed over in an earlier run)."""
        ...
