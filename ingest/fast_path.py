"""Decoding and checking many clean messages at once: the path of the messages devices send.

At one small message a second per device (the edge agent's default: 8 channels of 1 value),
ingest's cost is per message and per channel, not per reading: the general path builds eight
pydantic models, eight numpy arrays and their checks for eight numbers. This path takes the
payloads of a whole batch, decodes each with orjson, checks the envelope and channels with plain
comparisons, and checks times and ranges as numpy columns over the whole batch.

It decides nothing on its own. A channel's description (sensor, quantity, unit, substance,
period) is validated once by the wire format's own model (``vocabulary.protocol.Channel``) and
remembered; the registry's sensors and ranges are the general path's (``ingest.validate``). Any
message this path cannot pass whole, whatever the reason (a bad sample, an unknown sensor, a
time format it does not parse, irregular offsets, a value that is not a plain number), it hands
back untouched, and the general path decodes it, quarantines what is bad with the usual reasons
and keeps the rest. So a message is stored the same way on either path;
``tests/ingest/test_fast_path.py`` holds the two to that.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Generic, TypeVar

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import ValidationError

from ingest.validate import TimeWindow, regular_offsets_us, sensor_range
from store.readings import ReadingBlock, datetime_to_us
from store.registry import DeviceInfo, SensorInfo
from vocabulary.protocol import PROTOCOL_VERSION, Channel, parse_device_topic
from vocabulary.protocol.messages import IDENTIFIER_PATTERN

_ENVELOPE_KEYS: Final = frozenset({"v", "device", "seq", "sent_at", "channels"})
_CHANNEL_KEYS: Final = frozenset(
    {"sensor", "quantity", "unit", "substance", "t0", "period_s", "values"}
)
_MAX_CHANNELS: Final = 64
_MAX_VALUES: Final = 3600
_SEQ_MAX: Final = 2**63 - 1
_EXACT_INT: Final = 2**53  # larger integers are left to the model's rules
# Datetimes of this form mean the same to ``datetime.fromisoformat`` and to pydantic; any other
# form goes the general way.
_ISO: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)")
# Sample times closer than this to the end of year 9999 are left to the model (its overflow check).
_LATEST_US: Final = datetime_to_us(datetime.fromisoformat("9999-12-30T00:00:00+00:00"))
_IDENTIFIER: Final = re.compile(IDENTIFIER_PATTERN)
_CACHE_LIMIT: Final = 100_000
_NOT_PLAIN: Final = object()  # a channel description the model refuses or rewrites


@dataclass(frozen=True, slots=True)
class Passed:
    """A message that passed whole: its readings are ``block`` of the batch's columns."""

    index: int  # position in the batch
    device: DeviceInfo
    seq: int
    sent_at: datetime | None
    block: ReadingBlock
    # Where the message is in the batch's columns, for what only the alert engine asks
    # (references, not slices: ingest pays nothing for them).
    _batch: _BatchColumns
    _row: int
    _channels: tuple[int, int]

    def period_s(self) -> npt.NDArray[np.float64]:
        """Each reading's channel period (s)."""
        return self._batch.period_s[self._row : self._row + len(self.block)]

    def channel_starts(self) -> npt.NDArray[np.intp]:
        """Where each of the message's channels starts in ``block`` (the first at 0)."""
        first, end = self._channels
        return self._batch.channel_row[first:end] - self._row


D = TypeVar("D")


@dataclass(frozen=True, slots=True)
class Screened(Generic[D]):
    """A batch after :meth:`FastPath.screen`."""

    passed: list[Passed]
    #: Indices of the messages for the general path, in order.
    general: list[int]
    #: The caller's device of each code the batch named (None: not registered).
    devices: Mapping[str, D | None]


@dataclass(frozen=True, slots=True)
class _BatchColumns:
    period_s: npt.NDArray[np.float64]  # a row's channel period
    channel_row: npt.NDArray[np.intp]  # a channel's first row


class FastPath:
    """Remembers what it has validated (topics, channel descriptions) between batches."""

    def __init__(self, max_payload_bytes: int) -> None:
        self.max_payload_bytes = max_payload_bytes
        self._topics: dict[str, tuple[str, str] | None] = {}
        self._heads: dict[tuple[Any, ...], tuple[str, str, str | None] | object] = {}
        self._kinds: dict[tuple[Any, ...], tuple[str, str | None] | object] = {}
        # Per device and channel description: its sensor, id and range.
        self._sensors: dict[tuple[Any, ...], tuple[SensorInfo, int, float, float]] = {}

    def decode(self, topic: str, payload: bytes) -> tuple[str, str, int, Any, list[Any]] | None:
        """``(enterprise, device, seq, sent_at, channels)`` of a payload whose envelope is plain,
        the channels still raw; None for anything else."""
        where = self._topic(topic)
        if where is None or len(payload) > self.max_payload_bytes:
            return None
        try:
            raw = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        if type(raw) is not dict or not raw.keys() <= _ENVELOPE_KEYS:
            return None
        version, seq, channels = raw.get("v"), raw.get("seq"), raw.get("channels")
        if (
            type(version) is not int
            or version != PROTOCOL_VERSION
            or raw.get("device") != where[1]
            or type(seq) is not int
            or not 0 <= seq <= _SEQ_MAX
            or type(channels) is not list
            or not 1 <= len(channels) <= _MAX_CHANNELS
        ):
            return None
        return where[0], where[1], seq, raw.get("sent_at"), channels

    async def screen(
        self,
        messages: Iterable[tuple[str, bytes]],
        *,
        lookup: Callable[[Collection[str]], Awaitable[Mapping[str, D | None]]],
        info: Callable[[D], DeviceInfo],
        window: Callable[[], TimeWindow],
        owns: Callable[[str], bool] | None = None,
    ) -> Screened[D]:
        """The fast path's whole admission of a batch of ``(topic, payload)``: decode, find the
        devices (``lookup`` of the codes named, ``info`` of what it finds), match each to the
        enterprise of its topic, then :meth:`check` in the ``window`` of the moment after the
        lookups. Messages of enterprises ``owns`` refuses, unknown devices, another
        enterprise's devices and whatever :meth:`check` refuses go to the general path, which
        says why."""
        general: list[int] = []
        decoded = []
        for index, (topic, payload) in enumerate(messages):
            envelope = self.decode(topic, payload)
            if envelope is None or (owns is not None and not owns(envelope[0])):
                general.append(index)
            else:
                decoded.append((index, envelope))
        devices = await lookup({envelope[1] for _, envelope in decoded})
        ready = []
        for index, (enterprise, code, seq, sent_at, channels) in decoded:
            device = devices[code]
            found = None if device is None else info(device)
            if found is None or found.enterprise_code != enterprise:
                general.append(index)
            else:
                ready.append((index, found, seq, sent_at, channels))
        passed, rest = self.check(ready, window())
        general.extend(rest)
        general.sort()
        return Screened(passed, general, devices)

    def check(
        self,
        decoded: Sequence[tuple[int, DeviceInfo, int, Any, list[Any]]],
        window: TimeWindow,
    ) -> tuple[list[Passed], list[int]]:
        """Check decoded messages ``(index, device, seq, sent_at, channels)`` against their
        devices' sensors and the time window; returns what passed whole and the indices of the
        rest (for the general path)."""
        slow: list[int] = []
        accepted: list[tuple[int, DeviceInfo, int, datetime | None, int, int, int, int]] = []
        t0s: list[int] = []
        periods: list[float] = []
        counts: list[int] = []
        sensor_ids: list[int] = []
        lows: list[float] = []
        highs: list[float] = []
        values: list[Any] = []
        times_of: dict[str, int] = {}
        for index, device, seq, sent_at_raw, channels in decoded:
            sent_at: datetime | None = None
            if sent_at_raw is not None:
                sent_at = _parse_time(sent_at_raw, times_of, as_datetime=True)
                if sent_at is None:
                    slow.append(index)
                    continue
            first = len(counts)
            row_start = len(values)
            ok = True
            for channel in channels:
                plain = self._channel(channel, device, times_of)
                if plain is None:
                    ok = False
                    break
                t0_us, period_s, sensor_id, lo, hi, samples = plain
                t0s.append(t0_us)
                periods.append(period_s)
                counts.append(len(samples))
                sensor_ids.append(sensor_id)
                lows.append(lo)
                highs.append(hi)
                values.extend(samples)
            if not ok:
                del t0s[first:], periods[first:], counts[first:], sensor_ids[first:]
                del lows[first:], highs[first:], values[row_start:]
                slow.append(index)
                continue
            accepted.append(
                (index, device, seq, sent_at, row_start, len(values), first, len(counts))
            )
        if not accepted:
            return [], slow
        count = np.array(counts, dtype=np.int64)
        offsets = (
            np.zeros(len(values))
            if len(values) == len(counts)  # one value a channel: the usual small message
            else np.concatenate(
                [regular_offsets_us(n, p) for n, p in zip(counts, periods, strict=True)]
            )
        )
        times = np.repeat(np.array(t0s, dtype=np.int64), count) + offsets.astype(np.int64)
        column = np.array(values, dtype=np.float64)
        low = np.repeat(np.array(lows), count)
        high = np.repeat(np.array(highs), count)
        # Comparisons are false for NaN, so with finite bounds one pass finds every bad sample;
        # infinite bounds let infinities through, which the general path refuses.
        good = (column >= low) & (column <= high) & np.isfinite(column)
        good &= (times >= window.earliest_us) & (times <= window.latest_us)
        good &= times <= _LATEST_US
        block = ReadingBlock(times, np.repeat(np.array(sensor_ids, dtype=np.int32), count), column)
        columns = _BatchColumns(
            np.repeat(np.array(periods), count),
            np.concatenate(([0], np.cumsum(count)[:-1])).astype(np.intp),
        )
        passed = []
        bad = None if good.all() else ~good
        for index, device, seq, sent_at, start, stop, first_channel, end_channel in accepted:
            if bad is not None and bad[start:stop].any():
                slow.append(index)
                continue
            rows = ReadingBlock(
                block.times_us[start:stop], block.sensor_ids[start:stop], block.values[start:stop]
            )
            passed.append(
                Passed(
                    index, device, seq, sent_at, rows, columns, start, (first_channel, end_channel)
                )
            )
        slow.sort()
        return passed, slow

    def device_of(self, topic: str) -> str | None:
        """The device a plain readings topic names (None for any other topic)."""
        where = self._topic(topic)
        return None if where is None else where[1]

    def _topic(self, topic: str) -> tuple[str, str] | None:
        try:
            return self._topics[topic]
        except KeyError:
            pass
        try:
            where = parse_device_topic(topic)
            plain = (
                where.kind == "readings"
                and len(where.device) <= 128
                and _IDENTIFIER.fullmatch(where.device) is not None
            )
            found = (where.enterprise, where.device) if plain else None
        except ValueError:
            found = None
        if len(self._topics) >= _CACHE_LIMIT:
            self._topics.clear()
        self._topics[topic] = found
        return found

    def _channel(
        self, channel: Any, device: DeviceInfo, times_of: dict[str, int]
    ) -> tuple[int, float, int, float, float, list[Any]] | None:
        if type(channel) is not dict:
            return None
        get = channel.get
        samples = get("values")
        period_s = get("period_s")
        if (
            type(samples) is not list
            or not 1 <= len(samples) <= _MAX_VALUES
            or type(period_s) is not float
        ):
            return None
        for value in samples:
            kind = type(value)
            if kind is not float and (kind is not int or not -_EXACT_INT <= value <= _EXACT_INT):
                return None
        code: Any = get("sensor")
        substance = get("substance")
        # A channel with exactly as many keys as it names (sensor, quantity, unit, t0,
        # period_s, values and a substance if any) has no other key: the set is compared only
        # when the counts differ (an explicit null substance, or a key of its own).
        if len(channel) != (6 if substance is None else 7) and not channel.keys() <= _CHANNEL_KEYS:
            return None
        key = (device.id, code, get("quantity"), get("unit"), substance, period_s)
        try:
            known = self._sensors.get(key)
        except TypeError:  # a list or an object where text belongs
            return None
        # The sensor found last time, while the device's registry entry still holds it (a
        # refreshed entry holds new objects, so the description is checked again).
        if known is None or device.sensors.get(code) is not known[0]:
            known = self._sensor(channel, device, period_s)
            if known is None:
                return None
            if len(self._sensors) >= _CACHE_LIMIT:
                self._sensors.clear()
            self._sensors[key] = known
        t0_us = _parse_time(get("t0"), times_of, as_datetime=False)
        if t0_us is None:
            return None
        _, sensor_id, lo, hi = known
        return t0_us, period_s, sensor_id, lo, hi, samples

    def _sensor(
        self, channel: dict[str, Any], device: DeviceInfo, period_s: float
    ) -> tuple[SensorInfo, int, float, float] | None:
        """The registered sensor of a channel whose description the wire format accepts and
        matches the registry, with its range."""
        head = self._head(channel, period_s)
        if head is None:
            return None
        code, unit, substance = head
        sensor = device.sensors.get(code)
        if sensor is None or (sensor.unit, sensor.substance) != (unit, substance):
            return None
        if sensor.quantity != channel["quantity"]:
            return None
        lo, hi = sensor_range(sensor)
        return sensor, sensor.id, lo, hi

    def _head(self, channel: dict[str, Any], period_s: float) -> tuple[str, str, str | None] | None:
        """The sensor code, canonical unit and substance of a channel whose description the
        wire format's model accepts (asked once per distinct description)."""
        key = (
            channel.get("sensor"),
            channel.get("quantity"),
            channel.get("unit"),
            channel.get("substance"),
            period_s,
        )
        try:
            head = self._heads.get(key)
        except TypeError:  # a list or an object where text belongs
            return None
        if head is None:
            sensor, quantity, unit, substance, _ = key
            if type(sensor) is not str or type(quantity) is not str or type(unit) is not str:
                return None
            if substance is not None and type(substance) is not str:
                return None
            # Sensor codes differ per device, the rest hardly: the model is asked once per
            # kind of channel, and a code is checked against the model's own pattern.
            kind = self._kinds.get(key[1:])
            if kind is None:
                # Bounded like the other memories: a device may send any number of distinct
                # descriptions (periods, units), and the worker must not grow with them.
                if len(self._kinds) >= _CACHE_LIMIT:
                    self._kinds.clear()
                kind = self._kinds[key[1:]] = _validated_kind(key[1:])
            plain = len(sensor) <= 128 and _IDENTIFIER.fullmatch(sensor) is not None
            valid = plain and isinstance(kind, tuple)
            head = (sensor, kind[0], kind[1]) if valid else _NOT_PLAIN  # type: ignore[index]
            if len(self._heads) >= _CACHE_LIMIT:
                self._heads.clear()
            self._heads[key] = head
        return None if head is _NOT_PLAIN else head  # type: ignore[return-value]


def _validated_kind(key: tuple[Any, ...]) -> tuple[str, str | None] | object:
    """Canonical unit and substance of a channel's quantity, unit, substance and period, if the
    wire format's model accepts them (asked with a sensor code it accepts)."""
    quantity, unit, substance, period_s = key
    probe: dict[str, Any] = {
        "sensor": "s",
        "quantity": quantity,
        "unit": unit,
        "t0": "2000-01-01T00:00:00+00:00",
        "period_s": period_s,
        "values": [0.0],
    }
    if substance is not None:
        probe["substance"] = substance
    try:
        model = Channel.model_validate(probe)
    except ValidationError:
        return _NOT_PLAIN
    if model.quantity.value != quantity:
        return _NOT_PLAIN
    return (model.unit, model.substance)


def _parse_time(text: Any, seen: dict[str, int], *, as_datetime: bool) -> Any:
    """µs since the epoch (or the datetime) of an ISO 8601 time with its offset; None for
    anything else, including forms the model may read differently."""
    if type(text) is not str:
        return None
    if not as_datetime:
        known = seen.get(text)
        if known is not None:
            return known
    if _ISO.fullmatch(text) is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if as_datetime:
        return moment
    us = datetime_to_us(moment)
    seen[text] = us
    return us
