"""Device status: the retained message on ``{prefix}/v1/{enterprise}/{device}/status``.

The agent publishes it (retained, QoS 1) when it connects and then periodically, and leaves an
``online: false`` last will with the broker for when it vanishes. Readers must ignore fields
they do not know: newer agents may add some. ``{"online": false}`` alone is a valid status.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from vocabulary.protocol.errors import ProtocolError, RejectReason

Count = Annotated[int, Field(ge=0)]


class OutboxStatus(BaseModel):
    """What the agent holds and what it had to give up (lifetime totals of its outbox)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    pending_messages: Count = 0
    pending_readings: Count = 0
    used_bytes: Count = 0
    max_bytes: Count = 0
    dropped_messages: Count = 0  # dropped oldest-first at the disk cap, never delivered
    dropped_readings: Count = 0
    refused_messages: Count = 0  # refused for good by the broker
    refused_readings: Count = 0


class DeviceStatus(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    online: bool
    device: str | None = None
    at: AwareDatetime | None = None
    reason: str | None = None  # why offline: "shutdown" or "connection lost"
    agent: str | None = None
    next_seq: Count | None = None
    outbox: OutboxStatus | None = None


def encode_status(status: DeviceStatus) -> bytes:
    return status.model_dump_json(exclude_none=True).encode()


def decode_status(payload: bytes) -> DeviceStatus:
    try:
        return DeviceStatus.model_validate_json(payload)
    except ValidationError as exc:
        detail = f"device status: {exc.errors()[0]['msg']}"
        raise ProtocolError(RejectReason.SCHEMA, detail) from None
