"""Simulated instruments: what each measures and how its readings behave.

An instrument is a frozen set of parameters; ``sampler(rng, shifts)`` binds it to random draws
and returns a function of (absolute sample index, epoch seconds, workplace activity) that gives
one value per channel. Every random draw is addressed by the sample index (or by a cycle, slot
or hour derived from the time), so a reading depends on the seed and the time alone.

Parameters are in the channel's unit (dB, ppm or mg/m³, m/s²); durations in seconds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from firmware_sim.rng import Rng
from firmware_sim.schedule import DAY_S, Activity, Shifts
from vocabulary.protocol import Quantity

Sampler = Callable[[int, float, Activity], tuple[float, ...]]

# Molar masses (g/mol) for ppm ↔ mg/m³ at 20 °C, 101.3 kPa (molar volume 24.04 L/mol).
MOLAR_MASS_G_MOL = {"CO": 28.01, "H2S": 34.08, "NO2": 46.01, "SO2": 64.07, "NH3": 17.03}
MOLAR_VOLUME_L_MOL = 24.04


@dataclass(frozen=True, slots=True)
class ChannelDef:
    key: str  # the sensor code is "{device}.{key}"
    quantity: Quantity
    unit: str
    substance: str | None = None


class Instrument(Protocol):
    kind: ClassVar[str]

    def channels(self) -> tuple[ChannelDef, ...]: ...

    def sampler(self, rng: Rng, shifts: Shifts | None) -> Sampler: ...


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


# --------------------------------------------------------------------------- releases


@dataclass(frozen=True, slots=True)
class Release:
    """A concentration that rises linearly to ``peak`` over ``rise_s`` and then decays
    exponentially with time constant ``decay_s`` (a leak, or blasting fumes being diluted)."""

    at_s: float  # seconds after the start of every shift
    peak: float
    rise_s: float = 120.0
    decay_s: float = 600.0

    def horizon_s(self) -> float:
        return self.rise_s + 8.0 * self.decay_s

    def level(self, dt_s: float) -> float:
        if dt_s < 0 or dt_s > self.horizon_s():
            return 0.0
        if dt_s < self.rise_s:
            return self.peak * dt_s / self.rise_s
        return self.peak * math.exp(-(dt_s - self.rise_s) / self.decay_s)


def _scheduled(releases: Sequence[Release], shifts: Shifts | None, t_s: float) -> float:
    """Sum of the scheduled releases of recent shifts that still contribute at ``t_s``."""
    if not releases or shifts is None:
        return 0.0
    offset = shifts.tz.utcoffset(None)
    offset_s = offset.total_seconds() if offset is not None else 0.0
    midnight = t_s - (t_s + offset_s) % DAY_S
    total = 0.0
    for day in (-1, 0):
        for start in shifts.starts_s:
            shift_start = midnight + day * DAY_S + start
            for release in releases:
                total += release.level(t_s - (shift_start + release.at_s))
    return total


# --------------------------------------------------------------------------- noise


@dataclass(frozen=True, slots=True)
class SoundLevelMeter:
    """1 s LAeq, LCpeak (and optionally LAmax): machines that run in cycles over a background,
    and impulsive events (hammering, rock falls, air blasts) that drive the C-weighted peak.

    Each machine cycle of ``cycle_s`` runs for a share around ``duty`` × the workplace activity.
    An impulse adds its energy to the second's LAeq (a few milliseconds at the peak level,
    about ``peak − 30 dB`` over one second once A-weighted).
    """

    kind: ClassVar[str] = "noise"
    background_db: float = 72.0
    machine_db: float = 92.0
    cycle_s: float = 300.0
    duty: float = 0.8
    jitter_db: float = 1.5
    crest_db: float = 14.0  # LCpeak above LAeq without impulses
    impulse_rate_per_h: float = 0.0
    impulse_peak_db: float = 130.0
    impulse_spread_db: float = 4.0
    lamax: bool = False
    key: str = "noise"

    def channels(self) -> tuple[ChannelDef, ...]:
        defs = [
            ChannelDef(self.key, Quantity.NOISE_LAEQ, "dB(A)"),
            ChannelDef(f"{self.key}_lcpeak", Quantity.NOISE_LCPEAK, "dB(C)"),
        ]
        if self.lamax:
            defs.append(ChannelDef(f"{self.key}_lamax", Quantity.NOISE_LAMAX, "dB(A)"))
        return tuple(defs)

    def sampler(self, rng: Rng, shifts: Shifts | None) -> Sampler:
        fast = rng.stream("fast")
        impulses = rng.stream("impulse")
        crest = rng.stream("crest")
        cycles = rng.child("cycles")
        slow = rng.child("slow").smoother(20.0)
        background = 10.0 ** (self.background_db / 10.0)
        machine = 10.0 ** (self.machine_db / 10.0)
        impulse_p = self.impulse_rate_per_h / 3600.0

        @functools.lru_cache(maxsize=4)
        def cycle_jitter(cycle: int) -> float:
            return 0.1 * cycles.normal(cycle)

        def sample(k: int, t: float, act: Activity) -> tuple[float, ...]:
            energy = background
            if act.level > 0:
                cycle = math.floor(t / self.cycle_s)
                share = _clamp(self.duty * act.level + cycle_jitter(cycle), 0.0, 1.0)
                if t / self.cycle_s - cycle < share:
                    energy += machine
            laeq = 10.0 * math.log10(energy) + self.jitter_db * (
                0.6 * fast.normal(k) + 0.8 * slow(t)
            )
            if act.level > 0 and impulses.uniform(k) < impulse_p * act.level:
                peak = self.impulse_peak_db + self.impulse_spread_db * crest.normal(k)
                laeq = 10.0 * math.log10(10.0 ** (laeq / 10.0) + 10.0 ** ((peak - 30.0) / 10.0))
                lcpeak = max(peak, laeq + self.crest_db)
            else:
                lcpeak = laeq + self.crest_db + 1.5 * crest.normal(k)
            values = [round(laeq, 1), round(lcpeak, 1)]
            if self.lamax:
                values.append(round(laeq + 2.0 + abs(1.5 * fast.normal(k + 1)), 1))
            return tuple(values)

        return sample


# --------------------------------------------------------------------------- gas


@dataclass(frozen=True, slots=True)
class GasSensor:
    """One gas cell: electrochemical (CO, H2S, NO2, SO2 …) in ppm or mg/m³, oxygen or methane
    in % vol, a combustible in % LEL.

    Reading = baseline + emission while work goes on + slow wander + leaks (random ones at
    ``leak_rate_per_h``, and ``releases`` at fixed times of every shift) + zero drift that
    grows between calibrations + noise; clipped to the cell's range and rounded to its
    resolution, as a real detector reports. A release with a negative peak is a dip (oxygen
    displaced by another gas).
    """

    kind: ClassVar[str] = "gas"
    substance: str = "CO"
    unit: str = "ppm"
    baseline: float = 1.0
    activity_gain: float = 0.0
    noise: float = 0.2
    wander: float = 0.3
    wander_period_s: float = 1800.0
    drift_per_day: float = 0.0
    calibration_interval_s: float = 30 * 86_400.0
    leak_rate_per_h: float = 0.0
    leak_peak: float = 10.0
    leak_rise_s: float = 120.0
    leak_decay_s: float = 600.0
    releases: tuple[Release, ...] = ()
    resolution: float = 0.1
    full_scale: float = 500.0
    key: str = ""

    def __post_init__(self) -> None:
        if self.unit not in ("ppm", "mg/m3", "%vol", "%LEL"):
            raise ValueError(f"gas unit must be ppm, mg/m3, %vol or %LEL, not {self.unit!r}")

    def channels(self) -> tuple[ChannelDef, ...]:
        key = self.key or self.substance.lower()
        return (ChannelDef(key, Quantity.GAS, self.unit, self.substance),)

    def sampler(self, rng: Rng, shifts: Shifts | None) -> Sampler:
        fast = rng.stream("fast")
        leaks = rng.child("leaks")
        slow = rng.child("slow").smoother(self.wander_period_s)
        window_s = 3600.0
        leak_horizon = self.leak_rise_s + 8.0 * self.leak_decay_s
        digits = max(0, -math.floor(math.log10(self.resolution)))

        @functools.lru_cache(maxsize=64)
        def leak_in(w: int) -> Release | None:
            if leaks.uniform(w, 0) >= self.leak_rate_per_h * window_s / 3600.0:
                return None
            start = (w + leaks.uniform(w, 1)) * window_s
            peak = self.leak_peak * math.exp(0.4 * leaks.normal(w, 2))
            return Release(start, peak, self.leak_rise_s, self.leak_decay_s)

        def random_leaks(t: float) -> float:
            if self.leak_rate_per_h <= 0:
                return 0.0
            total = 0.0
            for w in range(math.floor((t - leak_horizon) / window_s), math.floor(t / window_s) + 1):
                leak = leak_in(w)
                if leak is not None:
                    total += leak.level(t - leak.at_s)
            return total

        def sample(k: int, t: float, act: Activity) -> tuple[float, ...]:
            c = self.baseline + self.activity_gain * act.level
            c += self.wander * slow(t)
            c += self.drift_per_day * (t % self.calibration_interval_s) / 86_400.0
            c += random_leaks(t) + _scheduled(self.releases, shifts, t)
            c += self.noise * fast.normal(k)
            c = _clamp(c, 0.0, self.full_scale)
            return (round(round(c / self.resolution) * self.resolution, digits),)

        return sample


# --------------------------------------------------------------------------- dust


@dataclass(frozen=True, slots=True)
class DustMonitor:
    """Aerosol mass concentration (mg/m³), lognormal: a geometric mean that follows the work,
    slow swings (ventilation, moving sources) and second-to-second scatter sharing the
    log-variance of ``gsd``, and bursts (blasting, dumping, cleaning) ``burst_factor`` times
    higher for ``burst_s``."""

    kind: ClassVar[str] = "dust"
    substance: str = "silica_10_70"  # a dust id of the default norms profile
    background: float = 0.1
    work_gm: float = 1.0  # geometric mean at full activity, above background
    gsd: float = 1.8
    slow_share: float = 0.6
    burst_rate_per_h: float = 0.0
    burst_factor: float = 4.0
    burst_s: float = 180.0
    full_scale: float = 100.0  # optical monitors saturate (0–100 mg/m³ is a common range)
    key: str = "dust"

    def channels(self) -> tuple[ChannelDef, ...]:
        return (ChannelDef(self.key, Quantity.DUST, "mg/m3", self.substance),)

    def sampler(self, rng: Rng, shifts: Shifts | None) -> Sampler:
        fast = rng.stream("fast")
        bursts = rng.child("bursts")
        slow = rng.child("slow").smoother(120.0)
        sigma = math.log(self.gsd)
        slow_sd = sigma * math.sqrt(self.slow_share)
        fast_sd = sigma * math.sqrt(1.0 - self.slow_share)
        window_s = 900.0

        def burst(t: float, level: float) -> float:
            if self.burst_rate_per_h <= 0 or level <= 0:
                return 1.0
            w = math.floor(t / window_s)
            if bursts.uniform(w, 0) >= self.burst_rate_per_h * window_s / 3600.0:
                return 1.0
            start = (w + bursts.uniform(w, 1) * (1.0 - self.burst_s / window_s)) * window_s
            if not start <= t < start + self.burst_s:
                return 1.0
            # A burst builds up and settles rather than switching on and off.
            x = (t - start) / self.burst_s
            return 1.0 + (self.burst_factor - 1.0) * math.sin(math.pi * x)

        def sample(k: int, t: float, act: Activity) -> tuple[float, ...]:
            gm = self.background + self.work_gm * act.level
            log_dev = slow_sd * slow(t) + fast_sd * fast.normal(k)
            c = gm * math.exp(log_dev) * burst(t, act.level)
            return (round(min(c, self.full_scale), 3),)

        return sample


# --------------------------------------------------------------------------- vibration


@dataclass(frozen=True, slots=True)
class HandArmVibration:
    """Vibration total value a_hv (m/s²) of a hand-held tool, non-zero while the trigger is
    pulled. During the tool's tasks, the trigger is pulled in ``slot_s`` slots with probability
    ``trigger_share`` × activity; each slot has its own level (grip, bit wear, material)."""

    kind: ClassVar[str] = "hav"
    tool: str = "rock drill"
    a_hv: float = 9.0
    trigger_share: float = 0.35
    tasks: tuple[str, ...] = ()  # empty: any task
    slot_s: float = 20.0
    spread: float = 0.15
    key: str = "hav"

    def channels(self) -> tuple[ChannelDef, ...]:
        return (ChannelDef(self.key, Quantity.VIB_HAV, "m/s2"),)

    def sampler(self, rng: Rng, shifts: Shifts | None) -> Sampler:
        fast = rng.stream("fast")
        slots = rng.child("slots")

        @functools.lru_cache(maxsize=4)
        def slot_draws(slot: int) -> tuple[float, float]:
            return slots.uniform(slot, 0), math.exp(self.spread * slots.normal(slot, 1))

        def sample(k: int, t: float, act: Activity) -> tuple[float, ...]:
            if act.level <= 0 or act.task is None or (self.tasks and act.task not in self.tasks):
                return (0.0,)
            pulled, grip = slot_draws(math.floor(t / self.slot_s))
            if pulled >= self.trigger_share * act.level:
                return (0.0,)
            a = self.a_hv * grip
            return (round(max(0.0, a * (1.0 + 0.05 * fast.normal(k))), 2),)

        return sample


@dataclass(frozen=True, slots=True)
class WholeBodyVibration:
    """Frequency-weighted r.m.s. acceleration per axis (m/s²) at a vehicle seat: full levels
    while driving (the vehicle moves in ``slot_s`` slots with probability = activity), a tenth
    while idling on shift, almost nothing when parked."""

    kind: ClassVar[str] = "wbv"
    vehicle: str = "loader"
    x: float = 0.35
    y: float = 0.30
    z: float = 0.70
    tasks: tuple[str, ...] = ()
    slot_s: float = 60.0
    key: str = "wbv"
    axes: tuple[str, ...] = field(default=("x", "y", "z"))

    _QUANTITY: ClassVar[dict[str, Quantity]] = {
        "x": Quantity.VIB_WBV_X,
        "y": Quantity.VIB_WBV_Y,
        "z": Quantity.VIB_WBV_Z,
    }

    def channels(self) -> tuple[ChannelDef, ...]:
        return tuple(ChannelDef(f"{self.key}_{a}", self._QUANTITY[a], "m/s2") for a in self.axes)

    def sampler(self, rng: Rng, shifts: Shifts | None) -> Sampler:
        streams = [rng.stream("fast", a) for a in self.axes]
        slots = rng.child("slots")
        slow = rng.child("slow").smoother(30.0)

        @functools.lru_cache(maxsize=4)
        def slot_draw(slot: int) -> float:
            return slots.uniform(slot)

        levels = [{"x": self.x, "y": self.y, "z": self.z}[a] for a in self.axes]

        def sample(k: int, t: float, act: Activity) -> tuple[float, ...]:
            working = act.level > 0 and act.task is not None
            if working and self.tasks:
                working = act.task in self.tasks
            moving = working and slot_draw(math.floor(t / self.slot_s)) < act.level
            if moving:
                factor = 1.0 + 0.25 * slow(t)
            elif act.on_shift:
                factor = 0.1
            else:
                factor = 0.01
            return tuple(
                round(max(0.0, lvl * factor * (1.0 + 0.08 * s.normal(k))), 3)
                for lvl, s in zip(levels, streams, strict=True)
            )

        return sample


INSTRUMENT_KINDS: dict[str, type] = {
    cls.kind: cls
    for cls in (SoundLevelMeter, GasSensor, DustMonitor, HandArmVibration, WholeBodyVibration)
}


def ppm_to_mg_m3(ppm: float, substance: str) -> float:
    """Concentration in mg/m³ at 20 °C and 101.3 kPa."""
    return ppm * MOLAR_MASS_G_MOL[substance] / MOLAR_VOLUME_L_MOL
