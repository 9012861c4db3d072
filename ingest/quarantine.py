"""The two ways ingest sets a message aside, as the records it stores and the log lines and
counters it leaves:

- **quarantine**: what is wrong is in the message (unreadable, another device's, a sample out
  of range); stored with its reason at once, never retried;
- **dead letter**: processing failed ``QORGAU_INGEST_MAX_ATTEMPTS`` times for a reason outside
  the message (a bug, a registry row the database refuses); stored whole, for replay.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from ingest.metrics import IngestMetrics
from ingest.validate import Rejection
from store.deadletters import DeadLetterRecord, DeadLetterStage, storable_text
from vocabulary.protocol import DecodedMessage, RejectReason, parse_device_topic
from vocabulary.protocol.admission import Refusal

log = logging.getLogger(__name__)


@dataclass(slots=True)
class QuarantineRecord:
    topic: str
    device: str | None
    seq: int | None
    sensor: str | None
    reason: RejectReason
    detail: str
    payload: bytes | None
    payload_bytes: int

    def row(self) -> tuple[Any, ...]:
        # The texts may quote what a device sent (a lone surrogate, a NUL): stored escaped.
        return (
            storable_text(self.topic),
            None if self.device is None else storable_text(self.device),
            self.seq,
            None if self.sensor is None else storable_text(self.sensor),
            self.reason.value,
            storable_text(self.detail),
            self.payload,
            self.payload_bytes,
        )


def quarantine_record(
    topic: str,
    device: str | None,
    seq: int | None,
    sensor: str | None,
    reason: RejectReason,
    detail: str,
    payload: bytes | None,
    *,
    payload_cap: int,
) -> QuarantineRecord:
    """A record keeping at most ``payload_cap`` bytes of the payload (and its full size)."""
    return QuarantineRecord(
        topic=topic,
        device=device,
        seq=seq,
        sensor=sensor,
        reason=reason,
        detail=detail[:2000],
        payload=payload[:payload_cap] if payload is not None else None,
        payload_bytes=len(payload) if payload is not None else 0,
    )


def refused_record(
    topic: str, refusal: Refusal, payload: bytes, *, payload_cap: int
) -> QuarantineRecord:
    """The record of a message refused whole by admission."""
    return quarantine_record(
        topic,
        refusal.device,
        refusal.seq,
        None,
        refusal.reason,
        refusal.detail,
        payload,
        payload_cap=payload_cap,
    )


def channel_record(
    topic: str, decoded: DecodedMessage, rejection: Rejection, *, payload_cap: int
) -> QuarantineRecord:
    """The record of one rejected channel or sample: its raw JSON stands for the payload."""
    raw = json.dumps(rejection.raw, default=str).encode() if rejection.raw is not None else None
    return quarantine_record(
        topic,
        decoded.device,
        decoded.seq,
        rejection.sensor,
        rejection.reason,
        rejection.detail,
        raw,
        payload_cap=payload_cap,
    )


def describe(exc: BaseException) -> str:
    """An error as stored and reported: its type and text, bounded."""
    return f"{type(exc).__name__}: {str(exc).strip()}"[:2000]


def dead_letter_record(
    *,
    client_id: str,
    stage: DeadLetterStage,
    topic: str,
    device: str | None,
    seq: int | None,
    attempts: int,
    exc: BaseException,
    payload: bytes,
) -> DeadLetterRecord:
    """The whole message with its last error; the device from the topic when not known yet."""
    if device is None:
        with contextlib.suppress(ValueError):
            device = parse_device_topic(topic).device
    return DeadLetterRecord(
        client_id=client_id,
        stage=stage,
        topic=topic,
        device=device,
        seq=seq,
        attempts=attempts,
        error=describe(exc),
        payload=payload,
    )


def report_set_aside(
    metrics: IngestMetrics,
    quarantined: list[QuarantineRecord],
    dead_letters: list[DeadLetterRecord],
) -> None:
    """Count and log what a commit set aside: somebody must be able to find out why."""
    for dead in dead_letters:
        metrics.dead_letters.labels(dead.stage).inc()
        log.error(
            "dead letter (%s, %d attempts) from %s device=%s seq=%s: %s",
            dead.stage,
            dead.attempts,
            dead.topic,
            dead.device,
            dead.seq,
            dead.error,
        )
    for rec in quarantined:
        metrics.quarantined.labels(rec.reason.value).inc()
        log.warning(
            "quarantined (%s) from %s device=%s seq=%s sensor=%s: %s",
            rec.reason.value,
            rec.topic,
            rec.device,
            rec.seq,
            rec.sensor,
            rec.detail,
        )
