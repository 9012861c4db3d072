"""The alert engine on Mosquitto: a persistent, non-shared MQTT 5 session, and a connection of
its own for publishing alerts.

The client id is stable across restarts (``QORGAU_ALERTS_CLIENT_ID``) and the session outlives a
disconnection (``QORGAU_ALERTS_SESSION_EXPIRY_S``), so messages published while the engine was
away are delivered when it returns. Device and alert topics are subscribed at QoS 1 (the API
publishes people's actions on the alert topics).

Alerts go out on a second connection (client id ``{QORGAU_ALERTS_CLIENT_ID}-publish``, clean
session, no subscriptions). On the reading connection a PUBACK arrives behind every reading the
broker has queued for the engine, and paho reads one packet per turn of the event loop: under
load an alert waited seconds for its acknowledgement (and timed out), though it had reached the
broker at once. No-local spares a connection only its own messages, so the engine's alerts
carry its client id as a user property and the reader drops them unread when they come back
(as ``app_id`` on RabbitMQ).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.alerting.partition import Ownership
from ingest.alerting.settings import AlertsSettings
from ingest.alerting.source import Receive
from vocabulary.mqtt_client import mqtt5_client
from vocabulary.mqtt_url import MqttEndpoint

#: Longest wait for an alert's PUBACK on the publishing connection: it carries nothing else, so a
#: slower one means the connection is gone (both connections are then opened again).
PUBLISH_TIMEOUT_S = 5.0
#: User property naming the engine that published an alert.
ENGINE_PROPERTY = "qorgau-engine"


class MqttLink:
    def __init__(self, reading: aiomqtt.Client, publishing: aiomqtt.Client, own: str) -> None:
        self._reading = reading
        self._publishing = publishing
        self._publisher_lost = asyncio.Event()
        self._signature = (ENGINE_PROPERTY, own)
        self._properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
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
        # Only ever reached when the publishing connection failed: the reader ends by raising.
        raise aiomqtt.MqttError("the connection publishing alerts failed")

    async def _messages(self, receive: Receive) -> None:
        async for message in self._reading.messages:
            properties = message.properties
            if properties is not None and self._signature in getattr(
                properties, "UserProperty", ()
            ):
                continue  # one of our own alerts coming back
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = str(payload).encode()
            await receive(str(message.topic), bytes(payload))

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
        return mqtt5_client(
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
        publishing = self.publishing_client()
        async with client, publishing:
            wanted = self.ownership.subscriptions
            await client.subscribe([(f, SubscribeOptions(qos=1)) for f in wanted.devices])
            # People's actions (the API's alerts); the engine's own come back too, from its
            # publishing connection, and are dropped unread (``MqttLink``).
            await client.subscribe([(f, SubscribeOptions(qos=1)) for f in wanted.alerts])
            await self.ownership.forget_stale(client.unsubscribe)
            yield MqttLink(client, publishing, self.settings.alerts_client_id)
