"""Readings messages: pydantic models, encoding, and a decoder that keeps good channels.

Decoding is lenient per channel and strict per envelope: a payload that is not JSON, not
version 1 or lacks a valid device/seq is refused whole (``ProtocolError``); a single bad channel
is returned in ``DecodedMessage.rejected`` with its reason while the others go on to storage.

``decode_readings`` is the one place where bytes from a device become Python objects, so it is
where hostile input is contained: whatever the bytes (deep nesting, invalid UTF-8, numbers no
float holds, lone surrogates, NUL characters), it returns a message whose every string is plain
text that PostgreSQL stores, or raises ``ProtocolError`` with a reason. Nothing else escapes it;
``tests/edge/test_protocol_fuzz.py`` holds it to that.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from vocabulary.protocol.errors import ProtocolError, RejectReason
from vocabulary.protocol.quantities import (
    QUANTITIES_WITH_SUBSTANCE,
    UNITS_BY_QUANTITY,
    Quantity,
    normalise_unit,
)

PROTOCOL_VERSION: Final = 1
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_CHANNELS = 64
MAX_VALUES_PER_CHANNEL = 3600
# A valid message nests four levels (message, channels, channel, values). Deeper input is kept
# out of everything that walks it recursively (json.dumps of a rejected channel for the
# quarantine, the standard library parser).
MAX_NESTING = 8

IDENTIFIER_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN)
]
# Substance and dust ids of the norms profiles (CO, H2S, silica_10_70): the same characters as
# the registry takes, so an auto-registered sensor's substance is always storable text.
SUBSTANCE_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class Channel(BaseModel):
    """Samples of one sensor; ``values[i]`` was taken at ``t0 + i·period_s`` or at
    ``t0 + offsets_s[i]``.

    NaN and infinite values are accepted here (JSON tokens ``NaN``/``Infinity``) because they are
    a measurement fault, not a format fault: ingest quarantines those samples alone.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    sensor: Identifier
    quantity: Quantity
    unit: str
    substance: Annotated[str, StringConstraints(pattern=SUBSTANCE_PATTERN)] | None = None
    t0: AwareDatetime
    period_s: Annotated[float, Field(gt=0, le=86_400)] | None = None
    offsets_s: list[float] | None = None
    values: Annotated[list[float], Field(min_length=1, max_length=MAX_VALUES_PER_CHANNEL)]

    @field_validator("unit", mode="before")
    @classmethod
    def _canonical_unit(cls, unit: object) -> object:
        return normalise_unit(unit) if isinstance(unit, str) else unit

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.period_s is None) == (self.offsets_s is None):
            raise ValueError("give exactly one of period_s (regular sampling) or offsets_s")
        if self.offsets_s is not None:
            if len(self.offsets_s) != len(self.values):
                raise ValueError(
                    f"offsets_s has {len(self.offsets_s)} entries for {len(self.values)} values"
                )
            if any(b < a for a, b in zip(self.offsets_s, self.offsets_s[1:], strict=False)):
                raise ValueError("offsets_s must not decrease")
            if any(not math.isfinite(o) or o < 0 for o in self.offsets_s):
                raise ValueError("offsets_s must be finite and not negative")
        allowed = UNITS_BY_QUANTITY[self.quantity]
        if self.unit not in allowed:
            raise ValueError(
                f"unit {self.unit!r} is not valid for {self.quantity.value}; use one of {allowed}"
            )
        if self.quantity in QUANTITIES_WITH_SUBSTANCE and not self.substance:
            raise ValueError(f"{self.quantity.value} needs a substance (e.g. CO, H2S, silica)")
        try:
            self.end()
        except OverflowError:
            # Every consumer turns sample times into datetimes; refuse here what none can.
            raise ValueError(
                "the samples run past the year 9999; check t0 and the offsets"
            ) from None
        return self

    def times(self) -> list[datetime]:
        """Sample times (aware, UTC offset as sent)."""
        if self.period_s is not None:
            return [self.t0 + timedelta(seconds=i * self.period_s) for i in range(len(self.values))]
        assert self.offsets_s is not None
        return [self.t0 + timedelta(seconds=o) for o in self.offsets_s]

    def offsets(self) -> list[float]:
        """Seconds after ``t0`` of each sample."""
        if self.period_s is not None:
            return [i * self.period_s for i in range(len(self.values))]
        assert self.offsets_s is not None
        return list(self.offsets_s)

    def end(self) -> datetime:
        """Time of the last sample."""
        return self.t0 + timedelta(seconds=self.offsets()[-1])


class ReadingsMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = PROTOCOL_VERSION
    device: Identifier
    seq: Annotated[int, Field(ge=0, le=2**63 - 1)]
    sent_at: AwareDatetime | None = None
    channels: Annotated[list[Channel], Field(min_length=1, max_length=MAX_CHANNELS)]


class _Envelope(BaseModel):
    """The message without its channels, validated before the channels one by one."""

    model_config = ConfigDict(extra="forbid")

    v: int
    device: Identifier
    seq: Annotated[int, Field(ge=0, le=2**63 - 1)]
    sent_at: AwareDatetime | None = None
    channels: Annotated[list[Any], Field(min_length=1, max_length=MAX_CHANNELS)]


@dataclass(frozen=True, slots=True)
class RejectedChannel:
    index: int
    sensor: str | None
    reason: RejectReason
    detail: str
    raw: Any


@dataclass(frozen=True, slots=True)
class DecodedMessage:
    device: str
    seq: int
    sent_at: datetime | None
    channels: tuple[Channel, ...]
    rejected: tuple[RejectedChannel, ...] = field(default=())


def encode_readings(message: ReadingsMessage) -> bytes:
    return message.model_dump_json(exclude_none=True).encode()


def _loads(payload: bytes) -> Any:
    """Parse JSON; every failure becomes a ``ProtocolError`` with a reason."""
    try:
        import orjson  # the server extra has it; an edge device decodes nothing

        return orjson.loads(payload)
    except ImportError:
        pass
    except orjson.JSONDecodeError:
        # orjson refuses NaN/Infinity tokens, numbers beyond 64 bits or a double, and nesting
        # deeper than 1024; the standard library reads the first so that such a value is
        # quarantined as non-finite instead of the whole payload as malformed.
        pass
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            RejectReason.MALFORMED_JSON,
            f"the payload is not valid UTF-8 (byte {exc.start}: {exc.reason}); send UTF-8 JSON",
        ) from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ProtocolError(
            RejectReason.TOO_DEEP,
            "JSON nested deeper than the parser follows; a readings message nests 4 levels",
        ) from None
    except ValueError as exc:  # JSONDecodeError, and integers of more than 4300 digits
        raise ProtocolError(RejectReason.MALFORMED_JSON, str(exc)[:200]) from None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` containers; iterative, so any depth is safe."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "message"
    return f"{where}: {err['msg']}"


def decode_readings(payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> DecodedMessage:
    """Decode a v1 readings payload.

    Raises ``ProtocolError`` (and nothing else, whatever the bytes) when the message as a whole
    is unusable; returns bad channels in ``rejected`` (reason ``schema`` or ``too_deep``) next to
    the good ones.
    """
    if len(payload) > max_bytes:
        raise ProtocolError(
            RejectReason.OVERSIZED, f"payload is {len(payload)} bytes, the limit is {max_bytes}"
        )
    raw = _loads(payload)
    if not isinstance(raw, dict):
        raise ProtocolError(
            RejectReason.SCHEMA, f"payload must be a JSON object, not {_json_kind(raw)}"
        )
    version = raw.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            RejectReason.UNSUPPORTED_VERSION,
            # reprlib: bounded however deep or long the value is
            f"wire format version {reprlib.repr(version)}; this ingest speaks v{PROTOCOL_VERSION}",
        )
    try:
        envelope = _Envelope.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError(RejectReason.SCHEMA, _first_error(exc)) from None

    good: list[Channel] = []
    rejected: list[RejectedChannel] = []
    for index, raw_channel in enumerate(envelope.channels):
        try:
            good.append(Channel.model_validate(raw_channel))
        except ValidationError as exc:
            detail = _first_error(exc).removeprefix("message: ")
            rejected.append(_rejected_channel(index, raw_channel, f"channels.{index}: {detail}"))
    return DecodedMessage(
        device=envelope.device,
        seq=envelope.seq,
        sent_at=envelope.sent_at,
        channels=tuple(good),
        rejected=tuple(rejected),
    )


def _rejected_channel(index: int, raw: Any, detail: str) -> RejectedChannel:
    sensor = raw.get("sensor") if isinstance(raw, dict) else None
    # Only a name that could be a sensor's is kept as one: the quarantine stores it as text.
    name = (
        sensor
        if isinstance(sensor, str) and len(sensor) <= 128 and _IDENTIFIER.fullmatch(sensor)
        else None
    )
    if _deeper_than(raw, MAX_NESTING - 2):  # the channel sits two levels down
        return RejectedChannel(
            index,
            name,
            RejectReason.TOO_DEEP,
            f"channels.{index}: nested deeper than a readings message can be "
            f"({MAX_NESTING} levels)",
            None,
        )
    return RejectedChannel(index, name, RejectReason.SCHEMA, detail, raw)


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")
