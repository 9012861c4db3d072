"""The ingest worker: one reader task (broker → validated items) and one writer task (items →
COPY → commit → acknowledgements → listeners), joined by a bounded queue.

Why this shape:
- Acknowledging only after the commit means a crash at any point leaves every unstored message
  unacknowledged, so the broker delivers it again (with Mosquitto: to the same client id when
  it reconnects; see docs/ingest.md).
- A redelivered message is stored once: ``(device, seq)`` goes into ``ingested_messages`` in the
  same transaction as its readings, and a second copy finds it there and is skipped.
- A commit whose outcome is unknown (the connection died while COMMIT was in flight) is settled
  by asking PostgreSQL for the transaction's status after reconnecting, so its messages are
  acknowledged and its readings reach listeners exactly as if the answer had arrived.
- Backpressure: when the database is slow or away, acknowledgements stop, the broker stops
  sending at our Receive Maximum and queues the rest. Memory stays bounded, nothing is dropped.
- Nothing in a message stops the worker: ``decode_readings`` turns any bytes into a message or
  a ``ProtocolError`` (quarantined with its reason). Any other failure to process a message is
  retried ``QORGAU_INGEST_MAX_ATTEMPTS`` times (a failing batch is then committed one message at
  a time to find it), and the message is then written to ``dead_letters`` and acknowledged, so
  it never holds up the worker's share of the stream. Outages are not failures: they are retried
  for as long as they last, holding the acknowledgements.
- Throughput: samples are numpy columns from validation on, and a batch reaches PostgreSQL as
  one pre-encoded binary COPY buffer. Batches close by size, or by time counted from the arrival
  of their first message, so light load sees low latency and heavy load gets big batches.
- Many small messages: the reader takes what the broker has sent a batch at a time
  (``ingest.mqtt.Inbox``), passes clean messages through ``ingest.fast_path`` as one set of
  columns (the rest, one by one, through the general checks), and hands the writer lists of
  items; a commit's acknowledgements go out as one write. A batch also closes at half the
  Receive Maximum in messages, so the broker can send the next half while one commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiomqtt
import numpy as np
import psycopg

from ingest import mqtt
from ingest.fast_path import FastPath
from ingest.listeners import CommittedBatch, Listener, ListenerHub, build_batch
from ingest.metrics import IngestMetrics
from ingest.settings import IngestSettings
from ingest.validate import ChannelRows, CheckedMessage, Rejection, TimeWindow, check_channels
from store.connection import (
    DatabaseError,
    ReconnectingConnection,
    connect_async,
    is_connection_problem,
)
from store.deadletters import (
    DeadLetterRecord,
    DeadLetterStage,
    insert_dead_letters,
    storable_text,
)
from store.ingest_commit import claim_messages, current_xact_id, insert_quarantine, xact_status
from store.maintenance import run_maintenance
from store.migrate import Backend, current_backend_async
from store.policies import check_dedupe_horizon
from store.readings import ReadingBlock, days_of, ensure_day_partitions
from store.registry import DeviceInfo, SensorInfo, find_device, find_devices, upsert_sensor
from store.writes import write_readings
from vocabulary.backoff import backoff_delay_s, supervise
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import (
    Channel,
    DecodedMessage,
    ProtocolError,
    RejectReason,
    decode_readings,
    parse_device_topic,
    readings_subscription,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
# Messages taken from the inbox at once: big enough that per-chunk costs vanish, small enough
# that the event loop is not held long.
_CHUNK_MESSAGES = 500
Conn = psycopg.AsyncConnection[Any]


async def _register_sensor(conn: Conn, *, device_id: int, channel: Channel) -> SensorInfo:
    return await upsert_sensor(
        conn,
        device_id,
        channel.sensor,
        quantity=channel.quantity.value,
        unit=channel.unit,
        substance=channel.substance,
    )


@dataclass(slots=True)
class QuarantineRecord:
    topic: str
    device: str | None
    seq: int | None
    sensor: str | None
    reason: RejectReason
    detail: str
    payload: bytes | None
    payload_bytes: int

    def row(self) -> tuple[Any, ...]:
        # The texts may quote what a device sent (a lone surrogate, a NUL): stored escaped.
        return (
            storable_text(self.topic),
            None if self.device is None else storable_text(self.device),
            self.seq,
            None if self.sensor is None else storable_text(self.sensor),
            self.reason.value,
            storable_text(self.detail),
            self.payload,
            self.payload_bytes,
        )


# A message as a broker source hands it to the worker (``IngestWorker._admit``): topic, payload,
# mid (MQTT packet id, or AMQP delivery tag: what ``_acknowledge`` sends back) and QoS.
Received = mqtt.RawMessage


@dataclass(slots=True)
class Item:
    """One received message on its way to the database."""

    mid: int
    qos: int
    generation: int  # which broker connection it came on; acks go back on that one only
    received: float  # time.monotonic() at arrival
    topic: str = ""
    # Kept until the commit for a dead letter, which stores the whole message for replay.
    payload: bytes = b""
    device: DeviceInfo | None = None
    seq: int | None = None
    channels: list[ChannelRows] = field(default_factory=list)
    # The readings to store: from the fast path directly, else built from ``channels``.
    block: ReadingBlock | None = None
    readings: int = 0
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    dead_letter: DeadLetterRecord | None = None

    @property
    def key(self) -> tuple[int, int] | None:
        # A dead letter is not marked as ingested: its replay must be able to store it.
        if self.device is None or self.seq is None or self.dead_letter is not None:
            return None
        return (self.device.id, self.seq)


@dataclass(slots=True)
class _Flush:
    """Marker: commit everything queued before it, then set ``done``."""

    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class CommitResult:
    fresh: list[Item]  # first copies of (device, seq): their readings are now stored
    keyless: list[Item]  # quarantined whole before a (device, seq) was known, or dead letters
    duplicates: int  # copies of messages stored before (or earlier in this batch)
    readings: int
    quarantine: list[QuarantineRecord]
    dead_letters: list[DeadLetterRecord] = field(default_factory=list)

    @classmethod
    def merge(cls, results: list[CommitResult]) -> CommitResult:
        return cls(
            fresh=[i for r in results for i in r.fresh],
            keyless=[i for r in results for i in r.keyless],
            duplicates=sum(r.duplicates for r in results),
            readings=sum(r.readings for r in results),
            quarantine=[q for r in results for q in r.quarantine],
            dead_letters=[d for r in results for d in r.dead_letters],
        )


@dataclass(frozen=True, slots=True)
class _InDoubt:
    """A transaction whose COMMIT was sent but not answered."""

    xid: str
    result: CommitResult


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What /health reports."""

    healthy: bool
    broker_connected: bool  # connected and subscribed to the readings (the same thing here)
    database_ok: bool
    writer_running: bool
    queue_messages: int
    unacknowledged: int
    last_commit_age_s: float | None
    database_error: str | None
    last_commit_at: datetime | None = None
    # Given up on since this worker started (the table keeps them all): not unhealthy, since a
    # restart would not help, but somebody must look (`qorgau deadletters list`).
    dead_letters: int = 0
    last_dead_letter_at: datetime | None = None
    # TimescaleDB jobs whose latest run failed, as the maintenance job last saw them: the
    # rollups or compression fall behind, but ingest itself is healthy.
    failing_jobs: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat(timespec="milliseconds")

        return {
            "status": "ok" if self.healthy else "degraded",
            "subscribed": self.broker_connected,
            "broker_connected": self.broker_connected,
            "database_ok": self.database_ok,
            "writer_running": self.writer_running,
            "queue_messages": self.queue_messages,
            "unacknowledged": self.unacknowledged,
            "last_commit_at": iso(self.last_commit_at),
            "last_commit_age_s": self.last_commit_age_s,
            "database_error": self.database_error,
            "dead_letters": self.dead_letters,
            "last_dead_letter_at": iso(self.last_dead_letter_at),
            "failing_jobs": list(self.failing_jobs),
        }


class IngestWorker:
    """The worker on Mosquitto (an MQTT 5 shared subscription). ``ingest.amqp`` subclasses it
    for a RabbitMQ quorum queue: a source replaces ``_session`` (connect, consume, hand each
    message to ``_admit``), ``_acknowledge`` and ``broker_errors``; everything from ``_admit``
    to the commit is this class, whatever the broker."""

    # Failures of the broker connection: the session is retried, not the worker stopped.
    broker_errors: tuple[type[BaseException], ...] = (aiomqtt.MqttError,)

    def __init__(self, settings: IngestSettings, metrics: IngestMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or IngestMetrics()
        self.endpoint = MqttEndpoint.parse(settings.mqtt_url)
        # The broker never has more than Receive Maximum messages unacknowledged with us, so the
        # queue cannot outgrow that; the bound is a second line of defence.
        self._queue: asyncio.Queue[list[Item] | _Flush] = asyncio.Queue(
            maxsize=max(2 * settings.ingest_receive_maximum, 1000) // _CHUNK_MESSAGES + 1
        )
        self._queued = 0  # messages in the queue's lists
        self._fast_path = FastPath(settings.ingest_max_payload_bytes)
        self._devices: dict[str, tuple[DeviceInfo, float]] = {}
        self._unknown_until: dict[str, float] = {}
        self._days_ready: set[int] = set()
        self._client: aiomqtt.Client | None = None
        self._generation = 0
        self._lookup = ReconnectingConnection(
            settings.database_url,
            settings.database_schema,
            retry_max_s=settings.ingest_retry_max_s,
            purpose="registry lookup",
        )
        self._write_conn: Conn | None = None
        self._backend: Backend | None = None
        self._attempt: _InDoubt | None = None
        self._listeners = ListenerHub(
            self.metrics,
            queue_batches=settings.ingest_listener_queue_batches,
            timeout_s=settings.ingest_listener_timeout_s,
        )
        self._writer: asyncio.Task[None] | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._database_error: str | None = None
        self._failing_jobs: tuple[str, ...] = ()
        self._last_commit: float | None = None
        self._last_commit_at: datetime | None = None
        self._dead_letters = 0
        self._last_dead_letter_at: datetime | None = None
        self._unacked = 0
        self._retire_idle_s: float | None = None
        self._last_message = time.monotonic()
        self.subscribed = asyncio.Event()

    # ------------------------------------------------------------------ public API

    def add_listener(self, listener: Listener, name: str | None = None) -> None:
        """Call ``listener`` with every ``CommittedBatch`` (see ``ingest.listeners``)."""
        self._listeners.add(listener, name)

    def status(self) -> WorkerStatus:
        writer_running = self._writer is not None and not self._writer.done()
        database_ok = self._database_error is None
        connected = self.subscribed.is_set()
        return WorkerStatus(
            healthy=writer_running and database_ok and connected,
            broker_connected=connected,
            database_ok=database_ok,
            writer_running=writer_running,
            queue_messages=self._queued,
            unacknowledged=self._unacked,
            last_commit_age_s=(
                None if self._last_commit is None else time.monotonic() - self._last_commit
            ),
            database_error=self._database_error,
            last_commit_at=self._last_commit_at,
            dead_letters=self._dead_letters,
            last_dead_letter_at=self._last_dead_letter_at,
            failing_jobs=self._failing_jobs,
        )

    async def replay(self, topic: str, payload: bytes) -> CommitResult:
        """Process one message as if it had just arrived and commit it, without the broker:
        ``qorgau deadletters replay``. The checks, the quarantine and exactly-once apply as to
        any message; an error is raised to the caller (nothing is dead-lettered again).
        Call :meth:`close` when done."""
        item = await self._prepare(topic, payload, 0, 0, -1)
        return await self._commit([item])

    async def close(self) -> None:
        """Close the database connections of a worker used through :meth:`replay`."""
        await self._lookup.close()
        if self._write_conn is not None:
            with contextlib.suppress(Exception):
                await self._write_conn.close()
            self._write_conn = None

    async def retire(self, *, idle_s: float = 5.0) -> None:
        """Leave the shared subscription for good without losing this client id's messages.

        Mosquitto keeps routing a worker's share to its session while it is away, and holds its
        unacknowledged messages for that client id alone; a session that expires takes them
        with it. So a worker that will not come back must drain first: connect with its id,
        unsubscribe (the broker stops choosing it), ingest what the session holds until nothing
        has arrived for ``idle_s``, then delete the session. Run it while other workers are
        subscribed, or new readings find no subscriber until one is.
        """
        self._retire_idle_s = idle_s
        stop = asyncio.Event()
        await self.run(stop)
        # A clean start with no expiry discards the (now empty) session; no status is left.
        client = mqtt.build_client(
            self.endpoint,
            client_id=self.settings.ingest_client_id,
            session_expiry_s=0,
            receive_maximum=self.settings.ingest_receive_maximum,
            clean_start=True,
        )
        async with client:
            await client.publish(self.settings.status_topic(), b"", qos=1, retain=True)
        log.info("retired client id %s: its session is drained and deleted",
                 self.settings.ingest_client_id)  # fmt: skip

    # ------------------------------------------------------------------ supervisor

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then commit what was received, acknowledge it, and return."""
        await self._check_settings()
        self._writer = asyncio.create_task(self._writer_loop(), name="ingest-writer")
        self._listeners.start()
        writer = self._writer
        if self.settings.db_maintenance_interval_s > 0 and self._retire_idle_s is None:
            self._maintenance = asyncio.create_task(
                self._maintenance_loop(), name="ingest-maintenance"
            )

        def broker_lost(exc: BaseException, delay: float) -> None:
            self.subscribed.clear()
            self.metrics.broker_connected.set(0)
            self.metrics.mqtt_reconnects.inc()
            log.warning(
                "broker %s unavailable (%s); retrying in %.1f s",
                self.broker_label(),
                exc,
                delay,
            )

        try:
            await supervise(
                lambda: self._session(stop, writer),
                stop,
                retry_on=self.broker_errors,
                cap_s=self.settings.ingest_retry_max_s,
                on_retry=broker_lost,
            )
            await self._listeners.drain(timeout_s=5.0)
        finally:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            if self._maintenance is not None:
                # Cancelling mid-batch closes its connection: the batch rolls back and the
                # advisory lock goes with the session.
                self._maintenance.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._maintenance
            await self._listeners.stop()
            await self._lookup.close()
            if self._write_conn is not None:
                with contextlib.suppress(Exception):
                    await self._write_conn.close()

    def broker_label(self) -> str:
        """The broker as logs name it (no password)."""
        return self.endpoint.redacted()

    async def _session(self, stop: asyncio.Event, writer: asyncio.Task[None]) -> None:
        status_topic = self.settings.status_topic()
        client = mqtt.build_client(
            self.endpoint,
            client_id=self.settings.ingest_client_id,
            session_expiry_s=self.settings.ingest_session_expiry_s,
            receive_maximum=self.settings.ingest_receive_maximum,
            will=aiomqtt.Will(status_topic, self._status_payload("offline"), qos=1, retain=True),
        )
        # Before connecting: a resumed session delivers its queued messages right after CONNACK.
        inbox = mqtt.Inbox(client)
        async with client:
            self._client = client
            self._generation += 1
            topic = readings_subscription(
                self.settings.topic_prefix, self.settings.ingest_share_group
            )
            retiring = self._retire_idle_s is not None
            if retiring:
                await client.unsubscribe(topic)
                log.info("retiring: left %s; draining the session", topic)
            else:
                await client.subscribe(topic, qos=1)
                log.info("subscribed to %s on %s", topic, self.endpoint.redacted())
            await client.publish(
                status_topic,
                self._status_payload("retiring" if retiring else "online"),
                qos=1,
                retain=True,
            )
            self.subscribed.set()
            self.metrics.broker_connected.set(1)
            reader = asyncio.create_task(self._read_loop(inbox), name="ingest-reader")
            stopping = asyncio.create_task(stop.wait())
            watcher = asyncio.create_task(self._watch_drained(stop)) if retiring else None
            try:
                await asyncio.wait({reader, stopping, writer}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                # Cancelled from outside (Ctrl-C): the reader goes with the session, or it would
                # fail on the closed connection with nobody to hear it. Unacknowledged messages
                # come again to this client id.
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await reader
                raise
            finally:
                stopping.cancel()
                if watcher is not None:
                    watcher.cancel()
            if writer.done():
                reader.cancel()
                writer.result()  # a bug in the writer: fail loudly, don't stall silently
            if reader.done():
                self.subscribed.clear()
                self.metrics.broker_connected.set(0)
                reader.result()  # re-raises the broker error that ended it
                return
            # Graceful stop: no new messages; commit and acknowledge what we hold while the
            # connection is still up, so the broker does not send it again.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await self.flush(timeout_s=30.0)
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(
                    status_topic, self._status_payload("offline"), qos=1, retain=True, timeout=5
                )
            self.subscribed.clear()
            self.metrics.broker_connected.set(0)
            self._client = None

    async def _watch_drained(self, stop: asyncio.Event) -> None:
        """Retiring: stop once everything is acknowledged and nothing new came for a while (the
        broker sends queued messages as soon as acknowledgements make room)."""
        assert self._retire_idle_s is not None
        self._last_message = time.monotonic()
        while True:
            await asyncio.sleep(0.1)
            quiet = time.monotonic() - self._last_message
            if self._unacked == 0 and quiet >= self._retire_idle_s:
                stop.set()
                return

    def _status_payload(self, state: str) -> bytes:
        return json.dumps(
            {
                "state": state,
                "client_id": self.settings.ingest_client_id,
                "pid": os.getpid(),
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        ).encode()

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything received so far is committed and acknowledged."""
        marker = _Flush()
        await self._queue.put(marker)
        try:
            await asyncio.wait_for(marker.done.wait(), timeout_s)
        except TimeoutError:
            log.warning("flush did not finish within %s s; the broker will redeliver", timeout_s)
            return False
        return True

    # ------------------------------------------------------------------ reader

    async def _read_loop(self, inbox: mqtt.Inbox) -> None:
        generation = self._generation
        while True:
            received = await inbox.take(_CHUNK_MESSAGES)
            self._last_message = time.monotonic()
            await self._admit(received, generation)

    async def _admit(self, received: list[Received], generation: int) -> None:
        """Take received messages into the pipeline, in their order of arrival (every broker's
        source calls this): validated here, then committed and only then acknowledged by the
        writer."""
        self.metrics.messages.inc(len(received))
        items = await self._prepare_many(received, generation)
        self._unacked += len(items)
        self.metrics.unacked.inc(len(items))
        self._queued += len(items)
        await self._queue.put(items)
        self.metrics.queue_depth.set(self._queued)
        # Let the writer's network I/O in between chunks of a backlog.
        await asyncio.sleep(0)

    async def _prepare_many(self, received: list[Received], generation: int) -> list[Item]:
        """Items of messages in their order of arrival: clean ones through the fast path as one
        set of columns, the others through ``_prepare_with_retries`` one at a time."""
        arrived = time.monotonic()
        items: list[Item | None] = [None] * len(received)
        try:
            general = await self._prepare_fast(received, generation, arrived, items)
        except Exception:
            # A bug here must not cost a message: the general path takes the whole chunk.
            log.exception("the fast path failed on %d messages; checking them one by one",
                          len(received))  # fmt: skip
            self.metrics.processing_failures.labels("validate").inc()
            items = [None] * len(received)
            general = list(range(len(received)))
        for index in general:
            message = received[index]
            items[index] = await self._prepare_with_retries(
                message.topic, message.payload, message.mid, message.qos, generation
            )
        return [item for item in items if item is not None]

    async def _prepare_fast(
        self,
        received: list[Received],
        generation: int,
        arrived: float,
        items: list[Item | None],
    ) -> list[int]:
        """Fill ``items`` with the messages the fast path passes whole; return the indices of
        the others."""
        fast = self._fast_path
        general: list[int] = []
        decoded = []
        for index, message in enumerate(received):
            envelope = fast.decode(message.topic, message.payload)
            if envelope is None:
                general.append(index)
            else:
                decoded.append((index, envelope))
        devices: dict[str, DeviceInfo | None] = {}
        fresh_until = time.monotonic()
        missing: list[str] = []
        for code in {e[1] for _, e in decoded}:
            cached = self._devices.get(code)  # most are: no coroutine for those
            if cached is not None and cached[1] > fresh_until:
                devices[code] = cached[0]
            else:
                missing.append(code)
        if missing:
            devices.update(await self._devices_many(missing))
        ready = []
        for index, (enterprise, code, seq, sent_at, channels) in decoded:
            device = devices[code]
            if device is None or device.enterprise_code != enterprise:
                general.append(index)
            else:
                ready.append((index, device, seq, sent_at, channels))
        now = datetime.now(UTC)
        window = TimeWindow.around(
            now,
            max_past_s=self.settings.ingest_max_past_s,
            max_future_s=self.settings.ingest_max_future_s,
        )
        passed, rest = fast.check(ready, window)
        for p in passed:
            message = received[p.index]
            items[p.index] = Item(
                mid=message.mid,
                qos=message.qos,
                generation=generation,
                received=arrived,
                topic=message.topic,
                payload=message.payload,
                device=p.device,
                seq=p.seq,
                block=p.block,
                readings=len(p.block),
            )
        if passed and passed[-1].sent_at is not None:
            self.metrics.broker_lag.set((now - passed[-1].sent_at).total_seconds())
        general.extend(rest)
        general.sort()
        return general

    async def _prepare_with_retries(
        self, topic: str, payload: bytes, mid: int, qos: int, generation: int
    ) -> Item:
        """``_prepare``, which raises only for a fault outside the message (its content is
        quarantined, outages are waited out in the registry lookups): a bug, or a registry row
        the database refuses. Tried ``ingest_max_attempts`` times, then a dead letter."""
        failures = 0
        while True:
            try:
                return await self._prepare(topic, payload, mid, qos, generation)
            except Exception as exc:
                failures += 1
                self.metrics.processing_failures.labels(DeadLetterStage.VALIDATE).inc()
                log.error(
                    "processing a message on %s failed (attempt %d of %d): %s",
                    topic,
                    failures,
                    self.settings.ingest_max_attempts,
                    _describe(exc),
                    exc_info=failures == 1,
                )
                if failures >= self.settings.ingest_max_attempts:
                    item = Item(
                        mid=mid,
                        qos=qos,
                        generation=generation,
                        received=time.monotonic(),
                        topic=topic,
                        payload=payload,
                    )
                    self._make_dead_letter(item, DeadLetterStage.VALIDATE, failures, exc)
                    return item
                await asyncio.sleep(
                    backoff_delay_s(failures, cap_s=self.settings.ingest_retry_max_s)
                )

    def _make_dead_letter(
        self, item: Item, stage: DeadLetterStage, attempts: int, exc: BaseException
    ) -> None:
        device = item.device.code if item.device is not None else None
        if device is None:
            with contextlib.suppress(ValueError):
                device = parse_device_topic(item.topic).device
        item.dead_letter = DeadLetterRecord(
            client_id=self.settings.ingest_client_id,
            stage=stage,
            topic=item.topic,
            device=device,
            seq=item.seq,
            attempts=attempts,
            error=_describe(exc),
            payload=item.payload,
        )
        item.channels = []
        item.block = None
        item.readings = 0
        item.quarantine = []

    async def _prepare(
        self, topic: str, payload: bytes, mid: int, qos: int, generation: int
    ) -> Item:
        """Decode and check one message; everything bad becomes a quarantine record."""
        item = Item(
            mid=mid,
            qos=qos,
            generation=generation,
            received=time.monotonic(),
            topic=topic,
            payload=payload,
        )
        now = datetime.now(UTC)

        def reject_whole(reason: RejectReason, detail: str, device: str | None = None,
                         seq: int | None = None) -> Item:  # fmt: skip
            item.quarantine.append(self._record(topic, device, seq, None, reason, detail, payload))
            return item

        try:
            where = parse_device_topic(topic)
        except ValueError as exc:
            return reject_whole(RejectReason.BAD_TOPIC, str(exc))
        try:
            decoded = decode_readings(payload, max_bytes=self.settings.ingest_max_payload_bytes)
        except ProtocolError as exc:
            return reject_whole(exc.reason, exc.detail, where.device)
        if decoded.sent_at is not None:
            self.metrics.broker_lag.set((now - decoded.sent_at).total_seconds())
        if decoded.device != where.device:
            return reject_whole(
                RejectReason.TOPIC_MISMATCH,
                f"payload names device {decoded.device!r} but was published under device "
                f"{where.device!r}",
                decoded.device,
                decoded.seq,
            )
        device = await self._device(decoded.device)
        if device is None:
            return reject_whole(
                RejectReason.UNKNOWN_DEVICE,
                f"device {decoded.device!r} is not registered; add it with `qorgau devices add`",
                decoded.device,
                decoded.seq,
            )
        if device.enterprise_code != where.enterprise:
            return reject_whole(
                RejectReason.TOPIC_MISMATCH,
                f"device {device.code!r} belongs to enterprise {device.enterprise_code!r}, not "
                f"{where.enterprise!r}",
                decoded.device,
                decoded.seq,
            )
        checked = await self._check(decoded, device, now)
        item.device = device
        item.seq = decoded.seq
        item.channels = checked.channels
        item.readings = checked.readings
        for rejection in checked.rejections:
            item.quarantine.append(self._channel_record(topic, decoded, rejection))
        return item

    async def _check(
        self, decoded: DecodedMessage, device: DeviceInfo, now: datetime
    ) -> CheckedMessage:
        window = TimeWindow.around(
            now,
            max_past_s=self.settings.ingest_max_past_s,
            max_future_s=self.settings.ingest_max_future_s,
        )

        def run() -> CheckedMessage:
            return check_channels(
                decoded,
                device,
                window=window,
                auto_register=self.settings.ingest_auto_register_sensors,
            )

        checked = run()
        if not checked.new_sensors:
            return checked
        for channel in checked.new_sensors:
            sensor = await self._lookup.run(
                functools.partial(_register_sensor, device_id=device.id, channel=channel)
            )
            device.sensors[sensor.code] = sensor
            log.info("registered sensor %s of device %s", sensor.code, device.code)
        return run()

    async def _devices_many(self, codes: list[str]) -> dict[str, DeviceInfo | None]:
        """``_device`` for many codes in one registry lookup: a worker that starts, or whose
        cached entries expire together, meets its whole fleet in one chunk."""
        now = time.monotonic()
        asked = [code for code in codes if self._unknown_until.get(code, 0.0) <= now]
        found = await self._lookup.run(lambda conn: find_devices(conn, asked)) if asked else {}
        for code in asked:
            device = found.get(code)
            if device is None:
                self._unknown_until[code] = now + 5.0  # as in ``_device``
            else:
                self._devices[code] = (device, now + self.settings.ingest_device_cache_s)
        if len(self._unknown_until) > 10_000:
            self._unknown_until = {k: v for k, v in self._unknown_until.items() if v > now}
        return {code: found.get(code) for code in codes}

    async def _device(self, code: str) -> DeviceInfo | None:
        now = time.monotonic()
        cached = self._devices.get(code)
        if cached is not None and cached[1] > now:
            return cached[0]
        if self._unknown_until.get(code, 0.0) > now:
            return None
        device = await self._lookup.run(lambda conn: find_device(conn, code))
        if device is None:
            # Don't ask the database again for every message of a spoofed or new device.
            self._unknown_until[code] = now + 5.0
            if len(self._unknown_until) > 10_000:
                self._unknown_until = {k: v for k, v in self._unknown_until.items() if v > now}
            return None
        self._devices[code] = (device, now + self.settings.ingest_device_cache_s)
        return device

    def _record(
        self,
        topic: str,
        device: str | None,
        seq: int | None,
        sensor: str | None,
        reason: RejectReason,
        detail: str,
        payload: bytes | None,
    ) -> QuarantineRecord:
        cap = self.settings.ingest_quarantine_payload_bytes
        size = len(payload) if payload is not None else 0
        return QuarantineRecord(
            topic=topic,
            device=device,
            seq=seq,
            sensor=sensor,
            reason=reason,
            detail=detail[:2000],
            payload=payload[:cap] if payload is not None else None,
            payload_bytes=size,
        )

    def _channel_record(
        self, topic: str, decoded: DecodedMessage, rejection: Rejection
    ) -> QuarantineRecord:
        raw = json.dumps(rejection.raw, default=str).encode() if rejection.raw is not None else None
        return self._record(
            topic,
            decoded.device,
            decoded.seq,
            rejection.sensor,
            rejection.reason,
            rejection.detail,
            raw,
        )

    # ------------------------------------------------------------------ maintenance

    async def _check_settings(self) -> None:
        """Refuse, before subscribing, settings under which pruning could break exactly-once
        (``ConfigurationError``). With the database away the worker starts anyway: it waits for
        the database to write, and the maintenance job checks again before it prunes anything."""
        try:
            conn = await connect_async(
                self.settings.database_url, self.settings.database_schema, autocommit=True
            )
        except DatabaseError as exc:
            log.warning("settings not checked against the database yet (%s)", str(exc).strip())
            return
        async with conn:
            await check_dedupe_horizon(conn, self.settings.ingest_maintenance_policy())

    async def _maintenance_loop(self) -> None:
        """Retention and dedupe pruning, now and then every interval. Every worker runs this;
        the advisory lock in ``run_maintenance`` lets one act at a time. A failure is logged and
        retried at the next interval: it never stops ingest."""
        policy = self.settings.ingest_maintenance_policy()
        while True:
            try:
                conn = await connect_async(
                    self.settings.database_url, self.settings.database_schema, autocommit=True
                )
                async with conn:
                    report = await run_maintenance(conn, policy)
            except Exception as exc:
                self.metrics.maintenance_runs.labels("failed").inc()
                log.log(
                    logging.WARNING if is_connection_problem(exc) else logging.ERROR,
                    "maintenance job failed (%s); next try in %g s",
                    str(exc).strip() or type(exc).__name__,
                    self.settings.db_maintenance_interval_s,
                )
            else:
                self._failing_jobs = tuple(job.describe() for job in report.failing_jobs)
                self.metrics.db_jobs_failing.set(len(self._failing_jobs))
                for failing in self._failing_jobs:
                    log.warning("TimescaleDB background %s", failing)
                if report.acted:
                    self.metrics.maintenance_runs.labels("done").inc()
                    removed = self.metrics.maintenance_removed
                    removed.labels("partitions").inc(len(report.partitions))
                    for table, rows in report.rows.items():
                        removed.labels(table).inc(rows)
                else:
                    self.metrics.maintenance_runs.labels("skipped").inc()
                    log.debug("maintenance: another worker holds the lock")
            await asyncio.sleep(self.settings.db_maintenance_interval_s)

    # ------------------------------------------------------------------ writer

    async def _writer_loop(self) -> None:
        max_readings = self.settings.ingest_batch_max_readings
        # Half the window: the broker can send the next half while this batch commits.
        max_messages = max(1, self.settings.ingest_receive_maximum // 2)
        max_delay = self.settings.ingest_batch_max_delay_ms / 1000
        # Items of a chunk that did not fit the last batch: they start the next one, and a
        # flush waits for them (they were queued before it).
        carry: list[Item] = []
        flushes: list[_Flush] = []
        while True:
            first = carry or await self._queue.get()
            carry = []
            batch: list[Item] = []
            readings = 0
            if isinstance(first, _Flush):
                flushes.append(first)
            elif first:
                readings, carry = _fill(batch, first, readings, max_readings, max_messages)
                # The delay counts from the first message's arrival: one that waited in the
                # queue during the previous commit is not held back any longer.
                deadline = first[0].received + max_delay
                while not carry and readings < max_readings and len(batch) < max_messages:
                    try:
                        nxt = self._queue.get_nowait()
                    except asyncio.QueueEmpty:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        try:
                            nxt = await asyncio.wait_for(self._queue.get(), remaining)
                        except TimeoutError:
                            break
                    if isinstance(nxt, _Flush):
                        flushes.append(nxt)
                        break
                    readings, carry = _fill(batch, nxt, readings, max_readings, max_messages)
            if batch:
                self._queued -= len(batch)
                result = await self._commit_with_retry(batch)
                self._acknowledge(batch)
                self._after_commit(batch, result)
            self.metrics.queue_depth.set(self._queued)
            if not carry:
                for marker in flushes:
                    marker.done.set()
                flushes = []

    async def _commit_with_retry(self, batch: list[Item]) -> CommitResult:
        attempt = 0  # outages: retried for as long as they last, holding the acknowledgements
        failures = 0  # anything else: counted, then the batch is split and the culprit set aside
        in_doubt: _InDoubt | None = None
        while True:
            try:
                if in_doubt is not None:
                    settled = await self._settle(in_doubt)
                    if settled is not None:
                        self._database_ok()
                        return settled
                    in_doubt = None
                result = await self._commit(batch)
                self._database_ok()
                return result
            except Exception as exc:
                if self._attempt is not None:
                    in_doubt = self._attempt
                    self._attempt = None
                self.metrics.database_ok.set(0)
                self._database_error = _describe(exc)
                if self._write_conn is not None:
                    with contextlib.suppress(Exception):
                        await self._write_conn.close()
                self._write_conn = None
                if not _transient(exc):
                    failures += 1
                    self.metrics.processing_failures.labels(DeadLetterStage.WRITE).inc()
                    log.error(
                        "database write of %d messages failed (attempt %d of %d): %s",
                        len(batch),
                        failures,
                        self.settings.ingest_max_attempts,
                        self._database_error,
                        exc_info=failures == 1,
                    )
                    poisoned = len(batch) == 1 and batch[0].dead_letter is not None
                    if failures >= self.settings.ingest_max_attempts and not poisoned:
                        return await self._isolate(batch, failures, exc)
                    # A dead letter that cannot be written either (no dead_letters table?):
                    # hold it, unacknowledged, and say so until somebody fixes the database.
                    delay = backoff_delay_s(failures, cap_s=self.settings.ingest_retry_max_s)
                    await asyncio.sleep(delay)
                    continue
                # Connection loss, a restart, a deadlock with another worker: transient for
                # data that passed validation.
                attempt += 1
                self.metrics.db_retries.inc()
                delay = backoff_delay_s(attempt, cap_s=self.settings.ingest_retry_max_s)
                log.log(
                    logging.WARNING if is_connection_problem(exc) else logging.ERROR,
                    "database write of %d messages failed (%s); holding their acknowledgements "
                    "and retrying in %.1f s",
                    len(batch),
                    self._database_error,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _isolate(self, batch: list[Item], failures: int, exc: BaseException) -> CommitResult:
        """A batch failed ``failures`` times: commit its messages one at a time, so that only
        the one(s) that fail alone become dead letters."""
        if len(batch) > 1:
            log.warning("committing the %d messages of the failing batch one at a time", len(batch))
            return CommitResult.merge([await self._commit_with_retry([item]) for item in batch])
        item = batch[0]
        self._make_dead_letter(item, DeadLetterStage.WRITE, failures, exc)
        log.error(
            "gave up on the message %s device=%s seq=%s after %d failed writes; it goes to "
            "dead_letters (see `qorgau deadletters list`)",
            item.topic,
            item.dead_letter.device if item.dead_letter else None,
            item.seq,
            failures,
        )
        return await self._commit_with_retry(batch)

    def _database_ok(self) -> None:
        if self._database_error is not None:
            log.info("database writes succeed again")
        self._database_error = None
        self.metrics.database_ok.set(1)

    async def _settle(self, in_doubt: _InDoubt) -> CommitResult | None:
        """The result of a transaction whose COMMIT went unanswered, if it did commit; None if
        it did not (then the batch is written again; ``ingested_messages`` keeps that safe)."""
        conn = await self._connection()
        status = await xact_status(conn, in_doubt.xid)
        if status == "in progress":
            # The server has not noticed the dead connection yet; ask again after a pause.
            raise DatabaseError(f"transaction {in_doubt.xid} is still in progress")
        log.info("transaction %s of an unanswered COMMIT: %s", in_doubt.xid, status or "unknown")
        return in_doubt.result if status == "committed" else None

    async def _connection(self) -> Conn:
        if self._write_conn is None or self._write_conn.closed:
            self._write_conn = await connect_async(
                self.settings.database_url, self.settings.database_schema, autocommit=True
            )
        if self._backend is None:
            self._backend = await current_backend_async(self._write_conn)
        return self._write_conn

    async def _commit(self, batch: list[Item]) -> CommitResult:
        started = time.perf_counter()
        self._attempt = None
        conn = await self._connection()
        backend = self._backend or "plain"
        # First copy of each (device, seq) within the batch; later copies are redeliveries.
        first_of: dict[tuple[int, int], Item] = {}
        keyless: list[Item] = []
        for item in batch:
            key = item.key
            if key is None:
                keyless.append(item)
            else:
                first_of.setdefault(key, item)
        candidates = ReadingBlock.concat(
            _block(item) for item in first_of.values() if item.readings
        )
        if backend == "plain":
            missing = days_of(candidates.times_us) - self._days_ready
            if missing:
                # In its own short transaction: partition DDL must not sit inside the data
                # transaction, where it would lock against other workers' COPY.
                await ensure_day_partitions(conn, missing)
                self._days_ready |= missing
        async with conn.transaction():
            xid = await current_xact_id(conn)
            new_keys: set[tuple[int, int]] = set()
            if first_of:
                # Sorted, so that two workers inserting overlapping keys lock them in one order.
                keys = sorted(first_of)
                new_keys = await claim_messages(conn, keys, [first_of[k].readings for k in keys])
            fresh = [first_of[k] for k in first_of if k in new_keys]
            if len(fresh) == len(first_of):
                block = candidates
            else:
                block = ReadingBlock.concat(_block(item) for item in fresh if item.readings)
            await write_readings(conn, block, backend=backend)
            # Messages that never got a key (unparseable, unknown device) are quarantined as
            # received; a redelivery of one of those is quarantined again.
            records = [rec for item in fresh + keyless for rec in item.quarantine]
            dead = [item.dead_letter for item in keyless if item.dead_letter is not None]
            await insert_dead_letters(conn, dead)
            await insert_quarantine(conn, [r.row() for r in records])
            result = CommitResult(
                fresh=fresh,
                keyless=keyless,
                duplicates=len(batch) - len(fresh) - len(keyless),
                readings=len(block),
                quarantine=records,
                dead_letters=dead,
            )
            # From here until the COMMIT is answered, the outcome is in doubt if we fail.
            self._attempt = _InDoubt(xid, result)
        self._attempt = None
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        return result

    def _acknowledge(self, batch: list[Item]) -> None:
        client = self._client
        self._unacked -= len(batch)
        self.metrics.unacked.dec(len(batch))
        if client is None:
            return
        # Messages of a connection that is gone are left: the broker redelivers, we dedupe.
        generation = self._generation
        mids = [item.mid for item in batch if item.qos > 0 and item.generation == generation]
        try:
            mqtt.ack_many(client, mids)
        except Exception as exc:  # a dead socket: same as above
            log.info("could not acknowledge %d messages (%s); they will be redelivered",
                     len(mids), exc)  # fmt: skip

    def _after_commit(self, batch: list[Item], result: CommitResult) -> None:
        now = time.monotonic()
        self._last_commit = now
        self._last_commit_at = datetime.now(UTC)
        for dead in result.dead_letters:
            self._dead_letters += 1
            self._last_dead_letter_at = self._last_commit_at
            self.metrics.dead_letters.labels(dead.stage).inc()
            log.error(
                "dead letter (%s, %d attempts) from %s device=%s seq=%s: %s",
                dead.stage,
                dead.attempts,
                dead.topic,
                dead.device,
                dead.seq,
                dead.error,
            )
        self.metrics.last_commit.set(time.time())
        self.metrics.messages_committed.inc(len(batch))
        self.metrics.readings.inc(result.readings)
        self.metrics.duplicates.inc(result.duplicates)
        self.metrics.batch_readings.observe(result.readings)
        for item in batch:
            self.metrics.ingest_latency.observe(now - item.received)
        for rec in result.quarantine:
            self.metrics.quarantined.labels(rec.reason.value).inc()
            log.warning(
                "quarantined (%s) from %s device=%s seq=%s sensor=%s: %s",
                rec.reason.value,
                rec.topic,
                rec.device,
                rec.seq,
                rec.sensor,
                rec.detail,
            )
        if self._listeners and result.readings:
            parts = [(item.device, _channel_rows(item)) for item in result.fresh if item.readings]
            self._listeners.publish(
                build_batch([(d, c) for d, c in parts if d is not None], committed_at_s=time.time())
            )


def _transient(exc: BaseException) -> bool:
    """An outage (retried without counting) rather than a failure (counted towards a dead
    letter): the server or the connection went away, a deadlock or serialization conflict with
    another worker (psycopg's ``OperationalError`` family), an unanswered COMMIT being settled."""
    return is_connection_problem(exc) or isinstance(
        exc, psycopg.InterfaceError | OSError | DatabaseError
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip()}"[:2000]


def _block(item: Item) -> ReadingBlock:
    if item.block is not None:
        return item.block
    return ReadingBlock.concat(
        ReadingBlock(c.times_us, np.full(len(c.values), c.sensor.id, dtype=np.int32), c.values)
        for c in item.channels
    )


def _fill(
    batch: list[Item], chunk: list[Item], readings: int, max_readings: int, max_messages: int
) -> tuple[int, list[Item]]:
    """Move the chunk's items into the batch while it has room (a batch takes at least one);
    return the batch's readings and the items left over."""
    for index, item in enumerate(chunk):
        if batch and (readings >= max_readings or len(batch) >= max_messages):
            return readings, chunk[index:]
        batch.append(item)
        readings += item.readings
    return readings, []


def _channel_rows(item: Item) -> list[ChannelRows]:
    """The stored readings of a message per sensor, for listeners (the fast path keeps only the
    message's columns)."""
    if item.block is None or item.device is None:
        return item.channels
    block = item.block
    sensors = {s.id: s for s in item.device.sensors.values()}
    return [
        ChannelRows(sensors[int(sensor_id)], block.times_us[rows], block.values[rows])
        for sensor_id in np.unique(block.sensor_ids)
        for rows in [block.sensor_ids == sensor_id]
    ]


__all__ = ["CommittedBatch", "IngestWorker", "WorkerStatus"]
