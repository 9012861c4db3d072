"""The alert engine's path for the messages devices send: many clean readings messages at once.

At one small message a second per device the engine's cost was per message: a pydantic decode,
ingest's per-channel checks and a few numpy arrays for each of eight numbers, about 0.4 ms, so a
thousand devices kept it busy and it fell seconds behind. This path hands a whole batch to
ingest's own fast path (``ingest.fast_path``: orjson, plain comparisons, numpy columns over the
batch) and turns what passes whole into detector samples as columns, per norms profile.

It decides nothing on its own: a message it cannot pass whole (another kind of topic, an unknown
or foreign device, a bad sample, a sensor the engine has no slot for yet) goes back to
:meth:`~ingest.alerting.service.AlertService.handle`, the one-message path, which treats it as
before. ``tests/ingest/test_alert_fast_readings.py`` holds the two paths to the same samples.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from analytics.alerts import BatchBuilder, DetectorState, admit
from ingest.alerting.devices import EngineDevice
from ingest.fast_path import FastPath, Passed
from ingest.validate import TimeWindow
from store.registry import DeviceInfo
from store.settings import DEFAULT_MAX_PAST_S


@dataclass(slots=True)
class _Columns:
    """One profile's passed messages, gathered before they become columns."""

    slots: list[int] = field(default_factory=list)
    times_us: list[npt.NDArray[np.int64]] = field(default_factory=list)
    values: list[npt.NDArray[np.float64]] = field(default_factory=list)
    periods: list[npt.NDArray[np.float64]] = field(default_factory=list)
    starts: list[npt.NDArray[np.intp]] = field(default_factory=list)
    rows: int = 0


@dataclass(frozen=True, slots=True)
class Taken:
    """What the fast path made of a batch."""

    #: Indices of the messages left to the one-message path, in order.
    general: list[int]
    #: Messages whose samples were added.
    fed: int
    samples: int
    #: Messages the (device, seq) dedupe dropped, by its verdict ("duplicate", "old").
    dropped: dict[str, int]


def _info(device: EngineDevice) -> DeviceInfo:
    return device.info


class FastReadings:
    def __init__(self, max_payload_bytes: int, max_future_s: float) -> None:
        self._fast = FastPath(max_payload_bytes)
        self._max_future_s = max_future_s

    async def take(
        self,
        messages: Sequence[tuple[str, bytes]],
        received: float,
        *,
        find: Callable[[str], Awaitable[EngineDevice | None]],
        cached: Callable[[str], EngineDevice | None],
        owns: Callable[[str], bool],
        states: dict[str, DetectorState],
        pending: dict[str, BatchBuilder],
    ) -> Taken:
        """Add the samples of every message that passes whole to ``pending`` (by profile) and
        return the others' indices. Nothing is changed before every check has been made, so a
        failure here leaves the whole batch to the one-message path."""
        fast = self._fast

        async def lookup(codes: Collection[str]) -> dict[str, EngineDevice | None]:
            # Most are known already: no coroutine for those (``find`` looks up the rest).
            return {code: cached(code) or await find(code) for code in codes}

        screened = await fast.screen(
            messages,
            lookup=lookup,
            info=_info,
            window=lambda: TimeWindow.around(
                datetime.fromtimestamp(received, UTC),
                max_past_s=DEFAULT_MAX_PAST_S,
                max_future_s=self._max_future_s,
            ),
            owns=owns,
        )
        general = screened.general
        # A device's messages are de-duplicated in their order of arrival: after one of its
        # messages goes the one-message way, its later ones follow it there.
        first_general: dict[str, int] = {}
        for index in general:
            where = fast.device_of(messages[index][0])
            if where is not None:
                first_general.setdefault(where, index)
        mapped = []
        for p in screened.passed:
            if p.index > first_general.get(p.device.code, p.index):
                general.append(p.index)
                continue
            device = screened.devices[p.device.code]
            assert device is not None  # it passed: its device was found
            slots = [device.sensor_slots.get(s, -1) for s in p.block.sensor_ids.tolist()]
            mapped.append((p, device, slots))
        general.sort()
        return self._feed(mapped, received, states, pending, general)

    @staticmethod
    def _feed(
        mapped: list[tuple[Passed, EngineDevice, list[int]]],
        received: float,
        states: dict[str, DetectorState],
        pending: dict[str, BatchBuilder],
        general: list[int],
    ) -> Taken:
        by_profile: dict[str, _Columns] = {}
        dropped: dict[str, int] = {}
        fed = 0
        for p, device, slots in mapped:
            verdict = admit(states[device.profile], device.slot, p.seq)
            if verdict != "new":
                dropped[verdict] = dropped.get(verdict, 0) + 1
                continue
            fed += 1
            columns = by_profile.get(device.profile)
            if columns is None:
                columns = by_profile[device.profile] = _Columns()
            columns.slots.extend(slots)
            columns.times_us.append(p.block.times_us)
            columns.values.append(p.block.values)
            columns.periods.append(p.period_s())
            columns.starts.append(p.channel_starts() + columns.rows)
            columns.rows += len(slots)
        samples = 0
        for profile, columns in by_profile.items():
            slot = np.array(columns.slots, dtype=np.intp)
            first = np.zeros(slot.size, dtype=bool)
            first[np.concatenate(columns.starts)] = True
            # A sensor without a slot yet (the registry refresh has not brought it) is left
            # out whole, as the one-message path leaves it: its channels' rows go together.
            keep = slot >= 0
            if not keep.all():
                slot, first = slot[keep], first[keep]
            time_s = np.concatenate(columns.times_us)[keep] / 1e6
            pending.setdefault(profile, BatchBuilder()).columns(
                slot,
                time_s,
                np.concatenate(columns.values)[keep],
                np.concatenate(columns.periods)[keep],
                np.flatnonzero(first),
                received,
            )
            samples += int(slot.size)
        return Taken(general=general, fed=fed, samples=samples, dropped=dropped)
