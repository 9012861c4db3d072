"""The agent on MQTT 3.1.1 (``QORGAU_EDGE_MQTT_PROTOCOL=3.1.1``), for brokers without MQTT 5
such as RabbitMQ 3.10's MQTT plugin: the same outbox and resending after a lost connection,
without the broker's Receive Maximum and PUBACK reason codes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import aio_pika
import pytest

from edge.agent import EdgeAgent
from edge.clock import ScaledClock
from edge.link import LinkState
from firmware_sim.device import standard_device
from ingest.amqp import declare_topology
from ingest.settings import IngestSettings
from qorgau.localrabbitmq import LocalRabbitCluster
from qorgau.localservices import LocalMosquitto
from tests.edge.mqtt_support import Consumer, distinct_seqs, expected_samples, received_stream
from tests.edge.test_delivery import past_start, settings

pytestmark = pytest.mark.services


@pytest.fixture
def consumers() -> Iterator[list[Consumer]]:
    made: list[Consumer] = []
    yield made
    for consumer in made:
        consumer.close()


def test_on_3_1_1_a_broker_restart_loses_nothing_and_repeats_nothing(
    broker_factory: Callable[..., LocalMosquitto],
    topic_prefix: str,
    tmp_path: Path,
    consumers: list[Consumer],
) -> None:
    broker = broker_factory()
    consumer = Consumer(broker.url, [f"{topic_prefix}/v1/+/+/readings"], client_id="c-311")
    consumers.append(consumer)
    start = past_start()
    end = start + timedelta(minutes=10)
    agent = EdgeAgent(
        settings(broker.url, topic_prefix, tmp_path, edge_flush_timeout_s=60.0,
                 edge_mqtt_protocol="3.1.1"),
        standard_device("dev-311", start, seed=7),
        clock=ScaledClock(start, speed=60.0),
    )  # fmt: skip
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), kwargs={"until": end})
    runner.start()
    try:
        consumer.wait_for(lambda c: len(c.payloads()) >= 10, what="the first messages")
        assert agent.link.receive_maximum is None  # 3.1.1 has none: the agent's own window
        broker.stop()
        time.sleep(2.0)
        assert agent.link.state is LinkState.DOWN
        broker.start()
        runner.join(120)
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert agent.stats.connections >= 2
    expected = expected_samples(standard_device("dev-311", start, seed=7).read(end))
    consumer.wait_for(
        lambda c: len(distinct_seqs(c)) == agent.stats.collected_messages,
        what="every message after the restart",
    )
    stream = received_stream(consumer.payloads())
    assert stream.seqs == list(range(stream.seqs[0], stream.seqs[0] + len(stream.seqs)))
    assert stream.samples() == expected


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
        agent = EdgeAgent(
            settings(rabbitmq_cluster.mqtt_urls[1], topic_prefix, tmp_path,
                     enterprise="ent-1", edge_mqtt_protocol="3.1.1"),
            standard_device("dev-rmq", start, seed=3),
            clock=ScaledClock(start, speed=60.0),
        )  # fmt: skip
        await asyncio.to_thread(agent.run, threading.Event(), until=end)
        assert agent.stats.acknowledged == agent.stats.collected_messages > 0
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
