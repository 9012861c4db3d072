"""Whatever bytes arrive on a readings or alert topic, the decoder and ingest's validation have
two outcomes only: accepted (and then every text is storable and every sample time computable),
or refused with a reason (``ProtocolError``, a rejected channel, a quarantined sample). No other
exception, so no message can stop ingest, the alert engine or the API's live view. Pure: no
broker, no database."""

from __future__ import annotations

import functools
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.live import decode_live
from ingest.quarantine import channel_record, quarantine_record
from ingest.settings import IngestSettings
from ingest.validate import TimeWindow, check_channels, sensor_range
from store.registry import DeviceInfo, SensorInfo
from tests.support import examples
from vocabulary.protocol import (
    DecodedMessage,
    ProtocolError,
    Quantity,
    RejectReason,
    decode_readings,
    readings_topic,
)
from vocabulary.protocol.alerts import decode_alert

NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = TimeWindow.around(NOW, max_past_s=28 * 86_400, max_future_s=300)
TOPIC = readings_topic("fuzz", "ent", "d1")
ALERT_TOPIC = "fuzz/v1/ent/alerts/threshold"
DEEP = b"[" * 1100 + b"]" * 1100  # the message that stopped ingest for good (issue 13)


@functools.cache
def payload_cap() -> int:
    """What ingest keeps of a quarantined payload by default: its records are what is checked."""
    settings = IngestSettings(
        database_url="postgresql://nobody@127.0.0.1:9/none", ingest_client_id="fuzz"
    )
    return settings.ingest_quarantine_payload_bytes


def registered() -> DeviceInfo:
    device = DeviceInfo(id=1, code="d1", enterprise_id=1, enterprise_code="ent", workplace_id=None)
    for sid, (code, quantity, unit, substance, lo, hi) in enumerate(
        [
            ("d1.noise", "noise_laeq", "dB(A)", None, 30.0, 140.0),
            ("d1.co", "gas", "mg/m3", "CO", None, None),
        ]
    ):
        device.sensors[code] = SensorInfo(sid, 1, code, quantity, unit, substance, None, lo, hi)
    return device


def storable(text: str | None) -> bool:
    """What PostgreSQL's text takes: valid UTF-8 (no lone surrogate) and no NUL."""
    if text is None:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def assert_quarantinable(row: tuple[Any, ...]) -> None:
    topic, device, _seq, sensor, reason, detail, _payload, _size = row
    assert reason in {r.value for r in RejectReason}
    assert detail, "a quarantine record always says why"
    for text in (topic, device, sensor, detail):
        assert storable(text), text


def outcome(payload: bytes) -> str:
    """Run ``payload`` through every consumer; returns "refused" or "accepted", and fails the
    test on anything else."""
    live = decode_live(TOPIC, payload)  # the API's live view: a message to show, or None
    with pytest.raises(ProtocolError):  # a readings message is never an alert
        decode_alert(ALERT_TOPIC, payload)
    decoded = decode_or_refuse(payload)
    if isinstance(decoded, ProtocolError):
        assert isinstance(decoded.reason, RejectReason)
        assert decoded.detail
        record = quarantine_record(
            TOPIC,
            "d1",
            None,
            None,
            decoded.reason,
            decoded.detail,
            payload,
            payload_cap=payload_cap(),
        )
        assert_quarantinable(record.row())
        assert live is None
        return "refused"
    assert (live is not None) == (decoded.device == "d1"), "shown if it is the topic's device"
    accepted(decoded)
    return "accepted"


def decode_or_refuse(payload: bytes) -> DecodedMessage | ProtocolError:
    try:
        return decode_readings(payload)
    except ProtocolError as exc:
        return exc


def accepted(decoded: DecodedMessage) -> None:
    assert storable(decoded.device)
    assert 0 <= decoded.seq < 2**63
    for channel in decoded.channels:
        for text in (channel.sensor, channel.unit, channel.substance):
            assert storable(text)
        assert len(channel.times()) == len(channel.values)  # representable datetimes
        channel.end()
    for rejected in decoded.rejected:
        assert rejected.reason in (RejectReason.SCHEMA, RejectReason.TOO_DEEP)
        assert rejected.detail
        json.dumps(rejected.raw, default=str)  # what the quarantine keeps of the channel
    checked = check_channels(decoded, registered(), window=WINDOW, auto_register=True)
    for rejection in checked.rejections:
        record = channel_record(TOPIC, decoded, rejection, payload_cap=payload_cap())
        assert_quarantinable(record.row())
    for rows in checked.channels:  # only finite samples in the instrument's range are kept
        lo, hi = sensor_range(rows.sensor)
        assert bool(((rows.values >= lo) & (rows.values <= hi)).all())
    for channel in checked.new_sensors:
        assert channel.sensor.startswith("d1.")  # a device introduces only its own sensors


# ------------------------------------------------------------------------- the named corpus

MESSAGE: dict[str, Any] = {
    "v": 1,
    "device": "d1",
    "seq": 7,
    "channels": [
        {
            "sensor": "d1.noise",
            "quantity": "noise_laeq",
            "unit": "dB(A)",
            "t0": (NOW - timedelta(minutes=1)).isoformat(),
            "period_s": 1.0,
            "values": [80.0, 81.0],
        }
    ],
}


def with_channel(**override: Any) -> bytes:
    channel = {**MESSAGE["channels"][0], **override}
    return json.dumps({**MESSAGE, "channels": [channel]}, allow_nan=True).encode()


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def raw_with_values(values_text: bytes) -> bytes:
    return with_channel(values=[0.0]).replace(b"[0.0]", values_text)


CORPUS: list[tuple[str, bytes, str]] = [  # name, payload, the reason it must be refused with
    ("nested 1100 arrays deep", DEEP, "too_deep"),
    ("nested 1100 objects deep", b'{"a":' * 1100 + b"1" + b"}" * 1100, "too_deep"),
    ("deep nesting inside a channel", raw_with_values(b"[" * 1100 + b"]" * 1100), "too_deep"),
    ("deep nesting with a NaN", raw_with_values(b"[" * 990 + b"NaN" + b"]" * 990), "too_deep"),
    ("invalid UTF-8", b'{"v": 1, "device": "d\xff1"}', "malformed_json"),
    ("UTF-16", json.dumps(MESSAGE).encode("utf-16"), "malformed_json"),
    ("not JSON", b"{not json", "malformed_json"),
    ("empty", b"", "malformed_json"),
    ("an array", b"[1, 2, 3]", "schema"),
    ("a string", b'"readings"', "schema"),
    ("null", b"null", "schema"),
    ("an integer of 5000 digits", raw_with_values(b"[" + b"9" * 5000 + b"]"), "malformed_json"),
    ("seq beyond 64 bits", json.dumps({**MESSAGE, "seq": 2**70}).encode(), "schema"),
    ("seq NaN", json.dumps({**MESSAGE, "seq": math.nan}).encode(), "schema"),
    ("version deep", b'{"v": ' + b"[" * 500 + b"]" * 500 + b"}", "unsupported_version"),
    ("no channels", json.dumps({**MESSAGE, "channels": []}).encode(), "schema"),
]


@pytest.mark.parametrize(("name", "payload", "reason"), CORPUS, ids=[c[0] for c in CORPUS])
def test_hostile_payloads_are_refused_with_their_reason(
    name: str, payload: bytes, reason: str
) -> None:
    decoded = decode_or_refuse(payload)
    if isinstance(decoded, ProtocolError):
        assert decoded.reason.value == reason, decoded.detail
    else:  # refused channel by channel
        assert [r.reason.value for r in decoded.rejected] == [reason]
        assert decoded.channels == ()
    outcome(payload)


CHANNEL_CORPUS: list[tuple[str, bytes, str]] = [  # refused per channel or per sample
    (
        "lone surrogate in a substance",
        with_channel(quantity="gas", unit="mg/m3", substance="C\ud800O"),
        "schema",
    ),
    (
        "NUL in a substance",
        with_channel(quantity="gas", unit="mg/m3", substance="C\x00O"),
        "schema",
    ),
    ("lone surrogate in a unit", with_channel(unit="dB\ud800"), "schema"),
    (
        "samples past the year 9999",
        with_channel(t0="9999-12-31T23:59:00Z", period_s=3600.0),
        "schema",
    ),
    ("offsets of 1e300 s", with_channel(period_s=None, offsets_s=[0, 1e300]), "schema"),
    ("a channel nested 20 deep", with_channel(extra=nested(20)), "too_deep"),
    ("Infinity literal", raw_with_values(b"[80.0, Infinity, -Infinity]"), "non_finite"),
    ("NaN literal", raw_with_values(b"[NaN, 80.0]"), "non_finite"),
    ("1e400", raw_with_values(b"[1e400, 80.0]"), "non_finite"),
    ("an integer of 30 digits", raw_with_values(b"[" + b"9" * 30 + b", 80.0]"), "out_of_range"),
    ("a sensor of another device", with_channel(sensor="bdev-1.noise"), "foreign_sensor"),
    ("a sensor not named after a device", with_channel(sensor="noise"), "foreign_sensor"),
]


@pytest.mark.parametrize(
    ("name", "payload", "reason"), CHANNEL_CORPUS, ids=[c[0] for c in CHANNEL_CORPUS]
)
def test_hostile_channels_and_samples_are_quarantined_with_their_reason(
    name: str, payload: bytes, reason: str
) -> None:
    decoded = decode_readings(payload)
    checked = check_channels(decoded, registered(), window=WINDOW, auto_register=True)
    assert [r.reason.value for r in checked.rejections] == [reason]
    assert checked.new_sensors == []
    assert outcome(payload) == "accepted"


def test_a_good_message_is_accepted_whole() -> None:
    decoded = decode_readings(with_channel())
    checked = check_channels(decoded, registered(), window=WINDOW, auto_register=True)
    assert checked.rejections == []
    assert checked.readings == 2
    live = decode_live(TOPIC, with_channel())
    assert live is not None
    assert [len(c.values) for c in live.channels] == [2]


def test_the_live_view_skips_a_payload_naming_another_device_than_its_topic() -> None:
    assert decode_live(TOPIC.replace("/d1/", "/d2/"), with_channel()) is None


# ------------------------------------------------------------------------- generated input

big_ints = st.integers(min_value=2**63, max_value=10**400) | st.integers(max_value=-(2**63))
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | big_ints
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(exclude_categories=()), max_size=12)  # surrogates and NUL too
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=16,
)


def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes any JSON at all."""
    return st.one_of(valid, valid, valid, json_values)


times = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ).map(datetime.isoformat),
    st.sampled_from(
        [
            (NOW - timedelta(minutes=1)).isoformat(),
            "9999-12-31T23:59:59+00:00",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "1970-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-23T08:00:00",
        ]
    ),
)
samples = st.lists(st.floats(allow_nan=True, allow_infinity=True) | big_ints, max_size=12)
channels = st.fixed_dictionaries(
    {
        "sensor": field(st.sampled_from(["d1.noise", "d1.co", "d1.new", "d2.noise", "x", ""])),
        "quantity": field(st.sampled_from([q.value for q in Quantity])),
        "unit": field(st.sampled_from(["dB(A)", "dBA", "mg/m3", "ppm", "m/s2", "%LEL", "dB"])),
        "t0": field(times),
        "values": field(samples),
    },
    optional={
        "period_s": field(st.floats(allow_nan=True, allow_infinity=True)),
        "offsets_s": field(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=12)),
        "substance": field(st.sampled_from(["CO", "H2S", "silica_10_70", "C O", "\ud800"])),
        "extra": json_values,
    },
)
messages = st.fixed_dictionaries(
    {
        "v": field(st.just(1)),
        "device": field(st.sampled_from(["d1", "d2", "alerts", "d 1"])),
        "seq": field(st.integers(min_value=-1, max_value=2**64)),
        "channels": field(st.lists(channels, max_size=3)),
    },
    optional={"sent_at": field(times), "junk": json_values},
)


def serialise(obj: Any, ascii_only: bool) -> bytes:
    # ensure_ascii=False with a lone surrogate gives the bytes of CESU-8: invalid UTF-8.
    return json.dumps(obj, allow_nan=True, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


FUZZ = settings(
    max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ
@given(message=messages, ascii_only=st.booleans())
def test_structured_messages_are_accepted_or_refused_with_a_reason(
    message: dict[str, Any], ascii_only: bool
) -> None:
    outcome(serialise(message, ascii_only))


@FUZZ
@given(message=messages, cuts=st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=4))))
def test_mangled_messages_are_accepted_or_refused_with_a_reason(
    message: dict[str, Any], cuts: list[tuple[int, bytes]]
) -> None:
    payload = bytearray(serialise(message, ascii_only=True))
    for at, junk in cuts:  # bytes replaced, inserted or cut off, as on a bad link
        at %= len(payload) + 1
        payload[at : at + len(junk)] = junk
    outcome(bytes(payload))


@FUZZ
@given(payload=st.binary(max_size=4096))
@example(DEEP)
@example(b"\xed\xa0\x80")
@example(b'"\\ud800"')
def test_arbitrary_bytes_are_accepted_or_refused_with_a_reason(payload: bytes) -> None:
    assert outcome(payload) == "refused"


@FUZZ
@given(body=json_values | messages)
@example(DEEP)
def test_the_alert_consumers_refuse_anything_that_is_not_an_alert(body: Any) -> None:
    payload = body if isinstance(body, bytes) else serialise(body, ascii_only=True)
    with pytest.raises(ProtocolError):
        decode_alert(ALERT_TOPIC, payload)
