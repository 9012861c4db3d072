"""The fast path stores a message exactly as the general path would, or leaves it to it: whenever
it passes a message whole, decoding and checking that message the general way quarantines
nothing and keeps the same readings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.fast_path import FastPath
from ingest.validate import TimeWindow, check_channels
from store.readings import ReadingBlock
from store.registry import DeviceInfo, SensorInfo
from vocabulary.protocol import ProtocolError, decode_readings

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
WINDOW = TimeWindow.around(NOW, max_past_s=28 * 86400, max_future_s=300)
PREFIX = "fp"


def _device() -> DeviceInfo:
    device = DeviceInfo(id=7, code="dev-1", enterprise_id=1, enterprise_code="ent", workplace_id=3)
    specs = [  # code, quantity, unit, substance, min, max
        ("dev-1.noise", "noise_laeq", "dB(A)", None, None, None),
        ("dev-1.co", "gas", "mg/m3", "CO", 0.0, 50.0),
        ("dev-1.hav", "vib_hav", "m/s2", None, None, None),
    ]
    for n, (code, quantity, unit, substance, lo, hi) in enumerate(specs):
        device.sensors[code] = SensorInfo(
            id=100 + n,
            device_id=7,
            code=code,
            quantity=quantity,
            unit=unit,
            substance=substance,
            workplace_id=3,
            min_value=lo,
            max_value=hi,
        )
    return device


DEVICE = _device()
TOPIC = f"{PREFIX}/v1/ent/dev-1/readings"

SPECS = {  # sensor: quantity, unit, substance (as registered above)
    "dev-1.noise": ("noise_laeq", "dB(A)", None),
    "dev-1.co": ("gas", "mg/m3", "CO"),
    "dev-1.hav": ("vib_hav", "m/s2", None),
}
recent = st.integers(-86400, 0).map(lambda s: NOW + timedelta(seconds=s))
times = st.one_of(
    recent.map(lambda t: t.isoformat()),
    recent.map(lambda t: t.isoformat().replace("+00:00", "Z")),
    recent.map(lambda t: t.astimezone(timezone(timedelta(hours=5))).isoformat()),
    recent.map(lambda t: t.isoformat(sep=" ")),
    recent.map(lambda t: t.isoformat(timespec="milliseconds")),
    st.integers(-400 * 86400, 3600).map(lambda s: (NOW + timedelta(seconds=s)).isoformat()),
    st.sampled_from(
        [
            "2026-12-03T07:00:00",
            "20261203T070000Z",
            "2026-02-30T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-12-03T07:00:00+24:00",
        ]
    ),
    st.integers(1_700_000_000, 1_800_000_000),
)
wild_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-5, 200),
    st.integers(2**53 - 2, 2**60),
    st.booleans(),
    st.just("1.5"),
    st.none(),
)
WILD: dict[str, Any] = {
    "sensor": st.sampled_from(["dev-1.new", "x y", "dev-2.noise", 5]),
    "quantity": st.sampled_from(["noise", "gas", "dust", None]),
    "unit": st.sampled_from(["dBA", "ppm", "m/s²", "mg/m³", ""]),
    "substance": st.sampled_from(["CO", "H2S", "bad substance", None]),
    "t0": times,
    "period_s": st.sampled_from([1, -1.0, 0.0, 86401.0, True, "1.0"]),
    "values": st.lists(wild_value, min_size=0, max_size=4),
    "offsets_s": st.just([0.0]),
    "extra": st.just(1),
}


@st.composite
def channels(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly what a device sends, now and then with one field made wrong or dropped."""
    sensor = draw(st.sampled_from(sorted(SPECS)))
    quantity, unit, substance = SPECS[sensor]
    channel: dict[str, Any] = {
        "sensor": sensor,
        "quantity": quantity,
        "unit": unit,
        "t0": draw(times if draw(st.booleans()) else recent.map(lambda t: t.isoformat())),
        "period_s": draw(st.sampled_from([1.0, 0.5, 0.1, 60.0])),
        "values": draw(st.lists(st.floats(0, 60) | st.integers(0, 60), min_size=1, max_size=5)),
    }
    if substance is not None:
        channel["substance"] = substance
    if draw(st.integers(0, 3)) == 0:
        key = draw(st.sampled_from(sorted(WILD)))
        channel[key] = draw(WILD[key])
    if draw(st.integers(0, 9)) == 0:
        del channel[draw(st.sampled_from(sorted(channel)))]
    return channel


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    message: dict[str, Any] = {
        "v": 1,
        "device": "dev-1",
        "seq": draw(st.integers(0, 2**63 - 1)),
        "channels": draw(st.lists(channels(), min_size=1, max_size=4)),
    }
    if draw(st.booleans()):
        message["sent_at"] = draw(times)
    if draw(st.integers(0, 4)) == 0:
        key = draw(st.sampled_from(["v", "device", "seq", "channels", "sent_at", "extra"]))
        message[key] = draw(st.sampled_from([2, True, -1, 2**63, "dev-2", [], None, "x"]))
    return message


def general_path(payload: bytes) -> tuple[ReadingBlock, int] | None:
    """What the general path stores and how many records it quarantines; None when it refuses
    the whole message."""
    try:
        decoded = decode_readings(payload)
    except ProtocolError:
        return None
    if decoded.device != DEVICE.code:
        return None
    checked = check_channels(decoded, DEVICE, window=WINDOW, auto_register=True)
    rejected = len(checked.rejections) + len(checked.new_sensors)
    blocks = [
        ReadingBlock(c.times_us, np.full(len(c.values), c.sensor.id, np.int32), c.values)
        for c in checked.channels
    ]
    return ReadingBlock.concat(blocks), rejected


def fast_path(path: FastPath, payload: bytes) -> ReadingBlock | None:
    envelope = path.decode(TOPIC, payload)
    if envelope is None:
        return None
    enterprise, code, seq, sent_at, raw_channels = envelope
    assert (enterprise, code) == ("ent", "dev-1")
    passed, slow = path.check([(0, DEVICE, seq, sent_at, raw_channels)], WINDOW)
    assert len(passed) + len(slow) == 1
    return passed[0].block if passed else None


@settings(max_examples=400, deadline=None)
@given(envelopes())
def test_what_the_fast_path_passes_the_general_path_stores_the_same(message: Any) -> None:
    same_as_general_path(FastPath(max_payload_bytes=262144), message)


# One path for a whole run: what it remembers from earlier messages (channel descriptions, their
# sensors and ranges) must not let a later message through that it would refuse fresh.
REMEMBERING = FastPath(max_payload_bytes=262144)


@settings(max_examples=400, deadline=None)
@given(envelopes())
def test_what_the_fast_path_remembers_changes_nothing_it_passes(message: Any) -> None:
    same_as_general_path(REMEMBERING, message)


def same_as_general_path(path: FastPath, message: Any) -> None:
    payload = json.dumps(message).encode()
    fast = fast_path(path, payload)
    if fast is None:
        return  # left to the general path: nothing to compare
    general = general_path(payload)
    assert general is not None, "the fast path passed a message the general path refuses"
    block, rejected = general
    assert rejected == 0, "the fast path passed a message with something to quarantine"
    assert fast.times_us.tolist() == block.times_us.tolist()
    assert fast.sensor_ids.tolist() == block.sensor_ids.tolist()
    assert fast.values.tobytes() == block.values.tobytes()


def test_the_messages_devices_send_take_the_fast_path() -> None:
    """Not only safe but used: the edge agent's usual message passes whole."""
    t0 = (NOW - timedelta(seconds=5)).isoformat()
    message = {
        "v": 1,
        "device": "dev-1",
        "seq": 12,
        "sent_at": NOW.isoformat(),
        "channels": [
            {
                "sensor": "dev-1.noise",
                "quantity": "noise_laeq",
                "unit": "dB(A)",
                "t0": t0,
                "period_s": 1.0,
                "values": [81.5],
            },
            {
                "sensor": "dev-1.co",
                "quantity": "gas",
                "unit": "mg/m3",
                "substance": "CO",
                "t0": t0,
                "period_s": 1.0,
                "values": [3.25],
            },
        ],
    }
    path = FastPath(max_payload_bytes=262144)
    block = fast_path(path, json.dumps(message).encode())
    assert block is not None
    assert block.sensor_ids.tolist() == [100, 101]
    assert block.values.tolist() == [81.5, 3.25]


def test_a_bad_sample_sends_only_its_message_to_the_general_path() -> None:
    """In a batch, a message with something to quarantine goes the general way; its neighbours
    still pass."""
    t0 = (NOW - timedelta(seconds=5)).isoformat()

    def message(seq: int, value: float) -> list[Any]:
        return [
            {
                "sensor": "dev-1.co",
                "quantity": "gas",
                "unit": "mg/m3",
                "substance": "CO",
                "t0": t0,
                "period_s": 1.0,
                "values": [value],
            }
        ]

    path = FastPath(max_payload_bytes=262144)
    batch = [(i, DEVICE, i, None, message(i, v)) for i, v in enumerate([1.0, 99.0, 2.0, 3.0])]
    passed, slow = path.check(batch, WINDOW)
    assert slow == [1]  # 99 mg/m3 is outside the sensor's registered range
    assert [p.index for p in passed] == [0, 2, 3]
    assert [p.block.values.tolist() for p in passed] == [[1.0], [2.0], [3.0]]
