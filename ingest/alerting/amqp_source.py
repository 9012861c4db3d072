"""The alert engine on RabbitMQ (``QORGAU_BROKER=rabbitmq``): a durable quorum queue of its own.

Devices publish over MQTT to RabbitMQ's MQTT plugin, which routes every message to
``amq.topic``. The engine declares, at every connection and idempotently, a quorum queue named
after ``QORGAU_ALERTS_CLIENT_ID`` (``QORGAU_AMQP_QUORUM_REPLICAS`` replicas) and binds it to the
topic filters of the enterprises it owns (``partition.py``): the broker routes nothing else to
it, as a subscription on Mosquitto. The queue is the persistent session's counterpart: what
arrives while the engine is away waits for it, on any surviving node, and an engine whose node
dies reconnects through the next one. It has a *single active consumer*: a second process
started under the same client id stands by instead of splitting the stream.

Deliveries are acknowledged once handed to the detectors' pending batch (one ``basic.ack``
with ``multiple`` per burst), as MQTT acknowledges them on receipt; what comes again after a
failover is dropped by the (device, seq) dedupe. The prefetch is
``QORGAU_ALERTS_RECEIVE_MAXIMUM``, the bound Receive Maximum gives on Mosquitto.

Alerts are published to ``amq.topic`` with the alert topic as routing key (``/`` → ``.``), so
MQTT subscribers of the alert topics receive them through the plugin. The queue's own binding of
the alert topics (for people's transitions, published by the API) brings them back too; they
carry the engine's client id as ``app_id`` and are dropped unread (MQTT's no-local).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import aio_pika.abc

from ingest.alerting.partition import Ownership
from ingest.alerting.settings import AlertsSettings
from ingest.alerting.source import Receive
from ingest.amqp_broker import (
    BROKER_ERRORS,
    EXCHANGE,
    amqp_urls,
    binding_key,
    redacted,
    routing_key,
    topic_of,
)

log = logging.getLogger(__name__)

# Deliveries handed to the engine between two acknowledgements at most.
_CHUNK_MESSAGES = 500


class AmqpLink:
    def __init__(
        self,
        queue: aio_pika.abc.AbstractQueue,
        exchange: aio_pika.abc.AbstractExchange,
        settings: AlertsSettings,
        lost: asyncio.Event,
    ) -> None:
        self._queue = queue
        self._exchange = exchange
        self._prefix = settings.topic_prefix
        self._own = settings.alerts_client_id
        self._lost = lost

    async def read(self, receive: Receive) -> None:
        arrived: list[aio_pika.abc.AbstractIncomingMessage] = []
        ready = asyncio.Event()

        async def delivered(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            arrived.append(message)
            ready.set()

        watch = asyncio.create_task(self._lost.wait())
        watch.add_done_callback(lambda _: ready.set())
        tag = await self._queue.consume(delivered)
        try:
            while True:
                await ready.wait()
                ready.clear()
                if self._lost.is_set():
                    raise ConnectionError("the connection to RabbitMQ was lost")
                while arrived:
                    chunk = arrived[:_CHUNK_MESSAGES]
                    del arrived[:_CHUNK_MESSAGES]
                    await self._hand_on(chunk, receive)
        finally:
            watch.cancel()
            if not self._lost.is_set():
                with contextlib.suppress(*BROKER_ERRORS):
                    await asyncio.wait_for(self._queue.cancel(tag), 5)

    async def _hand_on(
        self, chunk: list[aio_pika.abc.AbstractIncomingMessage], receive: Receive
    ) -> None:
        await receive(
            [
                (topic_of(message.routing_key or "", self._prefix), message.body)
                for message in chunk
                if message.app_id != self._own  # not one of our own alerts coming back
            ]
        )
        last = chunk[-1]
        if last.delivery_tag is not None:  # None only for basic.get, never here
            channel = last.channel
            await channel.basic_ack(last.delivery_tag, multiple=True)

    async def publish(self, topic: str, payload: bytes) -> None:
        message = aio_pika.Message(
            payload, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, app_id=self._own
        )
        # Not mandatory: an alert topic nobody subscribes to is not an error (as on MQTT).
        await self._exchange.publish(message, routing_key=routing_key(topic), mandatory=False)


class AmqpSource:
    errors: tuple[type[BaseException], ...] = BROKER_ERRORS

    def __init__(self, settings: AlertsSettings, ownership: Ownership) -> None:
        self.settings = settings
        self.ownership = ownership
        self.urls = amqp_urls(settings.amqp_url)
        self._attempt = 0

    def label(self) -> str:
        return redacted(self.urls[(self._attempt - 1) % len(self.urls)])

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AmqpLink]:
        # Each connection goes to the next node: after a failure, or a node that went away,
        # another one serves.
        url = self.urls[self._attempt % len(self.urls)]
        self._attempt += 1
        connection = await aio_pika.connect(
            url, timeout=10, client_properties={"connection_name": self.settings.alerts_client_id}
        )
        async with connection:
            lost = asyncio.Event()

            def closed(*_: Any) -> None:
                lost.set()

            consuming = await connection.channel()
            await consuming.set_qos(prefetch_count=self.settings.alerts_receive_maximum)
            publishing = await connection.channel(publisher_confirms=True)
            for watched in (connection, consuming, publishing):
                watched.close_callbacks.add(closed)
            queue = await self.declare(consuming)
            exchange = await publishing.get_exchange(EXCHANGE, ensure=False)
            yield AmqpLink(queue, exchange, self.settings, lost)

    async def declare(self, channel: aio_pika.abc.AbstractChannel) -> aio_pika.abc.AbstractQueue:
        """The engine's queue and its bindings; a no-op when they exist (a queue that exists
        with other arguments is refused by RabbitMQ: PRECONDITION_FAILED)."""
        queue = await channel.declare_queue(
            self.settings.alerts_client_id,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-quorum-initial-group-size": self.settings.amqp_quorum_replicas,
                # A second process under the same client id stands by rather than splitting
                # the stream: a detector needs every reading of a sensor.
                "x-single-active-consumer": True,
            },
        )
        wanted = self.ownership.subscriptions
        for topic_filter in (*wanted.devices, *wanted.alerts):
            await queue.bind(EXCHANGE, routing_key=binding_key(topic_filter))

        async def unbind(filters: list[str]) -> None:
            for topic_filter in filters:
                await queue.unbind(EXCHANGE, routing_key=binding_key(topic_filter))

        await self.ownership.forget_stale(unbind)
        return queue
