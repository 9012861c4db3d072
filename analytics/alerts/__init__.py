"""Early warning: pure streaming detectors and the alert lifecycle.

No I/O, no clock: time is an argument. The shell (``ingest.alerting``) decodes messages, builds
a :class:`Batch`, calls :func:`evaluate` and delivers the :class:`AlertEvent` list it returns.

Thresholds and timing: ``load_alert_norms(profile) -> AlertNorms`` (the ``[alerts]`` section of a
norms profile) plus the profile's limits, per subject via ``thresholds_for``.

State: ``new_state(norms, alert_norms)``, ``add_subject(state, SubjectSpec) -> slot``,
``admit(state, device_slot, seq)`` (de-duplication and sequence gaps), ``warm(state, batch)``
(rebuild statistics without alerting), ``seed`` (the same from aggregates),
``set_calendars(state, {schedule: ShiftCalendar})`` (the shifts of the workplaces' schedules,
which the shell derives from ``application.schedule`` and renews as time passes),
``evaluate(state, batch, now) -> (state, events)``,
``acknowledge`` / ``resolve`` (a person's actions), ``lifecycle.restore`` (reload stored alerts).

Where each part lives: :mod:`.state` (the arrays), :mod:`.registration` (subjects, calendars),
:mod:`.admission` (sequence numbers), :mod:`.batch` (what an evaluation takes in),
:mod:`.accumulate` (samples into statistics, warm start), :mod:`.detectors` (one module per
family of detectors), :mod:`.engine` (``evaluate``: which detectors run when),
:mod:`.actions` (a person's actions), :mod:`.lifecycle` (the alert states).

See ``docs/alerts.md`` for the detectors, the lifecycle rules and where each number comes from.
"""

from analytics.alerts.accumulate import seed, warm
from analytics.alerts.actions import acknowledge, open_alerts, resolve
from analytics.alerts.admission import admit
from analytics.alerts.batch import Batch, BatchBuilder
from analytics.alerts.detectors.projected_exposure import running_projections
from analytics.alerts.engine import evaluate
from analytics.alerts.lifecycle import (
    AlertEvent,
    AlertState,
    ResolvedBecause,
    Transition,
    TransitionError,
    alert_id,
    next_state,
    restore,
)
from analytics.alerts.params import (
    DEVICE_KINDS,
    KINDS,
    AlertKind,
    AlertNorms,
    KindRule,
    Severity,
    load_alert_norms,
)
from analytics.alerts.projection import ShiftProjection, time_to_level
from analytics.alerts.registration import add_subject, schedules, set_calendars, shift_at
from analytics.alerts.shifts import Calendars, ShiftCalendar
from analytics.alerts.state import DetectorState, new_state
from analytics.alerts.subjects import SubjectSpec, Thresholds, thresholds_for
from analytics.alerts.text import utc_time_text

__all__ = [
    "DEVICE_KINDS",
    "KINDS",
    "AlertEvent",
    "AlertKind",
    "AlertNorms",
    "AlertState",
    "Batch",
    "BatchBuilder",
    "Calendars",
    "DetectorState",
    "KindRule",
    "ResolvedBecause",
    "Severity",
    "ShiftCalendar",
    "ShiftProjection",
    "SubjectSpec",
    "Thresholds",
    "Transition",
    "TransitionError",
    "acknowledge",
    "add_subject",
    "admit",
    "alert_id",
    "evaluate",
    "load_alert_norms",
    "new_state",
    "next_state",
    "open_alerts",
    "resolve",
    "restore",
    "running_projections",
    "schedules",
    "seed",
    "set_calendars",
    "shift_at",
    "thresholds_for",
    "time_to_level",
    "utc_time_text",
    "warm",
]
