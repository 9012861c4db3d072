"""The API's link to the alert topics: one MQTT subscription per API process, fanned out to
every live stream (SSE), and the publisher of people's transitions.

The API never polls the database for new alerts: the engine publishes each transition on
``{prefix}/v1/{enterprise}/alerts/{kind}`` and this hub receives it like any other subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import aiomqtt

from api.broker_link import keep_connected, run_until_stopped
from vocabulary.mqtt_client import mqtt5_client
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import ProtocolError
from vocabulary.protocol.alerts import AlertMessage, alerts_subscription, decode_alert

log = logging.getLogger(__name__)


class AlertHub:
    def __init__(self, mqtt_url: str, prefix: str, *, queue_size: int = 1000) -> None:
        self.endpoint = MqttEndpoint.parse(mqtt_url)
        self.prefix = prefix
        self.queue_size = queue_size
        self._subscribers: set[asyncio.Queue[AlertMessage | None]] = set()
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.refused = 0  # alerts not passed on: malformed, or payload and topic disagree

    def subscribe(self) -> asyncio.Queue[AlertMessage | None]:
        queue: asyncio.Queue[AlertMessage | None] = asyncio.Queue(self.queue_size)
        self._subscribers.add(queue)
        return queue

    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def unsubscribe(self, queue: asyncio.Queue[AlertMessage | None]) -> None:
        self._subscribers.discard(queue)

    def fan_out(self, message: AlertMessage) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                # A client that cannot keep up is cut off (None ends its stream) rather than
                # slowing everybody else; it reconnects and lists what it missed.
                self._subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    async def publish(self, message: AlertMessage) -> bool:
        """Publish a person's transition (QoS 1); False if the broker is away right now."""
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(message.topic(self.prefix), message.payload(), qos=1, timeout=5)
        except aiomqtt.MqttError as exc:
            log.warning("could not publish alert %s: %s", message.alert_id, exc)
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        await keep_connected(lambda: self._session(stop), stop, link="alert stream")
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    async def _session(self, stop: asyncio.Event) -> None:
        client = mqtt5_client(self.endpoint, client_id=f"qorgau-api-{uuid.uuid4().hex[:12]}")
        try:
            async with client:
                await client.subscribe(alerts_subscription(self.prefix), qos=1)
                self._client = client
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
            try:
                # The enterprise is the topic's: viewers are filtered on it, so a payload
                # naming another enterprise would reach that enterprise's people.
                message = decode_alert(str(raw.topic), bytes(payload))
            except ProtocolError as exc:
                self.refused += 1
                log.warning("refused an alert on %s: %s", raw.topic, exc)
                continue
            self.fan_out(message)
