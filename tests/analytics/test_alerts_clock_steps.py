"""The clock detectors step the cells that stay as they are (a sensor silent for days) all at
once; that must give exactly what stepping every cell one by one gives."""

from __future__ import annotations

import copy
import dataclasses
import random

import numpy as np
import pytest

from analytics import Norms
from analytics.alerts import (
    AlertEvent,
    AlertKind,
    AlertNorms,
    BatchBuilder,
    DetectorState,
    Severity,
    SubjectSpec,
    TransitionError,
    acknowledge,
    add_subject,
    admit,
    evaluate,
    load_alert_norms,
    new_state,
    resolve,
)
from analytics.alerts.detectors import stepper
from analytics.alerts.lifecycle import (
    IDLE,
    REARM,
    Cells,
    Observation,
    QuietObservations,
    step_cell,
    step_quiet,
)
from analytics.alerts.params import KIND_INDEX
from analytics.types import BoolArray, FloatArray, IntArray

T0 = 1_800_000_000.0
CLOCK_KINDS = (
    AlertKind.DEVICE_OFFLINE,
    AlertKind.SENSOR_SILENT,
    AlertKind.SEQUENCE_GAP,
    AlertKind.CALIBRATION_OVERDUE,
)


def _every_cell_by_itself(
    _cells: Cells, slots: IntArray, _kind: int, _obs: QuietObservations, _a: AlertNorms
) -> BoolArray:
    """The stepping before cells were stepped at once: every held or active cell one by one
    (none stepped quietly, all left loud)."""
    return np.ones(slots.size, dtype=bool)


def _slow_norms(a: AlertNorms) -> AlertNorms:
    """The clock kinds with waits both ways, so that pending and clearing cells occur."""
    kinds = dict(a.kinds)
    for kind in CLOCK_KINDS:
        kinds[kind] = dataclasses.replace(kinds[kind], min_duration_s=12.0, clear_duration_s=9.0)
    return dataclasses.replace(a, kinds=kinds, escalate_after_s=40.0)


def _fleet(norms: Norms, a: AlertNorms, rng: random.Random) -> tuple[DetectorState, list[int]]:
    state = new_state(norms, a)
    devices = []
    for d in range(4):
        devices.append(add_subject(state, SubjectSpec(enterprise="e", device=f"d{d}")))
        for s in range(3):
            due = T0 + rng.uniform(0.0, 1200.0) if rng.random() < 0.4 else float("nan")
            add_subject(
                state,
                SubjectSpec(
                    enterprise="e",
                    device=f"d{d}",
                    sensor=f"d{d}.s{s}",
                    quantity="gas",
                    unit="mg/m3",
                    substance="H2S",
                    workplace="wp",
                    calibration_due_s=due,
                ),
            )
    return state, devices


def _run(norms: Norms, a: AlertNorms, seed: int) -> tuple[list[dict[str, object]], DetectorState]:
    """A random day of a small fleet: sensors that talk irregularly, devices going offline,
    lost messages, people acknowledging and resolving, clock ticks."""
    rng = random.Random(seed)
    state, devices = _fleet(norms, a, rng)
    sensors = [slot for slot in range(state.n) if slot not in devices]
    seq = dict.fromkeys(devices, 0)
    events: list[dict[str, object]] = []
    now = T0
    for _ in range(400):
        now += rng.choice([0.25, 0.5, 1.0, 2.0, 5.0, 15.0])
        b = BatchBuilder()
        for slot in sensors:
            if rng.random() < 0.3:
                t = np.array([now - rng.uniform(0.0, 0.5)])
                b.channel(slot, t, np.array([rng.uniform(0.0, 2.0)]), 1.0, np.ones(1, bool), now)
        for dev in devices:
            if rng.random() < 0.03:
                b.status(dev, rng.random() < 0.6)
            if rng.random() < 0.3:
                seq[dev] += rng.choice([1, 1, 1, 2, 5])
                admit(state, dev, seq[dev])
        held = sorted(state.cells.by_id)
        if held and rng.random() < 0.1:
            ident = rng.choice(held)
            person = acknowledge if rng.random() < 0.5 else resolve
            try:
                _, event = person(state, ident, now, actor="a", comment=None)
            except TransitionError:
                pass
            else:
                events.append(event.to_dict())
        _, found = evaluate(state, b.build(), now, clock_checks=rng.random() < 0.8)
        events += [e.to_dict() for e in found]
    return events, state


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("slow", [False, True])
def test_stepping_held_cells_at_once_changes_nothing(
    norms: Norms, monkeypatch: pytest.MonkeyPatch, seed: int, slow: bool
) -> None:
    a = load_alert_norms("default")
    if slow:
        a = _slow_norms(a)
    events, state = _run(norms, a, seed)
    with monkeypatch.context() as m:
        m.setattr(stepper, "step_quiet", _every_cell_by_itself)
        expected, expected_state = _run(norms, a, seed)
    kinds = {e["kind"] for e in events}
    assert {AlertKind.SENSOR_SILENT.value, AlertKind.DEVICE_OFFLINE.value} <= kinds
    assert events == expected
    for name in Cells.ARRAYS:
        got, want = getattr(state.cells, name), getattr(expected_state.cells, name)
        if want.dtype.kind == "f":
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            assert (got == want).all(), name


def _random_cells(rng: np.random.Generator, n: int) -> Cells:
    cells = Cells.empty(n)
    k = KIND_INDEX[AlertKind.SEQUENCE_GAP]
    cells.status[:, k] = rng.integers(IDLE, REARM + 1, n)
    # offsets that land exactly on the waits of _slow_norms (12 s to open, 9 s to clear)
    ago = rng.choice([0.0, 3.0, 8.0, 9.0, 12.0, 30.0], (2, n))
    cells.since[:, k] = np.where(rng.random(n) < 0.2, np.nan, T0 - ago[0])
    cells.clear_since[:, k] = np.where(rng.random(n) < 0.5, np.nan, T0 - ago[1])
    cells.severity[:, k] = rng.integers(0, 4, n)
    return cells


@pytest.mark.parametrize("seed", range(4))
def test_step_quiet_then_the_loud_cells_equals_step_cell_for_every_state(seed: int) -> None:
    """Every status, timer and observation, including cells active and clear at once and
    cells in the hysteresis band (neither), which the clock detectors rarely produce."""
    rng = np.random.default_rng(seed)
    a = _slow_norms(load_alert_norms("default"))
    k = KIND_INDEX[AlertKind.SEQUENCE_GAP]
    n = 400
    subjects = [SubjectSpec(enterprise="e", device=f"d{i}") for i in range(n)]
    slots = np.arange(n)
    for _ in range(5):
        cells = _random_cells(rng, n)
        reference = copy.deepcopy(cells)
        t = T0 + rng.choice([0.0, 3.0, 20.0], n)
        obs = QuietObservations(
            rng.random(n) < 0.5, rng.random(n) < 0.5, t, rng.random(n), Severity.HIGH
        )

        def observation(i: int, obs: QuietObservations = obs, t: FloatArray = t) -> Observation:
            return Observation(
                bool(obs.active[i]),
                bool(obs.clear[i]),
                float(t[i]),
                float(np.asarray(obs.value)[i]),
                1.0,
                Severity.HIGH,
                "",
                "",
                lambda: "m",
            )

        got: list[AlertEvent] = []
        loud = step_quiet(cells, slots, k, obs, a)
        for i in slots[loud]:
            step_cell(cells, subjects[i], int(i), k, observation(int(i)), a, T0, got)
        want: list[AlertEvent] = []
        for i in slots:
            step_cell(reference, subjects[i], int(i), k, observation(int(i)), a, T0, want)
        assert [repr(e) for e in got] == [repr(e) for e in want]  # NaN != NaN
        assert len(want) > 0
        for name in Cells.ARRAYS:
            g, w = getattr(cells, name), getattr(reference, name)
            if w.dtype.kind == "f":
                np.testing.assert_array_equal(g, w, err_msg=name)
            else:
                assert (g == w).all(), name
