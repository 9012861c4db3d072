"""The clock detectors step the cells that stay as they are (a sensor silent for days) all at
once; that must give exactly what stepping every cell one by one gives."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from analytics import Norms
from analytics.alerts import (
    AlertKind,
    AlertNorms,
    BatchBuilder,
    DetectorState,
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
from analytics.alerts.detectors.stepper import Stepper
from analytics.alerts.lifecycle import QuietObservations
from analytics.types import IntArray

T0 = 1_800_000_000.0
CLOCK_KINDS = (
    AlertKind.DEVICE_OFFLINE,
    AlertKind.SENSOR_SILENT,
    AlertKind.SEQUENCE_GAP,
    AlertKind.CALIBRATION_OVERDUE,
)
CELL_ARRAYS = (
    "status",
    "since",
    "clear_since",
    "severity",
    "escalations",
    "notified_now",
    "value",
    "threshold",
    "ids",
)


def _every_cell_by_itself(
    _self: Stepper, _kind: AlertKind, slots: IntArray, _obs: QuietObservations
) -> IntArray:
    """The stepping before cells were stepped at once: every held or active cell one by one."""
    return slots


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


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("slow", [False, True])
def test_stepping_held_cells_at_once_changes_nothing(
    norms: Norms, monkeypatch: pytest.MonkeyPatch, seed: int, slow: bool
) -> None:
    a = load_alert_norms("default")
    if slow:
        a = _slow_norms(a)
    events, state = _run(norms, a, seed)
    with monkeypatch.context() as m:
        m.setattr(Stepper, "loud", _every_cell_by_itself)
        expected, expected_state = _run(norms, a, seed)
    kinds = {e["kind"] for e in events}
    assert {AlertKind.SENSOR_SILENT.value, AlertKind.DEVICE_OFFLINE.value} <= kinds
    assert events == expected
    for name in CELL_ARRAYS:
        got, want = getattr(state.cells, name), getattr(expected_state.cells, name)
        if want.dtype.kind == "f":
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            assert (got == want).all(), name
