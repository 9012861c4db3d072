"""The RabbitMQ source of ingest: a quorum queue read over AMQP (``QORGAU_BROKER=rabbitmq``).

Devices publish over MQTT to RabbitMQ's MQTT plugin, which routes every message to the
``amq.topic`` exchange (topic ``a/b/c`` becomes routing key ``a.b.c``). Qorgau declares, at
every connection and idempotently, one durable quorum queue named after the share group, with
``amqp_quorum_replicas`` replicas, bound to every device's readings. The workers are its
competing consumers, the same role a shared subscription plays on Mosquitto.

Only the source differs (``ingest.source``): each delivery is handed to the worker, whose
one code path admits, validates, quarantines, dedupes, copies and commits it, and a committed
batch is acknowledged with one ``basic.ack`` (``multiple``) up to its last delivery
tag. The consumer's prefetch is ``QORGAU_INGEST_RECEIVE_MAXIMUM``: the bound the broker's
Receive Maximum gives on Mosquitto.

When the queue's leader node dies, its followers elect a new leader and every delivered but
unacknowledged message comes again: the ``(device, seq)`` dedupe stores each reading once. A
worker whose own node died reconnects to the next URL of ``QORGAU_AMQP_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import aio_pika
import aio_pika.abc
import aiormq
import pamqp.exceptions

from ingest.amqp_broker import EXCHANGE, amqp_urls, closed, redacted, routing_prefix, topic_of
from ingest.batching import CHUNK_MESSAGES
from ingest.items import Item, Received
from ingest.settings import IngestSettings
from ingest.source import Intake
from vocabulary.protocol.topics import WIRE_VERSION_SEGMENT

log = logging.getLogger(__name__)


def readings_binding(topic_prefix: str) -> str:
    """The binding key of every device's readings. ``#`` (not ``*.*``) so that an enterprise or
    device code with a dot is still routed to the queue (and quarantined there, see
    :func:`topic_of`), never dropped as unroutable."""
    return f"{routing_prefix(topic_prefix)}.{WIRE_VERSION_SEGMENT}.#.readings"


async def declare_topology(
    channel: aio_pika.abc.AbstractChannel, settings: IngestSettings
) -> aio_pika.abc.AbstractQueue:
    """The readings queue and its binding; a no-op when they exist with these arguments (a
    queue that exists with other arguments is refused by RabbitMQ: PRECONDITION_FAILED)."""
    queue = await channel.declare_queue(
        settings.ingest_share_group,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-quorum-initial-group-size": settings.amqp_quorum_replicas,
        },
    )
    await queue.bind(EXCHANGE, routing_key=readings_binding(settings.topic_prefix))
    return queue


class AmqpSource:
    """The readings quorum queue of a RabbitMQ cluster, consumed by this worker."""

    errors: tuple[type[BaseException], ...] = (
        aiormq.exceptions.AMQPError,
        pamqp.exceptions.PAMQPException,
        ConnectionError,
        OSError,
        TimeoutError,
    )

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.urls = amqp_urls(settings.amqp_url)
        self._url_index = 0
        self._generation = 0
        self._channel: aio_pika.abc.AbstractChannel | None = None
        # Acknowledgements go out in order from one task: a multiple-ack below a tag already
        # acknowledged would be refused by the broker and close the channel.
        self._ack_upto = 0
        self._acked = 0
        self._ack_wanted = asyncio.Event()
        self._ack_done = asyncio.Event()

    def label(self) -> str:
        return redacted(self.urls[self._url_index % len(self.urls)])

    async def retire(
        self, run: Callable[[asyncio.Event], Awaitable[None]], *, idle_s: float
    ) -> None:
        """Nothing to drain: the queue, not a per-worker session, holds the messages, and the
        other consumers take them."""
        log.info("on RabbitMQ a worker holds no session of its own; nothing to retire")

    async def session(
        self, intake: Intake, stop: asyncio.Event, writer: asyncio.Task[None]
    ) -> None:
        url = self.urls[self._url_index % len(self.urls)]
        # The next attempt, should this one fail, goes to the next node.
        self._url_index += 1
        connection = await aio_pika.connect(url, timeout=10, client_properties=self._properties())
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.settings.ingest_receive_maximum)
            queue = await declare_topology(channel, self.settings)
            self._url_index -= 1  # connected: stay with this node while it lasts
            self._channel = channel
            self._generation += 1
            generation = self._generation
            self._ack_upto = self._acked = 0
            log.info("consuming quorum queue %s on %s", queue.name, self.label())
            intake.connected(True)
            reader = asyncio.create_task(
                self._consume(intake, queue, generation), name="ingest-reader"
            )
            acker = asyncio.create_task(self._ack_loop(channel), name="ingest-acks")
            lost = asyncio.create_task(closed(connection, channel))
            stopping = asyncio.create_task(stop.wait())
            tasks = {reader, acker, lost, stopping, writer}
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                self._channel = None
                for task in (reader, acker, lost):
                    task.cancel()
                raise
            finally:
                stopping.cancel()
            if writer.done():
                for task in (reader, acker, lost):
                    task.cancel()
                writer.result()
            if not stop.is_set():
                self._channel = None
                intake.connected(False)
                self._end_lost((reader, acker, lost))
            # Graceful stop: commit and acknowledge what we hold while the channel is up.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await intake.flush(timeout_s=30.0)
            await self._wait_acks_sent(timeout_s=5.0)
            acker.cancel()
            lost.cancel()
            self._channel = None
            intake.connected(False)

    def _end_lost(self, tasks: tuple[asyncio.Task[None], ...]) -> NoReturn:
        """The session's end when the connection or a task of it failed: raise why."""
        for task in tasks:
            task.cancel()
        for task in tasks:
            if task.done() and not task.cancelled():
                error = task.exception()
                if error is not None:
                    self._url_index += 1  # the node is likely gone: try the next first
                    raise error
        lost_node = self.label()
        self._url_index += 1
        raise ConnectionError(f"connection to {lost_node} lost")

    def _properties(self) -> dict[str, Any]:
        return {"connection_name": self.settings.ingest_client_id}

    async def _consume(
        self, intake: Intake, queue: aio_pika.abc.AbstractQueue, generation: int
    ) -> None:
        """Hand the deliveries to the worker as they come, several at once when several
        arrived meanwhile (a backlog, a redelivery after a failover)."""
        prefix = self.settings.topic_prefix
        arrived: list[Received] = []
        ready = asyncio.Event()

        async def delivered(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            if message.delivery_tag is not None:  # None only for basic.get, never here
                topic = topic_of(message.routing_key or "", prefix)
                arrived.append(Received(topic, message.body, message.delivery_tag, 1))
                ready.set()

        tag = await queue.consume(delivered)
        try:
            while True:
                await ready.wait()
                ready.clear()
                while arrived:
                    chunk = arrived[:CHUNK_MESSAGES]
                    del arrived[:CHUNK_MESSAGES]
                    await intake.admit(chunk, generation)
        finally:
            # Stopping: no more deliveries; those not admitted go back to the queue when the
            # channel closes (they were never acknowledged).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(queue.cancel(tag), 5)

    def acknowledge(self, batch: list[Item]) -> None:
        tags = [item.mid for item in batch if item.generation == self._generation]
        # Messages of a channel that is gone were requeued by the broker; we dedupe the copies.
        if tags and self._channel is not None:
            self._ack_upto = max(self._ack_upto, max(tags))
            self._ack_done.clear()
            self._ack_wanted.set()

    async def _ack_loop(self, channel: aio_pika.abc.AbstractChannel) -> None:
        raw = await channel.get_underlay_channel()
        while True:
            await self._ack_wanted.wait()
            self._ack_wanted.clear()
            upto = self._ack_upto
            if upto > self._acked:
                # Every tag up to ``upto`` is committed: batches commit in delivery order.
                await raw.basic_ack(upto, multiple=True)
                self._acked = upto
            if self._acked >= self._ack_upto:
                self._ack_done.set()

    async def _wait_acks_sent(self, timeout_s: float) -> None:
        if self._acked >= self._ack_upto:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ack_done.wait(), timeout_s)
