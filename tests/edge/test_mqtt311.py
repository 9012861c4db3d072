"""The agent on MQTT 3.1.1 (``QORGAU_EDGE_MQTT_PROTOCOL=3.1.1``) through RabbitMQ 3.10's MQTT
plugin, which has no MQTT 5, into the quorum queue ingest reads. (A broker restart on 3.1.1:
``tests/edge/test_delivery.py``.)"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path

import aio_pika
import pytest

from edge.agent import EdgeAgent
from edge.clock import ScaledClock
from firmware_sim.device import standard_device
from ingest.amqp import declare_topology
from ingest.settings import IngestSettings
from qorgau.localrabbitmq import LocalRabbitCluster
from qorgau.localservices import free_port
from tests.edge.mqtt_support import expected_samples, received_stream
from tests.edge.test_delivery import past_start, settings

pytestmark = pytest.mark.services


@pytest.mark.anyio
async def test_an_agent_on_3_1_1_reaches_the_quorum_queue_through_rabbitmq(
    rabbitmq_cluster: LocalRabbitCluster, topic_prefix: str, tmp_path: Path
) -> None:
    queue_name = f"{topic_prefix}-edge"
    ingest = IngestSettings(
        broker="rabbitmq", topic_prefix=topic_prefix, ingest_share_group=queue_name
    )
    connection = await aio_pika.connect(rabbitmq_cluster.amqp_urls[0])
    async with connection:
        channel = await connection.channel()
        queue = await declare_topology(channel, ingest)  # before devices publish, as ingest does
        start = past_start()
        end = start + timedelta(minutes=2)
        # The first node named is away: the agent moves on to the next, as in a failover.
        urls = f"mqtt://guest:guest@127.0.0.1:{free_port()},{rabbitmq_cluster.mqtt_urls[1]}"
        agent = EdgeAgent(
            settings(urls, topic_prefix, tmp_path, enterprise="ent-1", edge_mqtt_protocol="3.1.1"),
            standard_device("dev-rmq", start, seed=3),
            clock=ScaledClock(start, speed=60.0),
        )
        await asyncio.to_thread(agent.run, threading.Event(), until=end)
        assert agent.stats.acknowledged == agent.stats.collected_messages > 0
        assert agent.endpoint.port == int(rabbitmq_cluster.mqtt_urls[1].rsplit(":", 1)[1])
        payloads: list[bytes] = []
        while len(payloads) < agent.stats.collected_messages:
            message = await queue.get(timeout=10, fail=False)
            if message is None:
                break
            assert message.routing_key == f"{topic_prefix}.v1.ent-1.dev-rmq.readings"
            payloads.append(message.body)
            await message.ack()
        stream = received_stream(payloads)
        assert stream.samples() == expected_samples(
            standard_device("dev-rmq", start, seed=3).read(end)
        )
        await channel.queue_delete(queue_name)
