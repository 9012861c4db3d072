"""Alert events of the engine as wire messages (``vocabulary.protocol.alerts``)."""

from __future__ import annotations

from datetime import UTC, datetime

from analytics.alerts import AlertEvent
from vocabulary.protocol.alerts import AlertMessage


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def from_event(event: AlertEvent, sent_at: datetime) -> AlertMessage:
    d = event.to_dict()
    return AlertMessage(
        alert_id=event.alert_id,
        transition=event.transition,
        state=event.state,
        kind=event.kind.value,
        severity=event.severity.label,
        enterprise=d["enterprise"],
        device=d["device"],
        sensor=d["sensor"],
        sensor_id=d["sensor_id"],
        workplace=d["workplace"],
        quantity=d["quantity"],
        substance=d["substance"],
        value=d["value"],
        unit=event.unit,
        threshold=d["threshold"],
        threshold_unit=event.threshold_unit,
        time_left_s=d["time_left_s"],
        message=event.message,
        at=_utc(event.at_s),
        opened_at=_utc(event.opened_at_s),
        sent_at=sent_at,
        reason=event.reason,
        actor=event.actor,
        comment=event.comment,
        escalations=event.escalations,
    )
