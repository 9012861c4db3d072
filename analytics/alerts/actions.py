"""What people do to alerts (acknowledge, resolve) and which alerts the state holds.

Thin on purpose: the rules are the lifecycle's (:func:`analytics.alerts.lifecycle.act`); these
take and give the state like :func:`analytics.alerts.engine.evaluate`, so the shell treats a
person's action and a batch alike.
"""

from __future__ import annotations

from analytics.alerts.lifecycle import AlertEvent, act
from analytics.alerts.params import AlertKind, Severity
from analytics.alerts.state import DetectorState


def acknowledge(
    state: DetectorState, ident: str, now: float, *, actor: str | None, comment: str | None
) -> tuple[DetectorState, AlertEvent]:
    """A person acknowledged alert ``ident`` (stops escalation)."""
    return state, act(
        state.cells, state.subjects, ident, "acknowledge", now, actor=actor, comment=comment
    )


def resolve(
    state: DetectorState, ident: str, now: float, *, actor: str | None, comment: str | None
) -> tuple[DetectorState, AlertEvent]:
    """A person resolved alert ``ident``; the cell re-arms once its condition is clear."""
    return state, act(
        state.cells, state.subjects, ident, "resolve", now, actor=actor, comment=comment
    )


def open_alerts(state: DetectorState) -> list[tuple[str, AlertKind, str, Severity]]:
    """``(alert id, kind, subject key, severity)`` of every alert the state holds."""
    out = []
    for ident, (slot, k) in state.cells.by_id.items():
        kind = list(AlertKind)[k]
        out.append(
            (ident, kind, state.subjects[slot].key, Severity(int(state.cells.severity[slot, k])))
        )
    return out


__all__ = ["acknowledge", "open_alerts", "resolve"]
