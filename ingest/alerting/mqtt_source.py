"""The alert engine on Mosquitto: a persistent, non-shared MQTT 5 session.

The client id is stable across restarts (``QORGAU_ALERTS_CLIENT_ID``) and the session outlives a
disconnection (``QORGAU_ALERTS_SESSION_EXPIRY_S``), so messages published while the engine was
away are delivered when it returns. Device topics are subscribed at QoS 1; alert topics with
no-local, so the engine's own alerts do not come back and the API's (people's actions) do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.alerting.partition import Ownership
from ingest.alerting.settings import AlertsSettings
from ingest.alerting.source import Receive
from vocabulary.mqtt_client import mqtt5_client
from vocabulary.mqtt_url import MqttEndpoint


class MqttLink:
    def __init__(self, client: aiomqtt.Client) -> None:
        self._client = client

    async def read(self, receive: Receive) -> None:
        async for message in self._client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = str(payload).encode()
            await receive(str(message.topic), bytes(payload))

    async def publish(self, topic: str, payload: bytes) -> None:
        await self._client.publish(topic, payload, qos=1)


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

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[MqttLink]:
        client = self.client()
        async with client:
            wanted = self.ownership.subscriptions
            await client.subscribe([(f, SubscribeOptions(qos=1)) for f in wanted.devices])
            # No-local: our own alerts don't come back; the API's (people's actions) do.
            await client.subscribe(
                [(f, SubscribeOptions(qos=1, noLocal=True)) for f in wanted.alerts]
            )
            await self.ownership.forget_stale(client.unsubscribe)
            yield MqttLink(client)
