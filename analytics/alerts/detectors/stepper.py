"""The one way a detector hands its findings to the lifecycle.

Detectors compute *active* and *clear* as arrays over all the sensors of a batch; only the
cells that are active or already hold an alert need the per-cell lifecycle rules, and
:class:`Stepper` picks those out and steps them, collecting the events in order. The clock
detectors see the same held cells every tick (a fleet always has offline devices and silent
sensors): :meth:`Stepper.step_clock` steps those that raise no event at once as arrays, so that
a tick costs array operations rather than a Python step per open alert. :meth:`Stepper.step_cells`
steps the cells that are left, one at a time, from the detector's arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from analytics.alerts.lifecycle import (
    IDLE,
    AlertEvent,
    Observation,
    QuietObservations,
    step_cell,
    step_quiet,
)
from analytics.alerts.params import KIND_INDEX, AlertKind, AlertNorms
from analytics.alerts.state import DetectorState
from analytics.types import BoolArray, FloatArray, IntArray


def hysteresis_clear(
    th: FloatArray, is_db: BoolArray, kind: AlertKind, a: AlertNorms
) -> FloatArray:
    """The level below which ``kind``'s condition is clear: levels in dB step down by decibels,
    other quantities by a fraction of the threshold."""
    rule = a.kinds[kind]
    return np.where(is_db, th - rule.hysteresis_db, th * (1.0 - rule.hysteresis_fraction))


class Stepper:
    """Feeds observations of interesting cells into the lifecycle."""

    def __init__(self, state: DetectorState, now: float, events: list[AlertEvent]) -> None:
        self.state = state
        self.now = now
        self.events = events

    def interesting(self, kind: AlertKind, slots: IntArray, active: BoolArray) -> IntArray:
        held = self.state.cells.status[slots, KIND_INDEX[kind]] != IDLE
        result: IntArray = np.nonzero(active | held)[0]
        return result

    def step_clock(
        self,
        kind: AlertKind,
        slots: IntArray,
        *,
        active: BoolArray,
        clear: BoolArray,
        value: FloatArray | float,
        threshold: FloatArray | float,
        unit: str,
        message: Callable[[int], str],
        among: BoolArray | None = None,
    ) -> None:
        """A clock detector's findings over every subject ``slots`` (of ``among``, if given)
        at ``now``: the cells that are active or hold an alert are stepped, those whose step
        raises no event at once as arrays (:func:`step_quiet`), the others by
        :meth:`step_cells`."""
        held = self.interesting(kind, slots, active)
        if among is not None:
            held = held[among[held]]
        quiet = QuietObservations(
            active[held],
            clear[held],
            self.now,
            value[held] if isinstance(value, np.ndarray) else value,
            self.state.alerts.kinds[kind].severity,
        )
        mask = step_quiet(self.state.cells, held, KIND_INDEX[kind], quiet, self.state.alerts)
        self.step_cells(
            kind,
            held[mask],
            slots,
            active=active,
            clear=clear,
            t=self.now,
            value=value,
            threshold=threshold,
            unit=unit,
            message=message,
        )

    def step_cells(
        self,
        kind: AlertKind,
        rows: IntArray,
        slots: IntArray,
        *,
        active: BoolArray,
        clear: BoolArray,
        t: FloatArray | float,
        value: FloatArray | float,
        threshold: FloatArray | float,
        unit: str | None,
        message: Callable[[int], str],
    ) -> None:
        """Step, in order, the cells of ``kind`` at ``rows`` of the detector's arrays: row ``i``
        is the subject ``slots[i]`` and observes ``active[i]``, ``clear[i]``, ``t[i]``,
        ``value[i]`` and ``threshold[i]`` (a scalar holds for every row) with the kind's
        severity. ``unit`` is that of the value and of the threshold (``None``: the subject's
        own); ``message(i)`` is formatted only when a transition happens."""
        severity = self.state.alerts.kinds[kind].severity
        for row in rows:
            i = int(row)
            slot = int(slots[i])
            u = self.state.subjects[slot].unit if unit is None else unit
            obs = Observation(
                bool(active[i]),
                bool(clear[i]),
                _at(t, i),
                _at(value, i),
                _at(threshold, i),
                severity,
                u,
                u,
                partial(message, i),
            )
            self.step(slot, kind, obs)

    def step(self, slot: int, kind: AlertKind, obs: Observation) -> None:
        step_cell(
            self.state.cells,
            self.state.subjects[slot],
            slot,
            KIND_INDEX[kind],
            obs,
            self.state.alerts,
            self.now,
            self.events,
        )


def _at(x: FloatArray | float, i: int) -> float:
    return float(x[i]) if isinstance(x, np.ndarray) else float(x)


__all__ = ["Stepper", "hysteresis_clear"]
