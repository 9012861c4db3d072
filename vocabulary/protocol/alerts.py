"""Alert messages on MQTT (``{prefix}/v1/{enterprise}/alerts/{kind}``, QoS 1, JSON): the wire
format of alert transitions, beside the readings' (``vocabulary.protocol.messages``).

The engine publishes every transition it makes; the API publishes the transitions people make
(acknowledge, resolve) on the same topics, so the engine, every API process and their live
streams learn them without polling the database. ``source`` says who made the transition.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vocabulary.protocol.errors import ProtocolError, RejectReason
from vocabulary.protocol.topics import WIRE_VERSION_SEGMENT, alerts_topic, parse_alert_topic

SEVERITIES = ("info", "warning", "high", "critical")


class AlertMessage(BaseModel):
    """One alert transition: what subscribers, the SSE stream and webhooks receive."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    v: Literal[1] = 1
    alert_id: str
    transition: Literal["opened", "updated", "escalated", "acknowledged", "resolved"]
    state: Literal["open", "acknowledged", "resolved"]
    kind: str
    severity: Literal["info", "warning", "high", "critical"]
    enterprise: str
    device: str
    sensor: str | None = None
    sensor_id: int | None = None
    workplace: str | None = None
    quantity: str | None = None
    substance: str | None = None
    value: float | None = Field(default=None, description="measured value, in `unit`")
    unit: str = ""
    threshold: float | None = Field(default=None, description="threshold, in `threshold_unit`")
    threshold_unit: str = ""
    time_left_s: float | None = Field(
        default=None, description="projections and trends: seconds until the limit is reached"
    )
    message: str
    at: datetime = Field(description="when the transition happened (sample time or clock)")
    opened_at: datetime
    sent_at: datetime
    reason: str | None = None
    actor: str | None = None
    comment: str | None = None
    action: str | None = Field(
        default=None, description="acknowledged: the action taken; resolved: the cause found"
    )
    escalations: int = 0
    source: Literal["engine", "api"] = "engine"

    def topic(self, prefix: str) -> str:
        return alerts_topic(prefix, self.enterprise, self.kind)

    def payload(self) -> bytes:
        return self.model_dump_json().encode()


def decode_alert(topic: str, payload: bytes) -> AlertMessage:
    """An alert received on ``topic``, for every subscriber of the alert topics (the API's live
    stream, the engine taking people's transitions). The broker's ACL decides who may publish on
    an enterprise's topic, not what the payload says, so the enterprise and kind come from the
    topic and a payload naming others is refused: ``ProtocolError`` (``topic_mismatch``; or
    ``bad_topic``, ``schema``), never anything else whatever the bytes."""
    try:
        where = parse_alert_topic(topic)
    except ValueError as exc:
        raise ProtocolError(RejectReason.BAD_TOPIC, str(exc)) from None
    try:
        message = AlertMessage.model_validate_json(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        where_in = ".".join(str(p) for p in err["loc"]) or "message"
        raise ProtocolError(RejectReason.SCHEMA, f"alert {where_in}: {err['msg']}") from None
    if message.enterprise != where.enterprise or message.kind != where.kind:
        raise ProtocolError(
            RejectReason.TOPIC_MISMATCH,
            f"alert {message.alert_id} names enterprise {message.enterprise!r} and kind "
            f"{message.kind!r} but came on {topic!r}",
        )
    return message


def alerts_subscription(prefix: str) -> str:
    """Every enterprise's alerts of every kind."""
    return f"{prefix}/{WIRE_VERSION_SEGMENT}/+/alerts/+"


def severity_rank(label: str) -> int:
    """0 for info … 3 for critical."""
    return SEVERITIES.index(label)


def wanted(message: AlertMessage, min_severity: str | None, kinds: tuple[str, ...] | None) -> bool:
    """Whether a subscriber with these preferences gets ``message``. Transitions that end or
    change an alert the subscriber received (acknowledged, resolved) pass whenever the alert's
    severity does."""
    if min_severity is not None and severity_rank(message.severity) < severity_rank(min_severity):
        return False
    return kinds is None or message.kind in kinds
