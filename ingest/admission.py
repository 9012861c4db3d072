"""The one admission path of a readings message, for ingest and the alert engine: the wire
checks (``vocabulary.protocol.admission``: device topic, decodes, payload's device is the
topic's), then the registry: the device is known, and belongs to the topic's enterprise.

Each caller brings its own device lookup (ingest's cache of ``DeviceInfo``, the engine's
registered subjects), so the order of the checks and the refusals' reasons are the same
everywhere while what a device is stays the caller's. The topic is read first and separately
(``read_topic``) because the engine decides on it alone before decoding (status messages,
enterprises it does not own).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from vocabulary.protocol import DecodedMessage, DeviceTopic, RejectReason
from vocabulary.protocol.admission import Refusal, decode_for_topic, read_topic

D = TypeVar("D")

__all__ = ["Admitted", "Refusal", "admit", "read_topic"]


@dataclass(frozen=True, slots=True)
class Admitted(Generic[D]):
    """A readings message of a registered device, published under its enterprise's topic."""

    where: DeviceTopic
    message: DecodedMessage
    device: D


async def admit(
    where: DeviceTopic,
    payload: bytes,
    *,
    max_bytes: int,
    lookup: Callable[[str], Awaitable[D | None]],
    enterprise_of: Callable[[D], str],
) -> Admitted[D] | Refusal:
    """Admit ``payload`` published under ``where`` (from :func:`read_topic`), or say why not.

    ``lookup`` finds a device by code (None: unknown); ``enterprise_of`` names its enterprise."""
    decoded = decode_for_topic(where, payload, max_bytes=max_bytes)
    if isinstance(decoded, Refusal):
        return decoded
    message = decoded.message
    device = await lookup(message.device)
    if device is None:
        return Refusal(
            RejectReason.UNKNOWN_DEVICE,
            f"device {message.device!r} is not registered; add it with `qorgau devices add`",
            message.device,
            message,
        )
    enterprise = enterprise_of(device)
    if enterprise != where.enterprise:
        return Refusal(
            RejectReason.TOPIC_MISMATCH,
            f"device {message.device!r} belongs to enterprise {enterprise!r}, not "
            f"{where.enterprise!r}",
            message.device,
            message,
        )
    return Admitted(where, message, device)
