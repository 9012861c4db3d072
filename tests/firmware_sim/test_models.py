"""Simulated instruments: determinism, realistic ranges, and the behaviour each model promises."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta

import pytest

from firmware_sim.device import SimulatedDevice, standard_device
from firmware_sim.instruments import (
    GasSensor,
    HandArmVibration,
    Release,
    SoundLevelMeter,
    WholeBodyVibration,
    ppm_to_mg_m3,
)
from firmware_sim.rng import Rng
from firmware_sim.scenario import BUILTIN, load_scenario
from firmware_sim.schedule import Shifts, Task, Window, WorkplaceSchedule
from vocabulary.driver import SampleBlock

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 08:00 at +05:00


def samples(blocks: list[SampleBlock]) -> dict[tuple[str, datetime], float]:
    out: dict[tuple[str, datetime], float] = {}
    for block in blocks:
        offsets = block.offsets_s or [i * block.spec.period_s for i in range(len(block.values))]
        for offset, value in zip(offsets, block.values, strict=True):
            key = (block.spec.sensor, block.t0 + timedelta(seconds=offset))
            assert key not in out, f"sample {key} returned twice"
            out[key] = value
    return out


def read_in_steps(
    device: SimulatedDevice, end: datetime, step_s: float
) -> dict[tuple[str, datetime], float]:
    out: dict[tuple[str, datetime], float] = {}
    t = device.position
    while t < end:
        t = min(t + timedelta(seconds=step_s), end)
        out.update(samples(device.read(t)))
    return out


def mine_device(
    code: str = "mine-01-hd-1", start: datetime = T0, seed: int | None = None
) -> SimulatedDevice:
    return load_scenario("mine").build(code, start=start, seed=seed)


@pytest.mark.parametrize("step_s", [1.0, 7.3, 60.0, 3600.0])
def test_same_seed_same_samples_whatever_the_polling(step_s: float) -> None:
    end = T0 + timedelta(hours=1)
    reference = samples(mine_device().read(end))
    assert len(reference) == 3600 * 6
    assert read_in_steps(mine_device(), end, step_s) == reference


def test_a_run_started_later_or_resumed_sees_the_same_samples() -> None:
    end = T0 + timedelta(minutes=30)
    whole = samples(mine_device().read(end))
    later = samples(mine_device(start=T0 + timedelta(minutes=10)).read(end))
    assert later == {k: v for k, v in whole.items() if k[1] >= T0 + timedelta(minutes=10)}
    resumed = mine_device()
    resumed.resume(T0 + timedelta(minutes=20, seconds=0.5))
    assert resumed.position == T0 + timedelta(minutes=20, seconds=1)
    resumed_from = resumed.position
    assert samples(resumed.read(end)) == {k: v for k, v in whole.items() if k[1] >= resumed_from}
    # resume() never goes back before the start unless the device has memory.
    device = mine_device(start=T0 + timedelta(minutes=10))
    device.resume(T0)
    assert device.position == T0 + timedelta(minutes=10)


def test_resume_with_memory_catches_up() -> None:
    device = load_scenario("mine").build("mine-01-hd-1", start=T0, memory_s=3600)
    device.resume(T0 - timedelta(minutes=5))
    assert device.position == T0 - timedelta(minutes=5)


def test_different_seeds_give_different_samples() -> None:
    end = T0 + timedelta(minutes=5)
    assert samples(mine_device(seed=1).read(end)) != samples(mine_device(seed=2).read(end))


def test_counter_rng_is_a_pure_function_with_sane_moments() -> None:
    rng = Rng(7, "x")
    assert rng.normal(12) == Rng(7, "x").normal(12)
    draws = [rng.normal(i) for i in range(20000)]
    assert abs(statistics.fmean(draws)) < 0.05
    assert abs(statistics.stdev(draws) - 1.0) < 0.05
    uniforms = [rng.uniform(i) for i in range(20000)]
    assert min(uniforms) >= 0.0
    assert max(uniforms) < 1.0
    stream = rng.stream("s")
    assert [stream.normal(k) for k in (5000, 3, 9000, 3)] == [
        Rng(7, "x").stream("s").normal(k) for k in (5000, 3, 9000, 3)
    ]
    smooth = rng.smoother(60.0)
    assert all(smooth(t) == pytest.approx(rng.smooth(t, 60.0)) for t in (0.0, 59.9, 3601.5, 7.0))


@pytest.mark.slow  # a whole simulated shift per scenario
@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_scenarios_stay_in_physical_ranges(name: str) -> None:
    scenario = load_scenario(name)
    start, end = scenario.shifts.last_complete(datetime(2026, 11, 20, 12, tzinfo=UTC))
    for spec in scenario.devices:
        values: dict[str, list[float]] = {}
        for block in scenario.build(spec.code, start=start).read(end):
            values.setdefault(block.spec.quantity.value, []).extend(block.values)
        for quantity, vs in values.items():
            assert all(math.isfinite(v) for v in vs)
            lo, hi = {
                "noise_laeq": (30.0, 125.0),
                "noise_lcpeak": (40.0, 150.0),
                "gas": (0.0, 500.0),
                "dust": (0.0, 100.0),
                "vib_hav": (0.0, 40.0),
                "vib_wbv_x": (0.0, 3.0),
                "vib_wbv_y": (0.0, 3.0),
                "vib_wbv_z": (0.0, 3.0),
            }[quantity]
            assert lo <= min(vs), (spec.code, quantity, min(vs))
            assert max(vs) <= hi, (spec.code, quantity, max(vs))


def test_noise_peaks_sit_above_the_level_and_impulses_drive_them() -> None:
    device = SimulatedDevice(
        "n", [SoundLevelMeter(impulse_rate_per_h=600.0, impulse_peak_db=135.0)], start=T0
    )
    blocks = {b.spec.sensor: b.values for b in device.read(T0 + timedelta(hours=1))}
    laeq, peak = blocks["n.noise"], blocks["n.noise_lcpeak"]
    assert all(p > a for a, p in zip(laeq, peak, strict=True))
    impulses = [p for p in peak if p > 125.0]
    assert 400 < len(impulses) < 800  # about 600 an hour
    quiet = SimulatedDevice("q", [SoundLevelMeter()], start=T0).read(T0 + timedelta(hours=1))
    assert max(quiet[1].values) < 125.0


def test_machine_duty_cycle_shows_in_the_level() -> None:
    meter = SoundLevelMeter(background_db=60.0, machine_db=95.0, duty=0.5, jitter_db=0.5)
    device = SimulatedDevice("n", [meter], start=T0)
    laeq = device.read(T0 + timedelta(hours=2))[0].values
    running = sum(1 for v in laeq if v > 85.0) / len(laeq)
    assert 0.35 < running < 0.65


def test_gas_release_rises_peaks_and_decays() -> None:
    shifts = Shifts((8 * 3600.0,), 8 * 3600.0, load_scenario("mine").tz)
    schedule = WorkplaceSchedule(shifts)
    release = Release(at_s=3600.0, peak=40.0, rise_s=120.0, decay_s=300.0)
    sensor = GasSensor(substance="CO", baseline=2.0, noise=0.0, wander=0.0, releases=(release,))
    device = SimulatedDevice("g", [sensor], start=T0, schedule=schedule)
    values = device.read(T0 + timedelta(hours=3))[0].values
    at = 3600
    assert values[at - 10] == pytest.approx(2.0)
    assert values[at + 60] == pytest.approx(22.0, abs=0.2)  # halfway up
    assert values[at + 120] == pytest.approx(42.0, abs=0.2)  # the peak
    assert values[at + 420] == pytest.approx(2.0 + 40.0 / math.e, abs=0.2)  # one decay time
    assert values[at + 7000] == pytest.approx(2.0, abs=0.1)


def test_gas_drift_and_resolution() -> None:
    sensor = GasSensor(
        substance="H2S",
        baseline=1.0,
        noise=0.0,
        wander=0.0,
        drift_per_day=2.0,
        resolution=0.5,
        calibration_interval_s=10 * 86_400.0,
    )
    day0 = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=20_000)  # a calibration day
    device = SimulatedDevice("g", [sensor], start=day0)
    first = device.read(day0 + timedelta(seconds=1))[0].values[0]
    device.resume(day0 + timedelta(days=3))
    later = device.read(day0 + timedelta(days=3, seconds=1))[0].values[0]
    assert first == 1.0
    assert later == 7.0  # 1 + 3 days × 2, on the 0.5 grid


def test_ppm_conversion_uses_the_molar_volume_at_20_c() -> None:
    assert ppm_to_mg_m3(1.0, "CO") == pytest.approx(28.01 / 24.04)


def test_hand_arm_vibration_only_while_the_tool_is_used() -> None:
    shifts = Shifts((8 * 3600.0,), 8 * 3600.0, load_scenario("mine").tz)
    schedule = WorkplaceSchedule(shifts, (Task("drilling", Window(3600.0, 7200.0)),))
    tool = HandArmVibration(a_hv=10.0, trigger_share=0.4, tasks=("drilling",))
    device = SimulatedDevice("h", [tool], start=T0, schedule=schedule)
    values = device.read(T0 + timedelta(hours=8))[0].values
    assert all(v == 0.0 for v in values[:3600] + values[7200:])
    drilling = values[3600:7200]
    triggered = [v for v in drilling if v > 0]
    assert 0.25 < len(triggered) / len(drilling) < 0.55
    assert 6.0 < statistics.fmean(triggered) < 14.0


def test_whole_body_vibration_follows_driving() -> None:
    shifts = Shifts((8 * 3600.0,), 8 * 3600.0, load_scenario("mine").tz)
    schedule = WorkplaceSchedule(shifts, (Task("hauling", Window(0.0, 4 * 3600.0), 1.0),))
    seat = WholeBodyVibration(x=0.3, y=0.3, z=0.8)
    device = SimulatedDevice("w", [seat], start=T0 - timedelta(hours=1), schedule=schedule)
    blocks = {b.spec.sensor: b.values for b in device.read(T0 + timedelta(hours=8))}
    z = blocks["w.wbv_z"]
    off_shift, driving, idle = z[:3600], z[3600 : 3600 * 5], z[3600 * 5 :]
    assert max(off_shift) < 0.05
    assert 0.6 < statistics.fmean(driving) < 1.0
    assert statistics.fmean(idle) < 0.15
    assert statistics.fmean(blocks["w.wbv_x"][3600:18000]) < statistics.fmean(driving)


def test_the_demo_device_has_the_skeleton_channels() -> None:
    device = standard_device("demo-dev-1", T0)
    quantities = {c.quantity.value for c in device.channels()}
    assert {"noise_laeq", "gas", "dust", "vib_hav", "vib_wbv_z"} <= quantities
    assert len(samples(device.read(T0 + timedelta(seconds=10)))) == 10 * len(device.channels())
