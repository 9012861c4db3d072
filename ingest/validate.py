"""Checks of a decoded message against the registry; no I/O.

Bad samples are separated from good ones at the finest grain that keeps the good data: a
whole message (unknown device, spoofed topic), a channel (unit mismatch, timestamps out of the
accepted window) or single samples (NaN, outside the instrument's range). Samples become numpy
columns here, once, so nothing downstream handles a Python object per reading.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from store.readings import US_PER_S, datetime_to_us, us_to_datetime
from store.registry import DeviceInfo, SensorInfo
from vocabulary.protocol import Channel, DecodedMessage, RejectReason, sensor_belongs_to

# What no instrument of the unit can report, used when the registry gives the sensor no range
# of its own: values outside are faults, not exposures. Rms accelerations and concentrations
# cannot be negative; no sound level in air reaches 250 dB. A sensor whose zero drifts below 0
# gets ``min_value`` in the registry.
PHYSICAL_RANGE_BY_UNIT: Final[dict[str, tuple[float, float]]] = {
    "dB(A)": (-50.0, 250.0),
    "dB(C)": (-50.0, 250.0),
    "m/s2": (0.0, 1.0e4),
    "mg/m3": (0.0, 1.0e7),
    "ppm": (0.0, 1.0e6),
    "%LEL": (0.0, 1.0e4),
    "%vol": (0.0, 100.0),  # a share of the volume
}


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str
    sensor: str | None = None
    raw: Any = None  # the offending channel (JSON-able), if narrower than the payload


@dataclass(frozen=True, slots=True)
class ChannelRows:
    """The good samples of one channel."""

    sensor: SensorInfo
    times_us: NDArray[np.int64]
    values: NDArray[np.float64]


@dataclass(slots=True)
class CheckedMessage:
    channels: list[ChannelRows] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    new_sensors: list[Channel] = field(default_factory=list)

    @property
    def readings(self) -> int:
        return sum(len(c.values) for c in self.channels)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Sample times ingest accepts, in µs since the epoch: [earliest, latest]."""

    earliest_us: int
    latest_us: int

    @classmethod
    def around(cls, now: datetime, *, max_past_s: float, max_future_s: float) -> TimeWindow:
        now_us = datetime_to_us(now)
        return cls(now_us - int(max_past_s * US_PER_S), now_us + int(max_future_s * US_PER_S))


def channel_offsets_us(channel: Channel) -> NDArray[np.float64]:
    """Sample offsets from ``t0`` in whole µs (rounded like ``timedelta``), still as floats so
    that absurd offsets can be refused before they overflow an integer."""
    if channel.period_s is not None:
        return regular_offsets_us(len(channel.values), channel.period_s)
    return np.rint(np.asarray(channel.offsets_s, dtype=np.float64) * US_PER_S)


@functools.lru_cache(maxsize=256)
def regular_offsets_us(n: int, period_s: float) -> NDArray[np.float64]:
    # A device sends the same number of samples at the same period message after message.
    offsets = np.rint(np.arange(n, dtype=np.float64) * period_s * US_PER_S)
    offsets.flags.writeable = False
    return offsets


def channel_times_us(channel: Channel) -> NDArray[np.int64]:
    """Sample times of a channel, µs since the epoch."""
    return datetime_to_us(channel.t0) + channel_offsets_us(channel).astype(np.int64)


def sensor_range(sensor: SensorInfo) -> tuple[float, float]:
    lo, hi = PHYSICAL_RANGE_BY_UNIT.get(sensor.unit, (-np.inf, np.inf))
    return (
        lo if sensor.min_value is None else sensor.min_value,
        hi if sensor.max_value is None else sensor.max_value,
    )


def check_channels(
    message: DecodedMessage,
    device: DeviceInfo,
    *,
    window: TimeWindow,
    auto_register: bool,
) -> CheckedMessage:
    """Rows to store and what to quarantine. Channels of sensors the device has not registered
    yet are returned in ``new_sensors`` (when auto-registration is on) for the caller to register
    and check again."""
    out = CheckedMessage()
    for rejected in message.rejected:
        out.rejections.append(
            Rejection(rejected.reason, rejected.detail, rejected.sensor, rejected.raw)
        )
    for channel in message.channels:
        sensor = device.sensors.get(channel.sensor)
        if sensor is None:
            if auto_register and not sensor_belongs_to(device.code, channel.sensor):
                # Registering it would let one device create sensors under another's name.
                out.rejections.append(
                    Rejection(
                        RejectReason.FOREIGN_SENSOR,
                        f"device {device.code} may introduce only sensors named "
                        f"{device.code}.<name>, not {channel.sensor!r}; register it "
                        "explicitly if it really is this device's",
                        channel.sensor,
                        _raw(channel),
                    )
                )
            elif auto_register:
                out.new_sensors.append(channel)
            else:
                out.rejections.append(
                    Rejection(
                        RejectReason.UNKNOWN_SENSOR,
                        f"sensor {channel.sensor!r} is not registered for device {device.code}",
                        channel.sensor,
                        _raw(channel),
                    )
                )
            continue
        check_channel(channel, sensor, window, out)
    return out


def check_channel(
    channel: Channel, sensor: SensorInfo, window: TimeWindow, out: CheckedMessage
) -> None:
    if (channel.quantity.value, channel.unit, channel.substance) != (
        sensor.quantity,
        sensor.unit,
        sensor.substance,
    ):
        out.rejections.append(
            Rejection(
                RejectReason.UNIT_MISMATCH,
                f"sensor {channel.sensor!r} is registered as {sensor.quantity} in {sensor.unit}"
                f"{' of ' + sensor.substance if sensor.substance else ''}; the message says "
                f"{channel.quantity.value} in {channel.unit}"
                f"{' of ' + channel.substance if channel.substance else ''}",
                channel.sensor,
                _raw(channel),
            )
        )
        return
    t0 = datetime_to_us(channel.t0)
    offsets = channel_offsets_us(channel)
    # Offsets never decrease (the wire format checks), so the ends of the channel are its
    # earliest and latest samples.
    first, last = t0 + float(offsets[0]), t0 + float(offsets[-1])
    if last > window.latest_us:
        out.rejections.append(
            Rejection(
                RejectReason.FUTURE_TIMESTAMP,
                f"samples up to {_iso(last)} are later than the ingest clock allows "
                f"({_iso(window.latest_us)}); check the device clock",
                channel.sensor,
                _raw(channel),
            )
        )
        return
    if first < window.earliest_us:
        out.rejections.append(
            Rejection(
                RejectReason.PAST_TIMESTAMP,
                f"samples from {_iso(first)} are older than ingest accepts "
                f"({_iso(window.earliest_us)}); check the device clock",
                channel.sensor,
                _raw(channel),
            )
        )
        return
    times = t0 + offsets.astype(np.int64)
    values = np.asarray(channel.values, dtype=np.float64)
    lo, hi = sensor_range(sensor)
    # Comparisons are false for NaN, so with finite bounds one pass finds every bad sample.
    in_range = (values >= lo) & (values <= hi)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        in_range &= np.isfinite(values)
    if in_range.all():
        out.channels.append(ChannelRows(sensor, times, values))
        return
    if in_range.any():
        out.channels.append(ChannelRows(sensor, times[in_range], values[in_range]))
    finite = np.isfinite(values)
    non_finite = np.flatnonzero(~finite)
    out_of_range = np.flatnonzero(finite & ~in_range)
    if len(non_finite):
        out.rejections.append(
            Rejection(
                RejectReason.NON_FINITE,
                f"{len(non_finite)} of {len(values)} samples are NaN or infinite "
                f"(indices {_some(non_finite)}); the others were stored",
                channel.sensor,
                _raw(channel),
            )
        )
    if len(out_of_range):
        out.rejections.append(
            Rejection(
                RejectReason.OUT_OF_RANGE,
                f"{len(out_of_range)} of {len(values)} samples are outside the "
                f"instrument range [{lo:g}, {hi:g}] {sensor.unit} (indices {_some(out_of_range)}); "
                "the others were stored",
                channel.sensor,
                _raw(channel),
            )
        )


def _iso(us: float) -> str:
    try:
        return us_to_datetime(int(us)).isoformat()
    except (OverflowError, ValueError, OSError):
        return f"{us / US_PER_S:.0f} s after 1970-01-01"


def _some(indices: NDArray[np.intp], shown: int = 10) -> str:
    text = ", ".join(str(int(i)) for i in indices[:shown])
    return text + (", …" if len(indices) > shown else "")


def _raw(channel: Channel) -> Any:
    return channel.model_dump(mode="json", exclude_none=True)
