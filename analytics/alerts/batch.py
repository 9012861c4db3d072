"""What one evaluation takes in: samples, message arrivals and device statuses as arrays.

The shell collects decoded messages with :class:`BatchBuilder` (cheap appends per message) and
hands the engine one :class:`Batch`, so the numeric work runs once across all sensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analytics.types import BoolArray, FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class Batch:
    """Samples and message facts since the previous evaluation (all arrays 1-D).

    * samples: ``slot`` (sensor), ``time_s`` (epoch seconds), ``value``, ``duration_s`` (the
      time each sample stands for, e.g. the channel's period), ``valid`` (False: non-finite or
      outside the instrument range; such samples only feed the sensor-health detector);
    * arrivals: one row per (message, sensor) with the message's latest sample time of that
      sensor and the engine clock at receipt;
    * statuses: device slot and whether it said it is online.
    """

    slot: IntArray
    time_s: FloatArray
    value: FloatArray
    duration_s: FloatArray
    valid: BoolArray
    arrival_slot: IntArray
    arrival_end_s: FloatArray
    arrival_now_s: FloatArray
    status_slot: IntArray
    status_online: BoolArray

    @classmethod
    def empty(cls) -> Batch:
        f = np.zeros(0)
        i = np.zeros(0, dtype=np.intp)
        b = np.zeros(0, dtype=bool)
        return cls(i, f, f, f, b, i, f, f, i, b)


@dataclass(slots=True)
class BatchBuilder:
    """Collects channels of decoded messages into one :class:`Batch` (lists, then arrays)."""

    _slot: list[IntArray] = field(default_factory=list)
    _time: list[FloatArray] = field(default_factory=list)
    _value: list[FloatArray] = field(default_factory=list)
    _dur: list[FloatArray] = field(default_factory=list)
    _valid: list[BoolArray] = field(default_factory=list)
    _arr_slot: list[int] = field(default_factory=list)
    _arr_end: list[float] = field(default_factory=list)
    _arr_now: list[float] = field(default_factory=list)
    _st_slot: list[int] = field(default_factory=list)
    _st_online: list[bool] = field(default_factory=list)

    def channel(
        self,
        slot: int,
        time_s: FloatArray,
        value: FloatArray,
        duration_s: float,
        valid: BoolArray,
        received_now_s: float,
    ) -> None:
        n = int(time_s.size)
        if n == 0:
            return
        self._slot.append(np.full(n, slot, dtype=np.intp))
        self._time.append(np.asarray(time_s, dtype=np.float64))
        self._value.append(np.asarray(value, dtype=np.float64))
        self._dur.append(np.full(n, duration_s))
        self._valid.append(np.asarray(valid, dtype=bool))
        self._arr_slot.append(slot)
        self._arr_end.append(float(np.max(time_s)))
        self._arr_now.append(received_now_s)

    def columns(
        self,
        slot: IntArray,
        time_s: FloatArray,
        value: FloatArray,
        duration_s: FloatArray,
        channel_starts: IntArray,
        received_now_s: float,
    ) -> None:
        """Many channels' valid samples at once, as columns (one row a sample); each channel is
        the rows from its entry of ``channel_starts`` to the next one's (one arrival each)."""
        if slot.size == 0:
            return
        self._slot.append(np.asarray(slot, dtype=np.intp))
        self._time.append(np.asarray(time_s, dtype=np.float64))
        self._value.append(np.asarray(value, dtype=np.float64))
        self._dur.append(np.asarray(duration_s, dtype=np.float64))
        self._valid.append(np.ones(slot.size, dtype=bool))
        self._arr_slot.extend(slot[channel_starts].tolist())
        self._arr_end.extend(np.maximum.reduceat(time_s, channel_starts).tolist())
        self._arr_now.extend([received_now_s] * channel_starts.size)

    def status(self, device_slot: int, online: bool) -> None:
        self._st_slot.append(device_slot)
        self._st_online.append(online)

    def __len__(self) -> int:
        return len(self._arr_slot) + len(self._st_slot)

    def build(self) -> Batch:
        def cat(parts: list[Any], dtype: Any) -> Any:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        return Batch(
            slot=cat(self._slot, np.intp),
            time_s=cat(self._time, np.float64),
            value=cat(self._value, np.float64),
            duration_s=cat(self._dur, np.float64),
            valid=cat(self._valid, np.bool_),
            arrival_slot=np.asarray(self._arr_slot, dtype=np.intp),
            arrival_end_s=np.asarray(self._arr_end, dtype=np.float64),
            arrival_now_s=np.asarray(self._arr_now, dtype=np.float64),
            status_slot=np.asarray(self._st_slot, dtype=np.intp),
            status_online=np.asarray(self._st_online, dtype=bool),
        )


__all__ = ["Batch", "BatchBuilder"]
