"""Where the alert engine reads and publishes: one small interface, two brokers.

``QORGAU_BROKER=mosquitto`` (the default): a persistent, non-shared MQTT 5 session on
``QORGAU_MQTT_URL`` (``mqtt_source``). ``QORGAU_BROKER=rabbitmq``: a durable quorum queue of the
engine's own on the RabbitMQ cluster of ``QORGAU_AMQP_URL``, bound to ``amq.topic``
(``amqp_source``). Either way the engine sees ``(topic, payload)`` pairs with MQTT topics, and
its alerts reach every MQTT subscriber of the alert topics.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from ingest.alerting.partition import Ownership
from ingest.alerting.settings import AlertsSettings

#: Takes the messages that have arrived, in order: each its MQTT topic and payload.
Receive = Callable[[Sequence[tuple[str, bytes]]], Awaitable[None]]


class BrokerLink(Protocol):
    """One connection to the broker, subscribed to what the engine owns."""

    async def read(self, receive: Receive) -> None:
        """Hand every message to ``receive`` (what has arrived, a batch at a time), in arrival
        order, until the connection ends (then raise one of the source's ``errors``)."""

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish an alert at least once (QoS 1, or a confirmed persistent message)."""


class AlertSource(Protocol):
    #: What a lost or refused connection raises: the engine reconnects (and retries a publish).
    errors: tuple[type[BaseException], ...]

    def label(self) -> str:
        """The broker, for logs (no password)."""

    def connect(self) -> AbstractAsyncContextManager[BrokerLink]:
        """Connect and subscribe; leaving the context disconnects."""


def make_source(settings: AlertsSettings, ownership: Ownership) -> AlertSource:
    """The source for ``QORGAU_BROKER``: the one place that chooses the broker."""
    if settings.broker == "rabbitmq":
        from ingest.alerting.amqp_source import AmqpSource

        return AmqpSource(settings, ownership)
    from ingest.alerting.mqtt_source import MqttSource

    return MqttSource(settings, ownership)
