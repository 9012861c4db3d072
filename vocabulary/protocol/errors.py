"""Why a message or channel is refused. The reason codes are stable: they are stored with every
quarantined message and are a label of the ``qorgau_ingest_quarantined_total`` metric."""

from __future__ import annotations

from enum import StrEnum

from vocabulary.errors import QorgauError


class RejectReason(StrEnum):
    OVERSIZED = "oversized"
    MALFORMED_JSON = "malformed_json"  # not JSON, not UTF-8, or a number no float can hold
    TOO_DEEP = "too_deep"  # nested deeper than any valid message (a parser-exhaustion attempt)
    UNSUPPORTED_VERSION = "unsupported_version"
    SCHEMA = "schema"
    TOPIC_MISMATCH = "topic_mismatch"
    BAD_TOPIC = "bad_topic"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_SENSOR = "unknown_sensor"
    FOREIGN_SENSOR = "foreign_sensor"  # a new sensor not named after the device that sends it
    UNIT_MISMATCH = "unit_mismatch"
    NON_FINITE = "non_finite"
    OUT_OF_RANGE = "out_of_range"
    FUTURE_TIMESTAMP = "future_timestamp"
    PAST_TIMESTAMP = "past_timestamp"  # older than ingest accepts: typically a reset device clock


class ProtocolError(QorgauError, ValueError):
    """A payload that is not a valid v1 readings message as a whole."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
