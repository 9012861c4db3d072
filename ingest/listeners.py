"""What ingest hands to the work that follows it (early warning): every committed batch.

After each commit (and after the broker has been acknowledged), the worker calls every
registered listener with a ``CommittedBatch``: the readings that this commit stored, and only
those. A redelivered message that was already stored is not in it; samples quarantined as bad
are not in it. Readings arrive grouped by sensor, as numpy arrays sorted by time::

    async def on_batch(batch: CommittedBatch) -> None:
        for s in batch.sensors:
            if s.quantity == "gas" and s.values.max() > limit_for(s):
                ...  # s.times_s, s.values, s.workplace_id, s.substance, s.unit

    worker.add_listener(on_batch, name="early-warning")

Delivery is decoupled from ingest: each listener has its own bounded queue and task. A listener
that raises is logged and counted (``qorgau_ingest_listener_errors_total``) and gets the next
batch; one that is slower than ingest has batches dropped once its queue is full
(``qorgau_ingest_listener_dropped_batches_total``) instead of slowing ingest down; one that hangs
is cancelled after its timeout. The readings are in the database whatever a listener does, so a
detector that missed batches can catch up from there. Delivery is at most once: a worker that
crashes after a commit does not replay it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ingest.metrics import IngestMetrics
from ingest.validate import ChannelRows
from store.readings import US_PER_S
from store.registry import DeviceInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SensorReadings:
    """The committed readings of one sensor in a batch, sorted by time."""

    sensor_id: int
    sensor: str  # the sensor's code, e.g. "mine-01-dev-03.co"
    device: str
    enterprise: str
    workplace_id: int | None
    quantity: str  # vocabulary.protocol.Quantity value, e.g. "noise_laeq"
    unit: str  # canonical unit, e.g. "dB(A)", "mg/m3", "m/s2"
    substance: str | None  # gas and dust only, e.g. "CO"
    times_us: NDArray[np.int64]  # µs since 1970-01-01 UTC
    values: NDArray[np.float64]

    @property
    def times_s(self) -> NDArray[np.float64]:
        """Seconds since 1970-01-01 UTC."""
        return self.times_us / US_PER_S

    @property
    def times(self) -> NDArray[np.datetime64]:
        """As ``datetime64[us]`` (UTC)."""
        return self.times_us.astype("datetime64[us]")

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True, slots=True)
class CommittedBatch:
    """Readings stored by one database commit, grouped by sensor (ascending sensor id)."""

    committed_at_s: float  # wall clock, seconds since the epoch
    sensors: tuple[SensorReadings, ...]

    @property
    def readings(self) -> int:
        return sum(len(s) for s in self.sensors)


Listener = Callable[[CommittedBatch], Awaitable[None]]


def build_batch(
    parts: Sequence[tuple[DeviceInfo, Sequence[ChannelRows]]], committed_at_s: float
) -> CommittedBatch:
    """Group the fresh channels of a commit by sensor."""
    by_sensor: dict[int, tuple[DeviceInfo, list[ChannelRows]]] = {}
    for device, channels in parts:
        for channel in channels:
            entry = by_sensor.setdefault(channel.sensor.id, (device, []))
            entry[1].append(channel)
    sensors = []
    for sensor_id in sorted(by_sensor):
        device, rows = by_sensor[sensor_id]
        info = rows[0].sensor
        times = np.concatenate([r.times_us for r in rows]) if len(rows) > 1 else rows[0].times_us
        values = np.concatenate([r.values for r in rows]) if len(rows) > 1 else rows[0].values
        order = np.argsort(times, kind="stable")
        sensors.append(
            SensorReadings(
                sensor_id=sensor_id,
                sensor=info.code,
                device=device.code,
                enterprise=device.enterprise_code,
                workplace_id=info.workplace_id,
                quantity=info.quantity,
                unit=info.unit,
                substance=info.substance,
                times_us=times[order],
                values=values[order],
            )
        )
    return CommittedBatch(committed_at_s=committed_at_s, sensors=tuple(sensors))


class _Subscription:
    def __init__(self, name: str, listener: Listener, queue_batches: int, timeout_s: float) -> None:
        self.name = name
        self.listener = listener
        self.timeout_s = timeout_s
        self.queue: asyncio.Queue[CommittedBatch] = asyncio.Queue(maxsize=queue_batches)
        self.task: asyncio.Task[None] | None = None


class ListenerHub:
    """Fans committed batches out to listeners without ever waiting for them."""

    def __init__(
        self, metrics: IngestMetrics, *, queue_batches: int = 64, timeout_s: float = 10.0
    ) -> None:
        self._metrics = metrics
        self._queue_batches = queue_batches
        self._timeout_s = timeout_s
        self._subs: list[_Subscription] = []

    def add(self, listener: Listener, name: str | None = None) -> None:
        label = name or getattr(listener, "__qualname__", None) or repr(listener)
        sub = _Subscription(label, listener, self._queue_batches, self._timeout_s)
        self._subs.append(sub)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop yet: start() runs it
        self._start(sub)

    def __bool__(self) -> bool:
        return bool(self._subs)

    def start(self) -> None:
        for sub in self._subs:
            if sub.task is None:
                self._start(sub)

    def _start(self, sub: _Subscription) -> None:
        sub.task = asyncio.create_task(self._deliver(sub), name=f"ingest-listener-{sub.name}")

    def publish(self, batch: CommittedBatch) -> None:
        for sub in self._subs:
            try:
                sub.queue.put_nowait(batch)
            except asyncio.QueueFull:
                self._metrics.listener_dropped.labels(sub.name).inc()
                log.warning(
                    "listener %s is %d batches behind; dropped a batch of %d readings for it "
                    "(they are stored)",
                    sub.name,
                    sub.queue.qsize(),
                    batch.readings,
                )

    async def _deliver(self, sub: _Subscription) -> None:
        while True:
            batch = await sub.queue.get()
            try:
                await asyncio.wait_for(sub.listener(batch), sub.timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._metrics.listener_errors.labels(sub.name).inc()
                log.exception(
                    "listener %s failed on a batch of %d readings", sub.name, batch.readings
                )
            finally:
                sub.queue.task_done()

    async def drain(self, timeout_s: float) -> None:
        """Give listeners up to ``timeout_s`` to finish what is queued (graceful shutdown)."""
        waits = [asyncio.create_task(sub.queue.join()) for sub in self._subs]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=timeout_s)
            for task in pending:
                task.cancel()

    async def stop(self) -> None:
        for sub in self._subs:
            if sub.task is not None:
                sub.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sub.task
                sub.task = None
