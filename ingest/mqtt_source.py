"""The Mosquitto source of ingest: an MQTT 5 shared subscription with a persistent session.

Acknowledging only after the commit means a crash at any point leaves every unstored message
unacknowledged, so the broker delivers it again to the same client id when it reconnects (see
docs/ingest.md). Backpressure: when the database is slow or away, acknowledgements stop and the
broker stops sending at our Receive Maximum and queues the rest. The reader takes what the
broker has sent a batch at a time (``ingest.mqtt.Inbox``), and a commit's acknowledgements go
out as one write (``ingest.mqtt.ack_many``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiomqtt

from ingest import mqtt
from ingest.batching import CHUNK_MESSAGES
from ingest.items import Item
from ingest.settings import IngestSettings
from ingest.source import Intake
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import readings_subscription

log = logging.getLogger(__name__)


class MqttSource:
    errors: tuple[type[BaseException], ...] = (aiomqtt.MqttError,)

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.endpoint = MqttEndpoint.parse(settings.mqtt_url)
        self._client: aiomqtt.Client | None = None
        self._generation = 0
        self._retire_idle_s: float | None = None
        self._last_message = time.monotonic()

    def label(self) -> str:
        return self.endpoint.redacted()

    async def retire(
        self, run: Callable[[asyncio.Event], Awaitable[None]], *, idle_s: float
    ) -> None:
        """Mosquitto keeps routing a worker's share to its session while it is away, and holds
        its unacknowledged messages for that client id alone; a session that expires takes them
        with it. So a worker that will not come back must drain first: connect with its id,
        unsubscribe (the broker stops choosing it), ingest what the session holds until nothing
        has arrived for ``idle_s``, then delete the session. Run it while other workers are
        subscribed, or new readings find no subscriber until one is."""
        self._retire_idle_s = idle_s
        await run(asyncio.Event())
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
        log.info(
            "retired client id %s: its session is drained and deleted",
            self.settings.ingest_client_id,
        )

    async def session(
        self, intake: Intake, stop: asyncio.Event, writer: asyncio.Task[None]
    ) -> None:
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
            retiring = self._retire_idle_s is not None
            await self._join(client, retiring)
            intake.connected(True)
            reader = asyncio.create_task(self._read_loop(intake, inbox), name="ingest-reader")
            stopping = asyncio.create_task(stop.wait())
            watcher = asyncio.create_task(self._watch_drained(intake, stop)) if retiring else None
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
                intake.connected(False)
                reader.result()  # re-raises the broker error that ended it
                return
            # Graceful stop: no new messages; commit and acknowledge what we hold while the
            # connection is still up, so the broker does not send it again.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await intake.flush(timeout_s=30.0)
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(
                    status_topic, self._status_payload("offline"), qos=1, retain=True, timeout=5
                )
            intake.connected(False)
            self._client = None

    async def _join(self, client: aiomqtt.Client, retiring: bool) -> None:
        """Subscribe (or, retiring, leave the share group) and say so on the status topic."""
        topic = readings_subscription(self.settings.topic_prefix, self.settings.ingest_share_group)
        if retiring:
            await client.unsubscribe(topic)
            log.info("retiring: left %s; draining the session", topic)
        else:
            await client.subscribe(topic, qos=1)
            log.info("subscribed to %s on %s", topic, self.endpoint.redacted())
        await client.publish(
            self.settings.status_topic(),
            self._status_payload("retiring" if retiring else "online"),
            qos=1,
            retain=True,
        )

    async def _read_loop(self, intake: Intake, inbox: mqtt.Inbox) -> None:
        generation = self._generation
        while True:
            received = await inbox.take(CHUNK_MESSAGES)
            self._last_message = time.monotonic()
            await intake.admit(received, generation)

    async def _watch_drained(self, intake: Intake, stop: asyncio.Event) -> None:
        """Retiring: stop once everything is acknowledged and nothing new came for a while (the
        broker sends queued messages as soon as acknowledgements make room)."""
        assert self._retire_idle_s is not None
        self._last_message = time.monotonic()
        while True:
            await asyncio.sleep(0.1)
            quiet = time.monotonic() - self._last_message
            if intake.unacknowledged == 0 and quiet >= self._retire_idle_s:
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

    def acknowledge(self, batch: list[Item]) -> None:
        client = self._client
        if client is None:
            return
        # Messages of a connection that is gone are left: the broker redelivers, we dedupe.
        generation = self._generation
        mids = [item.mid for item in batch if item.qos > 0 and item.generation == generation]
        try:
            mqtt.ack_many(client, mids)
        except (OSError, ValueError) as exc:  # a dead socket (or its closed descriptor)
            log.info(
                "could not acknowledge %d messages (%s); they will be redelivered", len(mids), exc
            )
