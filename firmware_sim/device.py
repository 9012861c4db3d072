"""A simulated multi-instrument device implementing the edge ``Driver`` interface.

Samples sit on an absolute grid: sample ``k`` is taken at ``k · period_s`` seconds after the
Unix epoch (UTC), and its value depends on the seed, the device, the instrument and ``k``
only. So the same seed gives the same readings however the driver is polled (every second,
once a minute, or a whole day at once), wherever a run starts, and across restarts:
``resume(after)`` continues exactly where an earlier run stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from firmware_sim.faults import SampleFault, apply_faults
from firmware_sim.instruments import (
    DustMonitor,
    GasSensor,
    HandArmVibration,
    Instrument,
    Sampler,
    SoundLevelMeter,
    WholeBodyVibration,
)
from firmware_sim.rng import Rng
from firmware_sim.schedule import ALWAYS, WorkplaceSchedule
from vocabulary.driver import ChannelSpec, SampleBlock

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_s(t: datetime) -> float:
    if t.tzinfo is None:
        raise ValueError("times must be timezone-aware (UTC)")
    return (t - _EPOCH).total_seconds()


class SimulatedDevice:
    """Instruments of one device, read on the absolute sample grid from ``start`` on."""

    def __init__(
        self,
        code: str,
        instruments: Sequence[Instrument],
        *,
        start: datetime,
        seed: int = 0,
        schedule: WorkplaceSchedule = ALWAYS,
        faults: Sequence[SampleFault] = (),
        period_s: float = 1.0,
        memory_s: float = 0.0,
    ) -> None:
        """``memory_s``: how far before ``start`` ``resume()`` may go back (an instrument's
        data-logger memory); 0 means never before ``start``."""
        if period_s <= 0:
            raise ValueError(f"period_s must be positive, got {period_s}")
        self.code = code
        self.instruments = tuple(instruments)
        self.seed = seed
        self.schedule = schedule
        self.faults = tuple(faults)
        self.period_s = period_s
        self.memory_s = memory_s
        self._samplers: list[Sampler] = []
        self._specs: list[ChannelSpec] = []
        keys: set[str] = set()
        shifts = None if schedule.always_on else schedule.shifts
        for i, instrument in enumerate(self.instruments):
            rng = Rng(seed, code, i, instrument.kind)
            self._samplers.append(instrument.sampler(rng, shifts))
            for channel in instrument.channels():
                if channel.key in keys:
                    raise ValueError(f"device {code}: two channels are called {channel.key!r}")
                keys.add(channel.key)
                self._specs.append(
                    ChannelSpec(
                        sensor=f"{code}.{channel.key}",
                        quantity=channel.quantity,
                        unit=channel.unit,
                        substance=channel.substance,
                        period_s=period_s,
                    )
                )
        self._keys = [spec.sensor.removeprefix(f"{code}.") for spec in self._specs]
        unknown = {c for f in self.faults for c in f.channels} - keys
        if unknown:
            raise ValueError(f"device {code}: faults name unknown channels {sorted(unknown)}")
        self._fault_rngs = [Rng(seed, code, "fault", n) for n in range(len(self.faults))]
        self._start_k = math.ceil(_epoch_s(start) / period_s - 1e-9)
        self._next_k = self._start_k

    # ------------------------------------------------------------------ Driver

    @property
    def device(self) -> str:
        return self.code

    def channels(self) -> Sequence[ChannelSpec]:
        return list(self._specs)

    @property
    def position(self) -> datetime:
        """Time of the next sample ``read`` will return."""
        return _EPOCH + timedelta(seconds=self._next_k * self.period_s)

    def resume(self, after: datetime) -> None:
        k = math.ceil(_epoch_s(after) / self.period_s - 1e-9)
        earliest = self._start_k - math.floor(self.memory_s / self.period_s)
        self._next_k = max(k, earliest)

    def values_at(self, k: int) -> list[float]:
        """Fault-free values of every channel at sample ``k``."""
        t = k * self.period_s
        activity = self.schedule.activity(t)
        values: list[float] = []
        for sampler in self._samplers:
            values.extend(sampler(k, t, activity))
        return values

    def read(self, until: datetime) -> list[SampleBlock]:
        end = math.ceil(_epoch_s(until) / self.period_s - 1e-9)
        if end <= self._next_k:
            return []
        n = len(self._specs)
        times: list[list[float]] = [[] for _ in range(n)]
        values: list[list[float]] = [[] for _ in range(n)]
        shifts = None if self.schedule.always_on else self.schedule.shifts
        raw_cache: dict[int, list[float]] = {}
        faults = list(zip(self.faults, self._fault_rngs, strict=True))

        def raw_at(j: int) -> Callable[[int], float]:
            def value(i: int) -> float:
                if i not in raw_cache:
                    raw_cache[i] = self.values_at(i)
                return raw_cache[i][j]

            return value

        raw_of = [raw_at(j) for j in range(n)]
        for k in range(self._next_k, end):
            t = k * self.period_s
            sample = self.values_at(k)
            for j in range(n):
                if not faults:
                    times[j].append(t)
                    values[j].append(sample[j])
                    continue
                time_s, value = apply_faults(
                    faults,
                    self._keys[j],
                    k,
                    t,
                    sample[j],
                    shifts=shifts,
                    period_s=self.period_s,
                    raw_at=raw_of[j],
                )
                if value is not None:
                    times[j].append(time_s)
                    values[j].append(value)
        self._next_k = end
        blocks: list[SampleBlock] = []
        for spec, ts, vs in zip(self._specs, times, values, strict=True):
            blocks.extend(_runs(spec, ts, vs, self.period_s))
        return blocks


def _runs(
    spec: ChannelSpec, times: list[float], values: list[float], period_s: float
) -> list[SampleBlock]:
    """Regularly spaced stretches of samples as blocks; a gap or a jump starts a new block."""
    blocks: list[SampleBlock] = []
    start = 0
    for i in range(1, len(times) + 1):
        if i == len(times) or abs(times[i] - times[i - 1] - period_s) > 1e-6:
            blocks.append(
                SampleBlock(
                    spec=spec,
                    t0=_EPOCH + timedelta(seconds=times[start]),
                    values=tuple(values[start:i]),
                )
            )
            start = i
    return blocks


def standard_device(
    code: str, start: datetime, seed: int = 0, *, memory_s: float = 0.0
) -> SimulatedDevice:
    """The demo device: noise (LAeq, LCpeak), CO, H2S, silica dust, hand-arm and whole-body
    vibration at 1 Hz, working around the clock."""
    return SimulatedDevice(
        code,
        [
            SoundLevelMeter(background_db=70.0, machine_db=92.0, impulse_rate_per_h=4.0),
            GasSensor(
                substance="CO",
                unit="mg/m3",
                baseline=5.0,
                noise=0.3,
                resolution=0.1,
                leak_rate_per_h=0.5,
                leak_peak=15.0,
            ),
            GasSensor(
                substance="H2S",
                unit="mg/m3",
                baseline=0.8,
                noise=0.1,
                resolution=0.1,
                leak_rate_per_h=0.3,
                leak_peak=6.0,
            ),
            DustMonitor(
                substance="silica_10_70", background=0.2, work_gm=1.2, burst_rate_per_h=1.0
            ),
            HandArmVibration(a_hv=6.0, trigger_share=0.3),
            WholeBodyVibration(z=0.7, x=0.3, y=0.3, axes=("z",)),
        ],
        start=start,
        seed=seed,
        memory_s=memory_s,
    )
