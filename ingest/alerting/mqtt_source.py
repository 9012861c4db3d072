"""The alert engine on Mosquitto: a persistent, non-shared MQTT 5 session, and a connection of
its own for publishing alerts.

The client id is stable across restarts (``QORGAU_ALERTS_CLIENT_ID``) and the session outlives a
disconnection (``QORGAU_ALERTS_SESSION_EXPIRY_S``), so messages published while the engine was
away are delivered when it returns. Device and alert topics are subscribed at QoS 1 (the API
publishes people's actions on the alert topics).

The reading connection is read as ingest reads (``ingest.mqtt``): the socket 64 KiB at a time,
every PUBLISH that has arrived parsed in one wake-up into an ``Inbox``, handed to the engine a
batch at a time and acknowledged in one write once the batch is in the detectors' pending
samples. (aiomqtt hands one message per turn of the event loop; at a thousand small messages a
second the engine fell seconds behind on reading alone.)

Alerts go out on a second connection (client id ``{QORGAU_ALERTS_CLIENT_ID}-publish``, clean
session, no subscriptions): on the reading connection an alert's PUBACK waited behind every
reading the broker had queued for the engine, and under load timed out though the alert had
reached the broker at once. No-local spares a connection only its own messages, so the engine's
alerts carry its client id as the user property ``qorgau-engine`` and the reader drops them,
unread, when they come back (as ``app_id`` on RabbitMQ).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiomqtt
from paho.mqtt.exception import MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.alerting.partition import Ownership
from ingest.alerting.settings import AlertsSettings
from ingest.alerting.source import Receive
from ingest.mqtt import Inbox, RawMessage, ack_many, build_client
from vocabulary.mqtt_client import mqtt5_client
from vocabulary.mqtt_url import MqttEndpoint

#: Longest wait for an alert's PUBACK on the publishing connection: it carries nothing else, so a
#: slower one means the connection is gone (both connections are then opened again).
PUBLISH_TIMEOUT_S = 5.0
#: User property naming the engine that published an alert.
ENGINE_PROPERTY = "qorgau-engine"
#: Messages handed to the engine at most at once (what has arrived, when fewer).
_BATCH_MESSAGES = 1000


class MqttLink:
    def __init__(
        self, reading: aiomqtt.Client, inbox: Inbox, publishing: aiomqtt.Client, own: str
    ) -> None:
        self._reading = reading
        self._inbox = inbox
        self._publishing = publishing
        self._publisher_lost = asyncio.Event()
        self._properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        self._signature = (ENGINE_PROPERTY, own)
        self._properties.UserProperty = [self._signature]

    async def read(self, receive: Receive) -> None:
        messages = asyncio.create_task(self._messages(receive), name="alerts-mqtt-messages")
        lost = asyncio.create_task(self._publisher_lost.wait())
        try:
            await asyncio.wait({messages, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (messages, lost):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if messages.done() and not messages.cancelled() and messages.exception() is not None:
            messages.result()  # the reading connection failed
        # Only ever reached when the publishing connection failed: the reader ends by raising.
        raise aiomqtt.MqttError("the connection publishing alerts failed")

    async def _messages(self, receive: Receive) -> None:
        while True:
            taken = await self._inbox.take(_BATCH_MESSAGES)
            await receive(
                [(m.topic, m.payload) for m in taken if not m.properties or not self._own(m)]
            )
            # Acknowledged once handed to the detectors' pending batch, as on RabbitMQ: the
            # session's Receive Maximum bounds what waits unread.
            ack_many(self._reading, [message.mid for message in taken if message.qos])

    def _own(self, message: RawMessage) -> bool:
        """One of this engine's alerts coming back (devices' messages carry no properties)."""
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        try:
            properties.unpack(message.properties)  # type: ignore[no-untyped-call]
        except (MQTTException, LookupError, ValueError, TypeError):
            return False  # not ours: ours are well formed
        return self._signature in getattr(properties, "UserProperty", ())

    async def publish(self, topic: str, payload: bytes) -> None:
        try:
            await self._publishing.publish(
                topic, payload, qos=1, properties=self._properties, timeout=PUBLISH_TIMEOUT_S
            )
        except aiomqtt.MqttError:
            # The session reconnects both connections; the publisher retries after that.
            self._publisher_lost.set()
            raise


class MqttSource:
    errors: tuple[type[BaseException], ...] = (aiomqtt.MqttError,)

    def __init__(self, settings: AlertsSettings, ownership: Ownership) -> None:
        self.settings = settings
        self.ownership = ownership
        self.endpoint = MqttEndpoint.parse(settings.mqtt_url)

    def label(self) -> str:
        return self.endpoint.redacted()

    def client(self) -> aiomqtt.Client:
        return build_client(
            self.endpoint,
            client_id=self.settings.alerts_client_id,
            session_expiry_s=self.settings.alerts_session_expiry_s,
            receive_maximum=self.settings.alerts_receive_maximum,
            clean_start=False,
        )

    def publishing_client(self) -> aiomqtt.Client:
        """Nothing to keep between connections: the outbox holds what was not acknowledged."""
        client = mqtt5_client(
            self.endpoint, client_id=f"{self.settings.alerts_client_id}-publish", clean_start=True
        )
        # The publisher keeps up to a hundred alerts awaiting acknowledgement by design; aiomqtt
        # warns beyond ten (one log line per publish during a burst of transitions).
        client.pending_calls_threshold = 1000
        return client

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[MqttLink]:
        client = self.client()
        # Before connecting: a resumed session delivers its queued messages right after CONNACK.
        inbox = Inbox(client)
        publishing = self.publishing_client()
        async with client, publishing:
            wanted = self.ownership.subscriptions
            await client.subscribe([(f, SubscribeOptions(qos=1)) for f in wanted.devices])
            # People's actions (the API's alerts); the engine's own come back too, from its
            # publishing connection, and are dropped unread (``MqttLink``).
            await client.subscribe([(f, SubscribeOptions(qos=1)) for f in wanted.alerts])
            await self.ownership.forget_stale(client.unsubscribe)
            yield MqttLink(client, inbox, publishing, self.settings.alerts_client_id)
