"""The one admission path: each refusal has its reason, the checks run in their order (nothing is
looked up for a message that fails the wire checks), and the live view's wire half agrees with
it. Pure: no broker, no database."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from ingest.admission import Admitted, Refusal, admit, read_topic
from vocabulary.protocol import DeviceTopic, RejectReason
from vocabulary.protocol.admission import Decoded, decode_for_topic

pytestmark = pytest.mark.anyio

TOPIC = "adm/v1/ent/dev-1/readings"


@dataclass(frozen=True)
class Device:
    code: str
    enterprise: str


class Registry:
    def __init__(self, *devices: Device) -> None:
        self.devices = {d.code: d for d in devices}
        self.asked: list[str] = []

    async def lookup(self, code: str) -> Device | None:
        self.asked.append(code)
        return self.devices.get(code)


def payload(device: str = "dev-1", seq: int = 4) -> bytes:
    channel = {
        "sensor": f"{device}.noise",
        "quantity": "noise_laeq",
        "unit": "dB(A)",
        "t0": "2026-12-03T08:00:00Z",
        "period_s": 1.0,
        "values": [80.0, 81.5],
    }
    return json.dumps({"v": 1, "device": device, "seq": seq, "channels": [channel]}).encode()


def where(topic: str = TOPIC) -> DeviceTopic:
    parsed = read_topic(topic)
    assert isinstance(parsed, DeviceTopic)
    return parsed


async def admitted(
    registry: Registry, body: bytes, topic: str = TOPIC, max_bytes: int = 65536
) -> Admitted[Device] | Refusal:
    return await admit(
        where(topic),
        body,
        max_bytes=max_bytes,
        lookup=registry.lookup,
        enterprise_of=lambda device: device.enterprise,
    )


def test_a_topic_that_is_not_a_device_topic_is_refused_as_bad_topic() -> None:
    refusal = read_topic("adm/v1/ent/alerts/threshold")
    assert isinstance(refusal, Refusal)
    assert (refusal.reason, refusal.device, refusal.seq) == (RejectReason.BAD_TOPIC, None, None)
    assert "{prefix}/v1/" in refusal.detail


async def test_a_registered_device_under_its_enterprise_is_admitted() -> None:
    registry = Registry(Device("dev-1", "ent"))
    result = await admitted(registry, payload())
    assert isinstance(result, Admitted)
    assert (result.device, result.message.seq, result.where.enterprise) == (
        Device("dev-1", "ent"),
        4,
        "ent",
    )


@pytest.mark.parametrize(
    ("body", "reason", "device"),
    [
        (b"{not json", RejectReason.MALFORMED_JSON, "dev-1"),
        (payload() + b" " * 100, RejectReason.OVERSIZED, "dev-1"),
        (payload(device="dev-2"), RejectReason.TOPIC_MISMATCH, "dev-2"),
    ],
)
async def test_wire_refusals_come_before_any_lookup(
    body: bytes, reason: RejectReason, device: str
) -> None:
    registry = Registry(Device("dev-1", "ent"), Device("dev-2", "ent"))
    result = await admitted(registry, body, max_bytes=len(payload()) + 10)
    assert isinstance(result, Refusal)
    assert (result.reason, result.device) == (reason, device)
    assert registry.asked == [], "a message refused on the wire costs no lookup"


async def test_an_unknown_device_is_refused_with_its_seq() -> None:
    registry = Registry()
    result = await admitted(registry, payload(seq=9))
    assert isinstance(result, Refusal)
    assert (result.reason, result.device, result.seq) == (RejectReason.UNKNOWN_DEVICE, "dev-1", 9)
    assert registry.asked == ["dev-1"]


async def test_a_device_under_another_enterprises_topic_is_a_topic_mismatch() -> None:
    registry = Registry(Device("dev-1", "other"))
    result = await admitted(registry, payload())
    assert isinstance(result, Refusal)
    assert result.reason is RejectReason.TOPIC_MISMATCH
    assert "'other'" in result.detail
    assert "'ent'" in result.detail


def test_the_wire_half_alone_needs_no_registry() -> None:
    assert isinstance(decode_for_topic(where(), payload()), Decoded)
    refusal = decode_for_topic(where(), payload(device="dev-2"))
    assert isinstance(refusal, Refusal)
    assert refusal.reason is RejectReason.TOPIC_MISMATCH
