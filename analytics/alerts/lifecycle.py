"""Alert lifecycle: open → acknowledged → resolved, as arrays over (subject, kind) cells.

Rules (timing per kind from ``[alerts.kinds.*]``):

* A detector reports, per cell, whether the condition is **active** (over the threshold) and
  whether it is **clear** (below the threshold minus the hysteresis). Between the two lies the
  hysteresis band, where nothing changes: a noisy signal near a threshold keeps its one alert.
* ``idle`` → active → ``pending`` (or straight to ``open`` when ``min_duration_s`` is 0);
  ``pending`` opens once it has been active again ``min_duration_s`` after it started, and
  falls back to ``idle`` only when clear (a dip into the band does not restart the wait).
* ``open``/``acknowledged``: a higher severity from the detector updates the alert; clear for
  ``clear_duration_s`` without interruption resolves it (reason ``cleared``).
* At most one alert per cell: the cell holds it until it is resolved.
* Escalation: an alert still ``open`` (nobody acknowledged it) ``escalate_after_s`` after it was
  raised or last escalated goes up one severity and is notified again, ``max_escalations``
  times at most.
* A person may acknowledge (who, comment) an open alert, and resolve an open or acknowledged
  one. After a person resolves it, the cell waits until the condition is clear before it may
  raise a new alert (``rearm``), so closing an alert by hand does not re-open it at once.

Alert ids are UUIDs derived from (subject, kind, opening time), so replaying the same readings
gives the same ids and storing an alert twice is detectable.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Literal

import numpy as np

from analytics.alerts.params import KINDS, AlertKind, AlertNorms, Severity
from analytics.alerts.subjects import SubjectSpec
from analytics.alerts.text import cleared
from analytics.errors import AnalyticsError
from analytics.types import BoolArray, FloatArray, IntArray

IDLE, PENDING, OPEN, ACKNOWLEDGED, REARM = 0, 1, 2, 3, 4
ALERT_NAMESPACE = uuid.UUID("6f0b7c52-3c1e-4d7a-9a55-2b4f1f0d6a11")

Transition = Literal["opened", "updated", "escalated", "acknowledged", "resolved"]
AlertState = Literal["open", "acknowledged", "resolved"]
STATE_NAMES: dict[int, AlertState] = {OPEN: "open", ACKNOWLEDGED: "acknowledged"}


class ResolvedBecause(StrEnum):
    """Why an alert was resolved: stored with the transition and sent to subscribers."""

    CLEARED = "cleared"  # the condition stayed clear for the kind's clear_duration_s
    BY_PERSON = "by person"  # someone resolved it by hand


class TransitionError(AnalyticsError):
    """A person asked for a transition the alert's state does not allow."""


def next_state(current: AlertState, action: Literal["acknowledge", "resolve"]) -> AlertState:
    """The state after a person's action, or :class:`TransitionError` if it is not allowed."""
    if action == "acknowledge" and current == "open":
        return "acknowledged"
    if action == "resolve" and current in ("open", "acknowledged"):
        return "resolved"
    raise TransitionError(f"cannot {action} an alert that is {current}")


def alert_id(subject_key: str, kind: AlertKind, opened_at_s: float) -> str:
    return str(
        uuid.uuid5(ALERT_NAMESPACE, f"{subject_key}|{kind.value}|{round(opened_at_s * 1e3)}")
    )


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One transition of one alert: what the shell stores, publishes and pushes."""

    alert_id: str
    transition: Transition
    state: AlertState
    kind: AlertKind
    severity: Severity
    subject: SubjectSpec
    value: float | None
    unit: str
    threshold: float | None
    threshold_unit: str
    message: str
    at_s: float  # when it happened, on the time base of the detector (sample time or clock)
    now_s: float  # the engine clock when it was decided
    opened_at_s: float
    time_left_s: float | None = None
    reason: str | None = None
    actor: str | None = None
    comment: str | None = None
    escalations: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (times as epoch seconds; the shell formats them)."""
        s = self.subject
        return {
            "alert_id": self.alert_id,
            "transition": self.transition,
            "state": self.state,
            "kind": self.kind.value,
            "severity": self.severity.label,
            "enterprise": s.enterprise,
            "device": s.device,
            "sensor": s.sensor,
            "sensor_id": s.sensor_id,
            "workplace": s.workplace,
            "quantity": s.quantity,
            "substance": s.substance,
            "value": _finite(self.value),
            "unit": self.unit,
            "threshold": _finite(self.threshold),
            "threshold_unit": self.threshold_unit,
            "time_left_s": _finite(self.time_left_s),
            "message": self.message,
            "at_s": self.at_s,
            "now_s": self.now_s,
            "opened_at_s": self.opened_at_s,
            "reason": self.reason,
            "actor": self.actor,
            "comment": self.comment,
            "escalations": self.escalations,
        }


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass(slots=True)
class Cells:
    """Lifecycle arrays of shape ``(subjects, kinds)``."""

    status: np.ndarray[Any, np.dtype[np.int8]]
    since: FloatArray  # pending since / opened at (detector time base)
    clear_since: FloatArray
    severity: np.ndarray[Any, np.dtype[np.int8]]
    escalations: np.ndarray[Any, np.dtype[np.int8]]
    notified_now: FloatArray  # engine clock of the last notification (escalation timer)
    value: FloatArray  # latest value while open
    threshold: FloatArray
    ids: np.ndarray[Any, np.dtype[np.object_]]
    by_id: dict[str, tuple[int, int]] = field(default_factory=dict)

    #: The per-cell arrays (every field but ``by_id``).
    ARRAYS: ClassVar[tuple[str, ...]] = (
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

    @classmethod
    def empty(cls, subjects: int) -> Cells:
        shape = (subjects, len(KINDS))
        return cls(
            status=np.zeros(shape, dtype=np.int8),
            since=np.full(shape, np.nan),
            clear_since=np.full(shape, np.nan),
            severity=np.zeros(shape, dtype=np.int8),
            escalations=np.zeros(shape, dtype=np.int8),
            notified_now=np.full(shape, np.nan),
            value=np.full(shape, np.nan),
            threshold=np.full(shape, np.nan),
            ids=np.full(shape, None, dtype=object),
        )

    def grow(self, subjects: int) -> None:
        extra = subjects - self.status.shape[0]
        if extra <= 0:
            return
        more = Cells.empty(extra)
        for name in self.ARRAYS:
            setattr(self, name, np.concatenate([getattr(self, name), getattr(more, name)]))


@dataclass(frozen=True, slots=True)
class Observation:
    """What a detector says about one cell at one moment."""

    active: bool
    clear: bool
    t: float
    value: float
    threshold: float
    severity: Severity
    unit: str
    threshold_unit: str
    message: Callable[[], str]  # formatted only when a transition happens
    time_left_s: float | None = None


@dataclass(frozen=True, slots=True)
class QuietObservations:
    """What a detector says about many cells of one kind at one moment, for
    :func:`step_quiet`: arrays (or scalars) aligned with the slots."""

    active: BoolArray
    clear: BoolArray
    t: FloatArray | float
    value: FloatArray | float
    severity: Severity


def step_cell(
    cells: Cells,
    subject: SubjectSpec,
    slot: int,
    kind_index: int,
    obs: Observation,
    norms: AlertNorms,
    now: float,
    events: list[AlertEvent],
) -> None:
    """Advance one cell by one observation (rules in the module docstring)."""
    kind = KINDS[kind_index]
    rule = norms.kinds[kind]
    status = int(cells.status[slot, kind_index])
    if status == IDLE:
        if obs.active:
            if rule.min_duration_s <= 0.0:
                _open(cells, subject, slot, kind_index, obs, now, events)
            else:
                cells.status[slot, kind_index] = PENDING
                cells.since[slot, kind_index] = obs.t
    elif status == PENDING:
        if obs.active and obs.t - cells.since[slot, kind_index] >= rule.min_duration_s:
            _open(cells, subject, slot, kind_index, obs, now, events)
        elif obs.clear:
            cells.status[slot, kind_index] = IDLE
            cells.since[slot, kind_index] = np.nan
    elif status in (OPEN, ACKNOWLEDGED):
        _step_raised(cells, subject, slot, kind_index, obs, rule.clear_duration_s, now, events)
    elif status == REARM and obs.clear:
        cells.status[slot, kind_index] = IDLE


def step_quiet(
    cells: Cells,
    slots: IntArray,
    kind_index: int,
    obs: QuietObservations,
    norms: AlertNorms,
) -> BoolArray:
    """Advance at once the cells whose step raises no event, exactly as :func:`step_cell`
    would; return the mask of the others, which the caller steps one by one in order.

    A cell held for a long time (a sensor silent for days) is observed every clock tick but
    changes only its latest value and clear timer; stepping those per cell made a tick cost
    grow with the number of open alerts. ``slots`` must not repeat.
    """
    rule = norms.kinds[KINDS[kind_index]]
    k = kind_index
    status = cells.status[slots, k]
    since = cells.since[slots, k]
    clear_since = cells.clear_since[slots, k]
    raised = (status == OPEN) | (status == ACKNOWLEDGED)
    active, clear = obs.active, obs.clear
    with np.errstate(invalid="ignore"):
        opening = (status == PENDING) & active & (obs.t - since >= rule.min_duration_s)
        clear_from = np.where(np.isnan(clear_since), obs.t, clear_since)
        resolving = raised & ~active & clear & (obs.t - clear_from >= rule.clear_duration_s)
    raising = raised & active & (int(obs.severity) > cells.severity[slots, k])
    loud: BoolArray = ((status == IDLE) & active) | opening | raising | resolving
    quiet = ~loud
    # pending (not opening) and clear, or re-armed and clear: back to idle
    to_idle = quiet & clear & ((status == PENDING) | (status == REARM))
    cells.status[slots[to_idle], k] = IDLE
    cells.since[slots[to_idle & (status == PENDING)], k] = np.nan
    held = quiet & raised
    cells.value[slots[held], k] = np.broadcast_to(obs.value, slots.shape)[held]
    cells.clear_since[slots[held], k] = np.where(active | ~clear, np.nan, clear_from)[held]
    return loud


def _step_raised(
    cells: Cells,
    subject: SubjectSpec,
    slot: int,
    kind_index: int,
    obs: Observation,
    clear_duration_s: float,
    now: float,
    events: list[AlertEvent],
) -> None:
    """An open or acknowledged cell: raise its severity while active, resolve it once the
    condition has stayed clear for ``clear_duration_s``."""
    cells.value[slot, kind_index] = obs.value
    if obs.active:
        cells.clear_since[slot, kind_index] = np.nan
        if obs.severity > cells.severity[slot, kind_index]:
            cells.severity[slot, kind_index] = int(obs.severity)
            cells.threshold[slot, kind_index] = obs.threshold
            events.append(_event(cells, subject, slot, kind_index, "updated", obs, now))
    elif obs.clear:
        if math.isnan(cells.clear_since[slot, kind_index]):
            cells.clear_since[slot, kind_index] = obs.t
        if obs.t - cells.clear_since[slot, kind_index] >= clear_duration_s:
            events.append(
                _event(
                    cells,
                    subject,
                    slot,
                    kind_index,
                    "resolved",
                    obs,
                    now,
                    reason=ResolvedBecause.CLEARED,
                )
            )
            _forget(cells, slot, kind_index, IDLE)
    else:
        cells.clear_since[slot, kind_index] = np.nan


def _open(
    cells: Cells,
    subject: SubjectSpec,
    slot: int,
    k: int,
    obs: Observation,
    now: float,
    events: list[AlertEvent],
) -> None:
    ident = alert_id(subject.key, KINDS[k], obs.t)
    cells.status[slot, k] = OPEN
    cells.since[slot, k] = obs.t
    cells.clear_since[slot, k] = np.nan
    cells.severity[slot, k] = int(obs.severity)
    cells.escalations[slot, k] = 0
    cells.notified_now[slot, k] = now
    cells.value[slot, k] = obs.value
    cells.threshold[slot, k] = obs.threshold
    cells.ids[slot, k] = ident
    cells.by_id[ident] = (slot, k)
    events.append(_event(cells, subject, slot, k, "opened", obs, now))


def _forget(cells: Cells, slot: int, k: int, status: int) -> None:
    ident = cells.ids[slot, k]
    if ident is not None:
        cells.by_id.pop(str(ident), None)
    cells.status[slot, k] = status
    cells.ids[slot, k] = None
    cells.since[slot, k] = np.nan
    cells.clear_since[slot, k] = np.nan
    cells.escalations[slot, k] = 0


def _event(
    cells: Cells,
    subject: SubjectSpec,
    slot: int,
    k: int,
    transition: Transition,
    obs: Observation,
    now: float,
    *,
    reason: str | None = None,
) -> AlertEvent:
    state: AlertState = (
        "resolved"
        if transition == "resolved"
        else STATE_NAMES.get(int(cells.status[slot, k]), "open")
    )
    message = obs.message()
    if transition == "resolved":
        message = cleared(KINDS[k], subject, obs.value, obs.unit)
    return AlertEvent(
        alert_id=str(cells.ids[slot, k]),
        transition=transition,
        state=state,
        kind=KINDS[k],
        severity=Severity(int(cells.severity[slot, k])),
        subject=subject,
        value=obs.value,
        unit=obs.unit,
        threshold=float(cells.threshold[slot, k]),
        threshold_unit=obs.threshold_unit,
        message=message,
        at_s=obs.t,
        now_s=now,
        opened_at_s=float(cells.since[slot, k]),
        time_left_s=obs.time_left_s,
        reason=reason,
        escalations=int(cells.escalations[slot, k]),
    )


def escalate(
    cells: Cells, subjects: list[SubjectSpec], norms: AlertNorms, now: float
) -> list[AlertEvent]:
    """Raise the severity of alerts nobody acknowledged in time, and notify them again."""
    due = (
        (cells.status == OPEN)
        & (now - cells.notified_now >= norms.escalate_after_s)
        & (cells.escalations < norms.max_escalations)
    )
    events: list[AlertEvent] = []
    for slot, k in zip(*np.nonzero(due), strict=True):
        s, kk = int(slot), int(k)
        cells.severity[s, kk] = min(int(cells.severity[s, kk]) + 1, int(Severity.CRITICAL))
        cells.escalations[s, kk] += 1
        cells.notified_now[s, kk] = now
        sev = Severity(int(cells.severity[s, kk]))
        minutes = norms.escalate_after_s / 60.0
        events.append(
            AlertEvent(
                alert_id=str(cells.ids[s, kk]),
                transition="escalated",
                state="open",
                kind=KINDS[kk],
                severity=sev,
                subject=subjects[s],
                value=float(cells.value[s, kk]),
                unit="",
                threshold=float(cells.threshold[s, kk]),
                threshold_unit="",
                message=f"not acknowledged for {minutes:g} min: raised to {sev.label}",
                at_s=now,
                now_s=now,
                opened_at_s=float(cells.since[s, kk]),
                escalations=int(cells.escalations[s, kk]),
            )
        )
    return events


def act(
    cells: Cells,
    subjects: list[SubjectSpec],
    ident: str,
    action: Literal["acknowledge", "resolve"],
    now: float,
    *,
    actor: str | None = None,
    comment: str | None = None,
) -> AlertEvent:
    """A person acknowledges or resolves an alert held by this state.

    Raises:
        TransitionError: unknown alert id, or the action is not allowed in its state.
    """
    where = cells.by_id.get(ident)
    if where is None:
        raise TransitionError(f"alert {ident} is not open")
    slot, k = where
    current = STATE_NAMES[int(cells.status[slot, k])]
    new = next_state(current, action)
    event = AlertEvent(
        alert_id=ident,
        transition="acknowledged" if action == "acknowledge" else "resolved",
        state=new,
        kind=KINDS[k],
        severity=Severity(int(cells.severity[slot, k])),
        subject=subjects[slot],
        value=float(cells.value[slot, k]),
        unit="",
        threshold=float(cells.threshold[slot, k]),
        threshold_unit="",
        message=f"{'acknowledged' if new == 'acknowledged' else 'resolved'}"
        f"{' by ' + actor if actor else ''}{': ' + comment if comment else ''}",
        at_s=now,
        now_s=now,
        opened_at_s=float(cells.since[slot, k]),
        reason=ResolvedBecause.BY_PERSON if new == "resolved" else None,
        actor=actor,
        comment=comment,
        escalations=int(cells.escalations[slot, k]),
    )
    if new == "acknowledged":
        cells.status[slot, k] = ACKNOWLEDGED
    else:
        _forget(cells, slot, k, REARM)
    return event


def restore(
    cells: Cells,
    slot: int,
    kind: AlertKind,
    ident: str,
    state: AlertState,
    *,
    opened_at_s: float,
    severity: Severity,
    escalations: int,
    notified_now: float,
    threshold: float | None,
) -> None:
    """Put an alert loaded from storage back into its cell (engine restart)."""
    k = KINDS.index(kind)
    cells.status[slot, k] = OPEN if state == "open" else ACKNOWLEDGED
    cells.since[slot, k] = opened_at_s
    cells.clear_since[slot, k] = np.nan
    cells.severity[slot, k] = int(severity)
    cells.escalations[slot, k] = escalations
    cells.notified_now[slot, k] = notified_now
    cells.threshold[slot, k] = np.nan if threshold is None else threshold
    cells.ids[slot, k] = ident
    cells.by_id[ident] = (slot, k)


__all__ = [
    "ACKNOWLEDGED",
    "IDLE",
    "OPEN",
    "PENDING",
    "REARM",
    "AlertEvent",
    "AlertState",
    "Cells",
    "Observation",
    "QuietObservations",
    "Transition",
    "TransitionError",
    "act",
    "alert_id",
    "escalate",
    "next_state",
    "restore",
    "step_cell",
    "step_quiet",
]
