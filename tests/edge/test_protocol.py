"""The wire format, with no broker: encoding round trips, and every refusal names its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vocabulary.protocol import (
    Channel,
    ProtocolError,
    Quantity,
    ReadingsMessage,
    RejectReason,
    decode_readings,
    encode_readings,
    parse_device_topic,
    readings_subscription,
    readings_topic,
)

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def message(**channel_overrides: object) -> dict[str, object]:
    channel: dict[str, object] = {
        "sensor": "d1.noise",
        "quantity": "noise_laeq",
        "unit": "dB(A)",
        "t0": T0.isoformat(),
        "period_s": 1.0,
        "values": [80.0, 81.5],
    }
    channel.update(channel_overrides)
    return {"v": 1, "device": "d1", "seq": 5, "channels": [channel]}


def payload(obj: object) -> bytes:
    return json.dumps(obj).encode()


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(values=st.lists(finite, min_size=1, max_size=50), seq=st.integers(0, 2**62))
def test_encode_then_decode_gives_the_same_samples(values: list[float], seq: int) -> None:
    original = ReadingsMessage(
        device="dev-1",
        seq=seq,
        channels=[
            Channel(
                sensor="dev-1.co",
                quantity=Quantity.GAS,
                unit="mg/m3",
                substance="CO",
                t0=T0,
                period_s=0.5,
                values=values,
            )
        ],
    )
    decoded = decode_readings(encode_readings(original))
    assert decoded.seq == seq
    assert decoded.rejected == ()
    (channel,) = decoded.channels
    assert channel.values == values
    assert channel.times()[-1] == T0 + timedelta(seconds=0.5 * (len(values) - 1))


def test_explicit_offsets_give_explicit_times() -> None:
    decoded = decode_readings(payload(message(period_s=None, offsets_s=[0.0, 2.5])))
    assert decoded.channels[0].times() == [T0, T0 + timedelta(seconds=2.5)]


def test_unit_spellings_are_made_canonical() -> None:
    decoded = decode_readings(payload(message(unit="dBA")))
    assert decoded.channels[0].unit == "dB(A)"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not json", RejectReason.MALFORMED_JSON),
        (b"[1, 2]", RejectReason.SCHEMA),
        (payload({**message(), "v": 2}), RejectReason.UNSUPPORTED_VERSION),
        (payload({**message(), "seq": -1}), RejectReason.SCHEMA),
        (payload({**message(), "channels": []}), RejectReason.SCHEMA),
        (payload({k: v for k, v in message().items() if k != "device"}), RejectReason.SCHEMA),
        (b"{" + b" " * 300_000 + b"}", RejectReason.OVERSIZED),
    ],
)
def test_unusable_messages_are_refused_whole_with_a_reason(
    raw: bytes, reason: RejectReason
) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_readings(raw)
    assert caught.value.reason is reason
    assert caught.value.detail


@pytest.mark.parametrize(
    "bad",
    [
        {"unit": "ppm"},  # not a unit of noise
        {"period_s": None},  # neither period nor offsets
        {"offsets_s": [0.0, 1.0]},  # both
        {"period_s": None, "offsets_s": [1.0]},  # one offset for two values
        {"period_s": None, "offsets_s": [2.0, 1.0]},  # going back in time
        {"quantity": "radiation"},
        {"t0": "2026-11-23T08:00:00"},  # no zone
        {"values": []},
    ],
)
def test_a_bad_channel_is_rejected_alone(bad: dict[str, object]) -> None:
    raw = message()
    good_channel = dict(raw["channels"][0])  # type: ignore[index]
    good_channel["sensor"] = "d1.other"
    bad_channel = dict(raw["channels"][0], **bad)  # type: ignore[index]
    raw["channels"] = [bad_channel, good_channel]
    decoded = decode_readings(payload(raw))
    assert [c.sensor for c in decoded.channels] == ["d1.other"]
    (rejected,) = decoded.rejected
    assert rejected.index == 0
    assert rejected.reason is RejectReason.SCHEMA


def test_gas_needs_a_substance() -> None:
    decoded = decode_readings(payload(message(quantity="gas", unit="mg/m3")))
    assert decoded.rejected[0].reason is RejectReason.SCHEMA
    assert "substance" in decoded.rejected[0].detail


def test_nan_values_pass_the_format_for_ingest_to_quarantine_per_sample() -> None:
    decoded = decode_readings(payload(message()).replace(b"81.5", b"NaN"))
    assert decoded.rejected == ()
    assert decoded.channels[0].values[1] != decoded.channels[0].values[1]


def test_topics_round_trip() -> None:
    topic = readings_topic("t-1/qorgau", "ent", "dev-9")
    assert topic == "t-1/qorgau/v1/ent/dev-9/readings"
    parsed = parse_device_topic(topic)
    assert (parsed.prefix, parsed.enterprise, parsed.device, parsed.kind) == (
        "t-1/qorgau",
        "ent",
        "dev-9",
        "readings",
    )
    assert readings_subscription("qorgau", "g") == "$share/g/qorgau/v1/+/+/readings"
    with pytest.raises(ValueError, match="not of the form"):
        parse_device_topic("qorgau/v2/ent/dev/readings")
    with pytest.raises(ValueError, match="topic segment"):
        readings_topic("qorgau", "ent/x", "dev")


def test_device_status_round_trips_and_old_and_new_agents_are_understood() -> None:
    from vocabulary.protocol import DeviceStatus, OutboxStatus, decode_status, encode_status

    status = DeviceStatus(
        online=True,
        device="d1",
        at=T0,
        next_seq=7,
        outbox=OutboxStatus(pending_messages=2, dropped_messages=3, dropped_readings=24),
    )
    assert decode_status(encode_status(status)) == status
    assert decode_status(b'{"online": false}') == DeviceStatus(online=False)  # the skeleton's
    newer = decode_status(b'{"online": true, "battery_pct": 80, "outbox": {"queue": 1}}')
    assert newer.online
    with pytest.raises(ProtocolError, match="device status"):
        decode_status(b'{"device": "d1"}')
