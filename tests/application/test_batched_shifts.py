"""Assessing the shifts of a workplace in one batch gives, shift for shift, what assessing each
shift alone gives (``analytics.assess_workplace``): the cross-sensor steps (hand-arm tools,
mixtures, the combination) stay inside their shift. Pure, no services."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import numpy as np
import pytest

from analytics import assess_workplace, load_norms
from application.assessments import (
    SensorRef,
    WorkplaceInputs,
    _Sensor,
    _sensor_parts,
    _series,
    assess_shifts,
)
from application.schedule import Schedule, Shift, shifts_between

SCHEDULE = Schedule.of([time(7, 0), time(19, 0)], 12 * 3600, "Asia/Almaty")
SENSORS = (
    SensorRef(1, "d.noise", "noise_laeq", "dB(A)", None),
    SensorRef(2, "d.hav1", "vib_hav", "m/s2", None),
    SensorRef(3, "d.hav2", "vib_hav", "m/s2", None),
    SensorRef(4, "d.co", "gas", "mg/m3", "CO"),
    SensorRef(5, "d.no2", "gas", "mg/m3", "NO2"),
    SensorRef(6, "d.z", "vib_wbv_z", "m/s2", None),
)
LEVEL = {1: 82.0, 2: 0.9, 3: 1.1, 4: 9.0, 5: 0.7, 6: 0.3}
WIDTH_US = 3_600_000_000


def inputs(seed: int) -> tuple[WorkplaceInputs, list]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    shifts = shifts_between(SCHEDULE, date(2026, 11, 10), date(2026, 11, 12))
    lo = int(shifts[0].start.timestamp()) * 1_000_000
    hi = int(shifts[-1].end.timestamp()) * 1_000_000
    buckets = []
    for ref in SENSORS:
        starts = np.arange(lo, hi, WIDTH_US, dtype=np.int64)
        keep = rng.random(starts.size) > 0.15  # gaps, so some shifts lack data
        n = np.where(rng.random(starts.size) > 0.1, 3600, rng.integers(1, 3600, starts.size))
        if ref.quantity == "noise_laeq":
            level = LEVEL[ref.id] + rng.uniform(-6.0, 10.0, starts.size)
        else:
            level = LEVEL[ref.id] * rng.uniform(0.5, 1.8, starts.size)
        buckets.append(_Sensor(ref, starts[keep], n[keep].astype(np.int64), level[keep]))
    workplace = {"id": 7, "code": "wp", "timezone": SCHEDULE.timezone}
    entries = (
        {
            "factor": "microclimate",
            "working_class": "3.1",
            "assessed_on": date(2026, 11, 11),
            "id": 1,
        },
    )
    return WorkplaceInputs(workplace, SENSORS, tuple(buckets), entries, "1 hour"), shifts


@pytest.mark.parametrize("seed", range(5))
def test_a_batch_equals_each_shift_assessed_alone(seed: int) -> None:
    norms = load_norms("default")
    data, shifts = inputs(seed)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    batched = {a.shift.start: a for a in assess_shifts(norms, data, shifts, now, 28 * 86_400.0)}
    assert len(batched) == len(shifts)
    for s in shifts:
        lo_us = int(s.start.timestamp() * 1_000_000)
        hi_us = int(s.end.timestamp() * 1_000_000)
        series = []
        for b in data.buckets:
            i, j = np.searchsorted(b.starts_us, (lo_us, hi_us), side="left")
            if i < j:
                series.append(_series(b, int(i), int(j), s, WIDTH_US, name=b.ref.code))
        entered = {"microclimate": "3.1"} if s.day >= date(2026, 11, 11) else {}
        alone = assess_workplace(
            series,
            norms,
            shift_duration_s=s.duration_s,
            max_gap_s=3600.0,
            entered_factors=entered,
        )
        got = batched[s.start]
        assert got.working_class == (alone.working_class and alone.working_class.value)
        assert got.b == alone.b
        assert got.b_continuous == pytest.approx(alone.b_continuous, abs=1e-6)
        assert list(got.deciding_factors) == list(alone.combination.deciding)  # type: ignore[union-attr]
        assert [f["factor"] for f in got.factors] == [f.factor for f in alone.factors]
        assert [f["working_class"] for f in got.factors] == [
            f.working_class.value for f in alone.factors
        ]
        mine = {r["sensor"]: r["metrics"] for r in got.sensors if r["samples"]}
        for r in alone.sensors:
            for key, value in r.metrics.items():
                if key != "coverage" and np.isfinite(value):
                    assert mine[r.sensor][key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
        assert got.detail["mixture_index"] == pytest.approx(
            {k: round(v, 6) for k, v in alone.mixture_index.items()}
        )
    # The cases differ, or this test could not tell a batch that mixed shifts from one that
    # did not.
    assert len({(a.b, a.b_continuous) for a in batched.values()}) > 2


@pytest.mark.parametrize("seed", range(3))
def test_the_samples_of_all_shifts_at_once_are_those_of_each_shift_alone(seed: int) -> None:
    """Bit for bit, also for shifts that overlap (a bucket then serves both)."""
    data, shifts = inputs(seed)
    overlapping = [
        *shifts,
        *(
            Shift(s.day, 9, s.start + (s.end - s.start) / 2, s.end + (s.end - s.start) / 2)
            for s in shifts[:2]
        ),
    ]
    lo = np.array([int(s.start.timestamp() * 1_000_000) for s in overlapping], dtype=np.int64)
    hi = np.array([int(s.end.timestamp() * 1_000_000) for s in overlapping], dtype=np.int64)
    compared = 0
    for b in data.buckets:
        parts = _sensor_parts(b, lo, hi, WIDTH_US)
        for k, s in enumerate(overlapping):
            i, j = np.searchsorted(b.starts_us, (lo[k], hi[k]), side="left")
            if i == j:
                assert k not in parts
                continue
            alone = _series(b, int(i), int(j), s, WIDTH_US, name=b.ref.code)
            p = parts[k]
            assert (p.i, p.j) == (i, j)
            assert p.time_s.tobytes() == alone.time_s.tobytes()
            assert p.values.tobytes() == alone.values.tobytes()
            n = b.n[i:j]
            assert p.samples == int(n.sum())
            assert p.ratio_sum == float(np.minimum(n / float(n.max()), 1.0).sum())
            compared += 1
    assert compared > len(shifts)


def test_a_refused_sensor_is_named_in_its_own_shift_only() -> None:
    norms = load_norms("default")
    data, shifts = inputs(0)
    noise = data.buckets[0]
    level = noise.level.copy()
    level[np.searchsorted(noise.starts_us, int(shifts[2].start.timestamp() * 1_000_000))] = 500.0
    faulty = WorkplaceInputs(
        data.workplace,
        data.sensors,
        (_Sensor(noise.ref, noise.starts_us, noise.n, level), *data.buckets[1:]),
        data.entries,
        data.bucket,
    )
    now = datetime(2026, 12, 1, tzinfo=UTC)
    got = {a.shift.start: a for a in assess_shifts(norms, faulty, shifts, now, 28 * 86_400.0)}
    for s in shifts:
        row = next(r for r in got[s.start].sensors if r["sensor"] == "d.noise")
        if s == shifts[2]:
            assert row["basis"].startswith("REFUSED: sensor 'd.noise' (noise_laeq")
            assert "refused (values outside the physical range): d.noise" in (
                got[s.start].explanation
            )
        else:
            assert not row["basis"].startswith("REFUSED"), s
