"""The wire half of admitting a readings message: its topic is a device topic, its payload
decodes, and the device the payload names is the topic's.

Every consumer of the readings topics applies these same checks in this order: ingest and the
alert engine (which go on to look the device up, ``ingest.admission``) and the API's live view
(which has no registry and stops here). A refusal says why with a ``RejectReason``, the one
vocabulary of refusals, so callers branch on the reason rather than on a message text.
"""

from __future__ import annotations

from dataclasses import dataclass

from vocabulary.protocol.errors import ProtocolError, RejectReason
from vocabulary.protocol.messages import MAX_PAYLOAD_BYTES, DecodedMessage, decode_readings
from vocabulary.protocol.topics import DeviceTopic, parse_device_topic


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message is not admitted, with what is known of its sender at that point."""

    reason: RejectReason
    detail: str
    device: str | None = None  # as the topic or the payload named it
    # The decoded message when the refusal came after decoding (its seq, its sent_at).
    message: DecodedMessage | None = None

    @property
    def seq(self) -> int | None:
        return None if self.message is None else self.message.seq


@dataclass(frozen=True, slots=True)
class Decoded:
    """A message whose payload is a readings message of the topic's device."""

    where: DeviceTopic
    message: DecodedMessage


def read_topic(topic: str) -> DeviceTopic | Refusal:
    """The topic as a device topic, or a ``bad_topic`` refusal naming the expected layout."""
    try:
        return parse_device_topic(topic)
    except ValueError as exc:
        return Refusal(RejectReason.BAD_TOPIC, str(exc))


def decode_for_topic(
    where: DeviceTopic, payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES
) -> Decoded | Refusal:
    """Decode ``payload`` published under ``where``. A payload naming another device than its
    topic is refused (``topic_mismatch``): the broker's ACL vouches for the topic only."""
    try:
        message = decode_readings(payload, max_bytes=max_bytes)
    except ProtocolError as exc:
        return Refusal(exc.reason, exc.detail, where.device)
    if message.device != where.device:
        return Refusal(
            RejectReason.TOPIC_MISMATCH,
            f"payload names device {message.device!r} but was published under device "
            f"{where.device!r}",
            message.device,
            message,
        )
    return Decoded(where, message)
