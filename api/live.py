"""The API's link to the readings topics, for the live charts of the dashboard.

One MQTT connection per API process with a plain (non-shared) subscription to the readings
topic of each device somebody is watching, reference-counted: the first viewer of a device
subscribes, the last one leaving unsubscribes. Ingest's shared subscription is untouched, and a
device nobody watches costs the API nothing. Messages are decoded with ``vocabulary.protocol`` (the
one wire format) and fanned out to the viewers' queues as :class:`LiveReadings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import aiomqtt

from api.broker_link import keep_connected, run_until_stopped
from vocabulary.mqtt_client import mqtt5_client
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import ProtocolError, decode_readings, parse_device_topic

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveChannel:
    """One channel of a readings message: finite samples only, times in ms since the epoch."""

    sensor: str
    quantity: str
    unit: str
    substance: str | None
    times_ms: tuple[float, ...]
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class LiveReadings:
    enterprise: str
    device: str
    seq: int
    channels: tuple[LiveChannel, ...]


def decode_live(topic: str, payload: bytes) -> LiveReadings | None:
    """A readings message as the live view shows it, or None when it cannot be read or names
    another device than its topic (ingest quarantines such messages; the live view just skips
    them). ``decode_readings`` raises nothing but ``ProtocolError``, whatever the bytes."""
    try:
        where = parse_device_topic(topic)
        message = decode_readings(payload)
    except (ValueError, ProtocolError):
        return None
    if message.device != where.device:
        return None
    channels = []
    for channel in message.channels:
        pairs = [
            (t.timestamp() * 1000.0, float(v))
            for t, v in zip(channel.times(), channel.values, strict=True)
            if math.isfinite(v)
        ]
        channels.append(
            LiveChannel(
                sensor=channel.sensor,
                quantity=channel.quantity.value,
                unit=channel.unit,
                substance=channel.substance,
                times_ms=tuple(t for t, _ in pairs),
                values=tuple(v for _, v in pairs),
            )
        )
    return LiveReadings(where.enterprise, message.device, message.seq, tuple(channels))


Viewer = asyncio.Queue[LiveReadings | None]


class ReadingsHub:
    def __init__(self, mqtt_url: str, prefix: str, *, queue_size: int = 1000) -> None:
        self.endpoint = MqttEndpoint.parse(mqtt_url)
        self.prefix = prefix
        self.queue_size = queue_size
        self._viewers: dict[str, set[Viewer]] = {}  # topic → queues
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()
        self._exchanges: set[asyncio.Task[None]] = set()
        self._demand = asyncio.Event()
        self.connected = asyncio.Event()

    def topics(self) -> list[str]:
        return sorted(self._viewers)

    def viewer_count(self) -> int:
        """Open live streams (a viewer of several devices counts once)."""
        return len(set[Viewer]().union(*self._viewers.values()))

    @contextlib.asynccontextmanager
    async def watch(self, topics: Iterable[str]) -> AsyncIterator[Viewer]:
        """A queue that receives every readings message on ``topics`` until the block ends
        (``None`` in the queue: the hub stopped or the viewer fell behind)."""
        queue: Viewer = asyncio.Queue(self.queue_size)
        wanted = sorted(set(topics))
        self._demand.set()
        # A browser that leaves cancels its request, again and again (an anyio cancel scope).
        # Cancelled half-way, aiomqtt forgets the (UN)SUBSCRIBE it sent and logs a KeyError
        # traceback when the broker answers; shielded, the exchange finishes on its own.
        joining = self._keep(self._join(queue, wanted))
        try:
            await asyncio.shield(joining)
            yield queue
        finally:
            await asyncio.shield(self._keep(self._leave(queue, wanted, after=joining)))

    def _keep(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task held until done: the event loop keeps only weak references to tasks."""
        task = asyncio.ensure_future(work)
        self._exchanges.add(task)
        task.add_done_callback(self._exchanges.discard)
        return task

    async def _join(self, queue: Viewer, wanted: list[str]) -> None:
        async with self._lock:
            fresh = [t for t in wanted if not self._viewers.get(t)]
            for topic in wanted:
                self._viewers.setdefault(topic, set()).add(queue)
            await self._subscribe(fresh)

    async def _leave(self, queue: Viewer, wanted: list[str], *, after: asyncio.Task[None]) -> None:
        with contextlib.suppress(Exception):
            await after
        async with self._lock:
            gone = []
            for topic in wanted:
                viewers = self._viewers.get(topic, set())
                viewers.discard(queue)
                if not viewers:
                    self._viewers.pop(topic, None)
                    gone.append(topic)
            await self._unsubscribe(gone)

    async def _subscribe(self, topics: list[str]) -> None:
        client = self._client
        if client is None or not topics:
            return  # (re)subscribed on the next connection
        try:
            await client.subscribe([(t, 0) for t in topics], timeout=5)
        except aiomqtt.MqttError as exc:
            log.warning("live readings: could not subscribe to %s: %s", topics, exc)

    async def _unsubscribe(self, topics: list[str]) -> None:
        client = self._client
        if client is None or not topics:
            return
        with contextlib.suppress(aiomqtt.MqttError):
            await client.unsubscribe(topics, timeout=5)

    def fan_out(self, topic: str, readings: LiveReadings) -> None:
        for queue in list(self._viewers.get(topic, ())):
            try:
                queue.put_nowait(readings)
            except asyncio.QueueFull:
                # A viewer that cannot keep up is cut off rather than slowing the others; its
                # page reconnects and reloads the recent readings from the database.
                for viewers in self._viewers.values():
                    viewers.discard(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    async def run(self, stop: asyncio.Event) -> None:
        # Connect only once somebody watches: an API that nobody opens the live page of never
        # needs the broker for readings.
        await run_until_stopped(self._demand.wait(), stop)
        await keep_connected(lambda: self._session(stop), stop, link="live readings")
        for viewers in list(self._viewers.values()):
            for queue in viewers:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)

    async def _session(self, stop: asyncio.Event) -> None:
        client = mqtt5_client(self.endpoint, client_id=f"qorgau-api-live-{uuid.uuid4().hex[:12]}")
        try:
            async with client:
                async with self._lock:
                    self._client = client
                    await self._subscribe(self.topics())
                self.connected.set()
                await run_until_stopped(self._read(client), stop)
        finally:
            self._client = None
            self.connected.clear()

    async def _read(self, client: aiomqtt.Client) -> None:
        async for raw in client.messages:
            payload = raw.payload
            if not isinstance(payload, bytes | bytearray):
                continue
            topic = str(raw.topic)
            if topic not in self._viewers:
                continue
            readings = decode_live(topic, bytes(payload))
            if readings is not None:
                self.fan_out(topic, readings)
