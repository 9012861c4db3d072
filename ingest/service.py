"""The ingest worker: a broker source (reader) and a writer task, joined by a bounded queue.

    source (ingest.mqtt_source | ingest.amqp) → prepare (ingest.prepare: admission, checks,
    quarantine) → batching (ingest.batching) → commit (ingest.commit: exactly once, retries,
    in-doubt settling) → acknowledgements (the source) → listeners (ingest.listeners)

Why this shape:
- Acknowledging only after the commit means a crash at any point leaves every unstored message
  unacknowledged, so the broker delivers it again; a redelivered message is stored once.
- Backpressure: when the database is slow or away, acknowledgements stop and the broker stops
  sending at our Receive Maximum (AMQP: prefetch). Memory stays bounded, nothing is dropped.
- Nothing in a message stops the worker: it is admitted, quarantined with a reason, or (after
  ``QORGAU_INGEST_MAX_ATTEMPTS`` failures outside the message) a dead letter.
- Throughput: samples are numpy columns from validation on, and a batch reaches PostgreSQL as
  one pre-encoded binary COPY buffer.

This module only composes the parts and runs them; each part's module says why it works as it
does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ingest.amqp import AmqpSource
from ingest.batching import Batcher
from ingest.commit import Committer
from ingest.devices import DeviceDirectory
from ingest.items import CommitResult, Item, Received
from ingest.listeners import Listener, ListenerHub, build_batch
from ingest.maintenance import check_settings, maintenance_loop
from ingest.metrics import IngestMetrics
from ingest.mqtt_source import MqttSource
from ingest.prepare import Preparer
from ingest.quarantine import report_set_aside
from ingest.settings import IngestSettings
from ingest.source import Source
from ingest.status import Health, WorkerStatus
from vocabulary.backoff import supervise

log = logging.getLogger(__name__)


def make_worker(settings: IngestSettings, metrics: IngestMetrics | None = None) -> IngestWorker:
    """The worker for ``QORGAU_BROKER``: the one place that chooses the source."""
    source: Source = AmqpSource(settings) if settings.broker == "rabbitmq" else MqttSource(settings)
    return IngestWorker(settings, metrics, source=source)


class IngestWorker:
    """One worker: ``source`` (Mosquitto's shared subscription unless given) feeding the one
    code path from admission to the commit."""

    def __init__(
        self,
        settings: IngestSettings,
        metrics: IngestMetrics | None = None,
        *,
        source: Source | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or IngestMetrics()
        self.source: Source = source if source is not None else MqttSource(settings)
        self._devices = DeviceDirectory(settings)
        self._preparer = Preparer(settings, self.metrics, self._devices)
        self._committer = Committer(settings, self.metrics)
        self._batcher = Batcher(
            settings, self.metrics, self._committer.commit_with_retry, self._committed
        )
        self._listeners = ListenerHub(
            self.metrics,
            queue_batches=settings.ingest_listener_queue_batches,
            timeout_s=settings.ingest_listener_timeout_s,
        )
        self._health = Health()
        self._writer: asyncio.Task[None] | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    # ------------------------------------------------------------------ public API

    def add_listener(self, listener: Listener, name: str | None = None) -> None:
        """Call ``listener`` with every ``CommittedBatch`` (see ``ingest.listeners``)."""
        self._listeners.add(listener, name)

    def status(self) -> WorkerStatus:
        return self._health.status(
            broker_connected=self.subscribed.is_set(),
            writer_running=self._writer is not None and not self._writer.done(),
            database_error=self._committer.database_error,
            queued=self._batcher.queued,
        )

    async def replay(self, topic: str, payload: bytes) -> CommitResult:
        """Process one message as if it had just arrived and commit it, without the broker:
        ``qorgau deadletters replay``. The checks, the quarantine and exactly-once apply as to
        any message; an error is raised to the caller (nothing is dead-lettered again).
        Call :meth:`close` when done."""
        item = await self._preparer.prepare(topic, payload, 0, 0, -1)
        return await self._committer.commit([item])

    async def close(self) -> None:
        """Close the database connections of a worker used through :meth:`replay`."""
        await self._devices.close()
        await self._committer.close()

    async def retire(self, *, idle_s: float = 5.0) -> None:
        """Leave the broker for good without losing this worker's messages (on Mosquitto:
        drain this client id's session, then delete it; see ``MqttSource.retire``)."""
        await self.source.retire(lambda stop: self._run(stop, maintenance=False), idle_s=idle_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then commit what was received, acknowledge it, and return."""
        await self._run(stop, maintenance=self.settings.db_maintenance_interval_s > 0)

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything received so far is committed and acknowledged."""
        return await self._batcher.flush(timeout_s)

    def broker_label(self) -> str:
        """The broker as logs name it (no password)."""
        return self.source.label()

    # ------------------------------------------------------------------ what a source calls

    async def admit(self, received: list[Received], generation: int) -> None:
        """Take received messages into the pipeline, in their order of arrival: validated
        here, then committed and only then acknowledged by the writer."""
        self.metrics.messages.inc(len(received))
        items = await self._preparer.prepare_many(received, generation)
        self._health.unacknowledged += len(items)
        self.metrics.unacked.inc(len(items))
        await self._batcher.put(items)
        # Let the writer's network I/O in between chunks of a backlog.
        await asyncio.sleep(0)

    def connected(self, up: bool) -> None:
        if up:
            self.subscribed.set()
        else:
            self.subscribed.clear()
        self.metrics.broker_connected.set(1 if up else 0)

    @property
    def unacknowledged(self) -> int:
        return self._health.unacknowledged

    # ------------------------------------------------------------------ running

    async def _run(self, stop: asyncio.Event, *, maintenance: bool) -> None:
        await check_settings(self.settings)
        self._writer = asyncio.create_task(self._batcher.run(), name="ingest-writer")
        self._listeners.start()
        writer = self._writer
        if maintenance:
            self._maintenance = asyncio.create_task(
                maintenance_loop(self.settings, self.metrics, self._jobs_seen),
                name="ingest-maintenance",
            )

        def broker_lost(exc: BaseException, delay: float) -> None:
            self.connected(False)
            self.metrics.mqtt_reconnects.inc()
            log.warning(
                "broker %s unavailable (%s); retrying in %.1f s", self.broker_label(), exc, delay
            )

        try:
            await supervise(
                lambda: self.source.session(self, stop, writer),
                stop,
                retry_on=self.source.errors,
                cap_s=self.settings.ingest_retry_max_s,
                on_retry=broker_lost,
            )
            await self._listeners.drain(timeout_s=5.0)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if self._maintenance is not None:
                # Cancelling mid-batch closes its connection: the batch rolls back and the
                # advisory lock goes with the session.
                self._maintenance.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._maintenance
            await self._listeners.stop()
            await self.close()

    def _jobs_seen(self, failing: tuple[str, ...]) -> None:
        self._health.failing_jobs = failing

    def _committed(self, batch: list[Item], result: CommitResult) -> None:
        """After a commit: acknowledge, then count, log and tell the listeners."""
        self._health.unacknowledged -= len(batch)
        self.metrics.unacked.dec(len(batch))
        self.source.acknowledge(batch)
        self._health.committed(len(result.dead_letters))
        report_set_aside(self.metrics, result.quarantine, result.dead_letters)
        self.metrics.last_commit.set(time.time())
        self.metrics.messages_committed.inc(len(batch))
        self.metrics.readings.inc(result.readings)
        self.metrics.duplicates.inc(result.duplicates)
        self.metrics.batch_readings.observe(result.readings)
        now = time.monotonic()
        for item in batch:
            self.metrics.ingest_latency.observe(now - item.received)
        if self._listeners and result.readings:
            parts = [(item.device, item.channel_rows()) for item in result.fresh if item.readings]
            self._listeners.publish(
                build_batch([(d, c) for d, c in parts if d is not None], committed_at_s=time.time())
            )


__all__ = ["IngestWorker", "make_worker"]
