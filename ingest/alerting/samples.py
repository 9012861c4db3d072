"""A device's readings message as detector samples: validated with ingest's own checks, each
channel becomes sample times, values and a validity mask in the pending batch.

Samples ingest would quarantine as bad values (non-finite, out of the sensor's range) stay in
the batch as invalid samples at the channel's end, so the detectors see that the sensor sent
something unusable (a fault) rather than nothing (silence); channels ingest refuses as a whole
are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from analytics.alerts import BatchBuilder
from ingest.alerting.devices import EngineDevice
from ingest.validate import ChannelRows, CheckedMessage, TimeWindow, check_channels
from store.settings import DEFAULT_MAX_PAST_S
from vocabulary.protocol import Channel, DecodedMessage, RejectReason

_BAD_SAMPLES = (RejectReason.NON_FINITE, RejectReason.OUT_OF_RANGE)

_Floats = npt.NDArray[np.float64]
_Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Fed:
    samples: int
    #: The message named sensors the device did not have: ingest registers them.
    new_sensors: bool


def feed_readings(
    builder: BatchBuilder,
    device: EngineDevice,
    decoded: DecodedMessage,
    received: float,
    *,
    max_future_s: float,
    fallback_interval_s: float,
) -> Fed:
    """Append the message's samples to ``builder``."""
    checked = check_channels(
        decoded,
        device.info,
        window=TimeWindow.around(
            datetime.fromtimestamp(received, UTC),
            max_past_s=DEFAULT_MAX_PAST_S,
            max_future_s=max_future_s,
        ),
        auto_register=True,
    )
    bad, refused = _rejected_sensors(checked)
    good_by_sensor: dict[int, list[ChannelRows]] = {}
    if bad:
        for rows in checked.channels:
            good_by_sensor.setdefault(rows.sensor.id, []).append(rows)
    samples = 0
    for channel in decoded.channels:
        sensor = device.info.sensors.get(channel.sensor)
        if sensor is None or channel.sensor in refused:
            continue
        slot = device.sensor_slots.get(sensor.id)
        if slot is None:
            continue
        offsets = np.asarray(channel.offsets(), dtype=np.float64)
        if channel.sensor in bad:
            times, values, valid = _with_bad_samples(channel, good_by_sensor.get(sensor.id, []))
        else:
            times = channel.t0.timestamp() + offsets
            values = np.asarray(channel.values, dtype=np.float64)
            valid = np.ones(values.size, dtype=bool)
        duration = _sample_duration(channel, offsets, fallback_interval_s)
        builder.channel(slot, times, values, duration, valid, received)
        samples += int(values.size)
    return Fed(samples=samples, new_sensors=bool(checked.new_sensors))


def _rejected_sensors(checked: CheckedMessage) -> tuple[dict[str, int], set[str]]:
    """Sensors with bad samples (how many), and sensors refused as a whole."""
    bad: dict[str, int] = {}
    refused: set[str] = set()
    for rejection in checked.rejections:
        if rejection.sensor is None:
            continue
        if rejection.reason in _BAD_SAMPLES:
            bad[rejection.sensor] = bad.get(rejection.sensor, 0) + 1
        else:
            refused.add(rejection.sensor)
    return bad, refused


def _sample_duration(channel: Channel, offsets: _Floats, fallback_s: float) -> float:
    if channel.period_s is not None:
        return channel.period_s
    if offsets.size > 1:
        return float(np.median(np.diff(offsets))) or 1.0
    return fallback_s


def _with_bad_samples(channel: Channel, good: list[ChannelRows]) -> tuple[_Floats, _Floats, _Mask]:
    """The channel's good samples, then one invalid sample per bad one at the channel's end."""
    good_times = np.concatenate([g.times_us / 1e6 for g in good] or [np.empty(0, dtype=np.float64)])
    good_values = np.concatenate([g.values for g in good] or [np.empty(0)])
    n_bad = len(channel.values) - good_values.size
    end = channel.end().timestamp()
    times = np.concatenate([good_times, np.full(n_bad, end)])
    values = np.concatenate([good_values, np.full(n_bad, math.nan)])
    valid = np.concatenate([np.ones(good_values.size, dtype=bool), np.zeros(n_bad, dtype=bool)])
    return times, values, valid
