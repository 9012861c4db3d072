"""Registry checks of ingest, with no services: what is kept and what is quarantined."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from ingest.validate import (
    PHYSICAL_RANGE_BY_UNIT,
    CheckedMessage,
    TimeWindow,
    channel_times_us,
    check_channels,
)
from store.readings import datetime_to_us
from store.registry import DeviceInfo, SensorInfo
from vocabulary.protocol import Channel, DecodedMessage, Quantity, RejectReason

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WINDOW = TimeWindow.around(NOW, max_past_s=30 * 86_400, max_future_s=300)


def sensor(code: str = "d1.co", **kw: object) -> SensorInfo:
    fields: dict[str, object] = {
        "id": 10,
        "device_id": 1,
        "code": code,
        "quantity": "gas",
        "unit": "mg/m3",
        "substance": "CO",
        "workplace_id": None,
        "min_value": 0.0,
        "max_value": 500.0,
    }
    fields.update(kw)
    return SensorInfo(**fields)  # type: ignore[arg-type]


def device(*sensors: SensorInfo) -> DeviceInfo:
    dev = DeviceInfo(id=1, code="d1", enterprise_id=1, enterprise_code="e", workplace_id=None)
    for s in sensors or (sensor(),):
        dev.sensors[s.code] = s
    return dev


def co(values: list[float], t0: datetime = NOW - timedelta(minutes=1), **kw: object) -> Channel:
    fields: dict[str, object] = {
        "sensor": "d1.co",
        "quantity": Quantity.GAS,
        "unit": "mg/m3",
        "substance": "CO",
        "t0": t0,
        "period_s": 1.0,
        "values": values,
    }
    fields.update(kw)
    return Channel(**fields)


def check(
    *channels: Channel, auto_register: bool = True, dev: DeviceInfo | None = None
) -> CheckedMessage:
    message = DecodedMessage(device="d1", seq=1, sent_at=None, channels=channels)
    return check_channels(message, dev or device(), window=WINDOW, auto_register=auto_register)


def test_good_samples_become_columns_with_their_times() -> None:
    t0 = NOW - timedelta(seconds=10)
    out = check(co([1.0, 2.0, 3.0], t0=t0))
    assert out.rejections == []
    [rows] = out.channels
    assert rows.sensor.id == 10
    expected = [datetime_to_us(t0 + timedelta(seconds=i)) for i in range(3)]
    assert rows.times_us.tolist() == expected
    assert rows.values.tolist() == [1.0, 2.0, 3.0]
    assert out.readings == 3


def test_times_match_the_wire_format_definition() -> None:
    t0 = datetime(2026, 11, 23, 8, 15, 0, 123_456, tzinfo=UTC)
    for channel in (
        co([0.0] * 50, t0=t0, period_s=0.1),
        co([0.0] * 4, t0=t0, period_s=None, offsets_s=[0.0, 0.7, 0.7000004, 3600.5]),
    ):
        expected = [datetime_to_us(t) for t in channel.times()]
        assert channel_times_us(channel).tolist() == expected


def test_bad_samples_are_quarantined_and_their_neighbours_kept() -> None:
    out = check(co([1.0, math.nan, 900.0, -1.0, 4.0, math.inf]))
    [rows] = out.channels
    assert rows.values.tolist() == [1.0, 4.0]
    t0 = datetime_to_us(NOW - timedelta(minutes=1))
    assert rows.times_us.tolist() == [t0, t0 + 4_000_000]
    reasons = {r.reason: r.detail for r in out.rejections}
    assert set(reasons) == {RejectReason.NON_FINITE, RejectReason.OUT_OF_RANGE}
    assert "2 of 6" in reasons[RejectReason.NON_FINITE]
    assert "2 of 6" in reasons[RejectReason.OUT_OF_RANGE]
    assert "[0, 500] mg/m3" in reasons[RejectReason.OUT_OF_RANGE]


def test_a_sensor_without_a_registered_range_gets_the_physical_one() -> None:
    noise = sensor(
        "d1.noise",
        quantity="noise_laeq",
        unit="dB(A)",
        substance=None,
        min_value=None,
        max_value=None,
    )
    channel = co(
        [85.0, 300.0, -80.0, 249.0],
        sensor="d1.noise",
        quantity=Quantity.NOISE_LAEQ,
        unit="dB(A)",
        substance=None,
    )
    out = check(channel, dev=device(noise))
    assert out.channels[0].values.tolist() == [85.0, 249.0]
    assert [r.reason for r in out.rejections] == [RejectReason.OUT_OF_RANGE]
    assert PHYSICAL_RANGE_BY_UNIT["dB(A)"] == (-50.0, 250.0)


def test_unit_that_differs_from_the_registry_is_a_mismatch() -> None:
    out = check(co([1.0], unit="ppm"))
    assert out.channels == []
    assert [r.reason for r in out.rejections] == [RejectReason.UNIT_MISMATCH]
    assert "registered as gas in mg/m3" in out.rejections[0].detail


def test_samples_from_the_future_are_refused() -> None:
    out = check(co([1.0, 2.0], t0=NOW + timedelta(minutes=10)))
    assert out.channels == []
    assert out.rejections[0].reason is RejectReason.FUTURE_TIMESTAMP


def test_a_channel_ending_in_the_future_is_refused_whole() -> None:
    out = check(co([1.0] * 600, t0=NOW))
    assert out.channels == []
    assert out.rejections[0].reason is RejectReason.FUTURE_TIMESTAMP


def test_absurd_offsets_are_refused_without_overflow() -> None:
    # 31 years ahead is still a datetime; beyond the year 9999 the wire format refuses the
    # channel already (tests/edge/test_protocol_fuzz.py).
    channel = co([1.0, 2.0], period_s=None, offsets_s=[0.0, 1e9])
    assert check(channel).rejections[0].reason is RejectReason.FUTURE_TIMESTAMP
    with pytest.raises(ValidationError, match="year 9999"):
        co([1.0, 2.0], period_s=None, offsets_s=[0.0, 1e300])


def test_samples_from_a_reset_clock_are_refused() -> None:
    out = check(co([1.0, 2.0], t0=datetime(1970, 1, 1, tzinfo=UTC)))
    assert out.channels == []
    assert out.rejections[0].reason is RejectReason.PAST_TIMESTAMP
    assert "1970-01-01" in out.rejections[0].detail


def test_a_new_sensor_is_offered_for_registration_or_refused() -> None:
    new = co([1.0], sensor="d1.h2s", substance="H2S")
    assert check(new).new_sensors == [new]
    refused = check(new, auto_register=False)
    assert refused.new_sensors == []
    assert refused.rejections[0].reason is RejectReason.UNKNOWN_SENSOR


def test_columns_have_the_database_types() -> None:
    [rows] = check(co([1.0, 2.0])).channels
    assert rows.times_us.dtype == np.int64
    assert rows.values.dtype == np.float64
