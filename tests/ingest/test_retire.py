"""Removing a worker for good: its client id's session still holds its share of the stream
(Mosquitto queues it while the worker is away). ``retire`` drains that share into the database
and deletes the session, after which the remaining workers get everything."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.service import IngestWorker
from ingest.settings import IngestSettings
from tests.ingest.harness import ReliablePublisher, Workload, stored
from tests.support import eventually
from vocabulary.mqtt_url import MqttEndpoint

pytestmark = [pytest.mark.anyio, pytest.mark.services]


def session_present(url: str, client_id: str) -> bool:
    endpoint = MqttEndpoint.parse(url)
    answer: dict[str, bool] = {}
    connected = threading.Event()

    def on_connect(_c: object, _u: object, flags: paho.ConnectFlags, *_: object) -> None:
        answer["present"] = bool(flags.session_present)
        connected.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client.connect(endpoint.host, endpoint.port, clean_start=False, properties=props)
    client.loop_start()
    try:
        assert connected.wait(5)
    finally:
        client.disconnect()
        client.loop_stop()
    return answer["present"]


async def test_a_retired_worker_hands_in_its_share_and_leaves_the_group(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    first = Workload(
        topic_prefix,
        devices=6,
        messages=20,
        values=10,
        start=(datetime.now(UTC) - timedelta(hours=6)).replace(microsecond=0),
    )
    await first.register(pg_url, schema)

    def settings(client_id: str) -> IngestSettings:
        return IngestSettings(
            database_url=pg_url,
            database_schema=schema,
            mqtt_url=mqtt_url,
            topic_prefix=topic_prefix,
            ingest_client_id=client_id,
        )

    gone_id = f"gone-{topic_prefix}"
    stays = IngestWorker(settings(f"stays-{topic_prefix}"))
    gone = IngestWorker(settings(gone_id))
    stop_stays, stop_gone = asyncio.Event(), asyncio.Event()
    stays_task = asyncio.create_task(stays.run(stop_stays))
    gone_task = asyncio.create_task(gone.run(stop_gone))
    try:
        await asyncio.wait_for(stays.subscribed.wait(), 10)
        await asyncio.wait_for(gone.subscribed.wait(), 10)
        stop_gone.set()  # a clean stop: the session and its subscription stay with the broker
        await asyncio.wait_for(gone_task, 30)

        publisher = ReliablePublisher(mqtt_url, first.payloads())
        publisher.start()
        await eventually(publisher.done.is_set, what="the broker to take every message")
        await eventually(
            lambda: stays.metrics.messages_committed._value.get() > 0, what="the share that stays"
        )
        await asyncio.sleep(0.5)
        assert stored(pg_url, schema)[0] < first.readings, "the absent worker's share waits"

        await asyncio.wait_for(IngestWorker(settings(gone_id)).retire(idle_s=1.0), 60)
        await eventually(lambda: stored(pg_url, schema)[0] == first.readings, what="all stored")
        assert not session_present(mqtt_url, gone_id)

        # The group is one worker now: it takes everything, at once.
        later = Workload(
            topic_prefix,
            devices=6,
            messages=10,
            values=10,
            first_seq=first.messages,
            start=first.start,
        )
        before = stays.metrics.messages_committed._value.get()
        publisher = ReliablePublisher(mqtt_url, later.payloads())
        publisher.start()
        await eventually(publisher.done.is_set, what="the broker to take the later messages")
        await eventually(
            lambda: stored(pg_url, schema)[0] == first.readings + later.readings,
            what="the later messages, all by the remaining worker",
        )
        # The rows are visible as soon as PostgreSQL commits; the worker counts the batch a
        # moment later, once the COMMIT's answer reaches it.
        await eventually(
            lambda: stays.metrics.messages_committed._value.get() - before == 60,
            timeout_s=5,
            what="the remaining worker to count all 60",
        )
        total, distinct = stored(pg_url, schema)
        assert total == distinct
    finally:
        stop_stays.set()
        await asyncio.wait_for(stays_task, 30)
