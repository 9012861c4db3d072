"""Ingest on a 3-node RabbitMQ cluster: devices publish over MQTT (the plugin, 3.1.1) to
``amq.topic``, ``qorgau ingest`` workers read a 3-replica quorum queue over AMQP, and the
queue's leader node is killed in the middle of the stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import aio_pika
import pytest

from ingest.amqp import declare_topology
from ingest.amqp_broker import EXCHANGE
from ingest.service import make_worker
from ingest.settings import IngestSettings
from qorgau.localrabbitmq import LocalRabbitCluster
from qorgau.localservices import ServiceStartError
from tests.ingest.cluster_harness import FailoverPublisher, exactly_once, restore_nodes
from tests.ingest.harness import CHANNELS, ENTERPRISE, WorkerProcess, Workload
from tests.support import eventually, rows
from vocabulary.protocol import readings_topic

pytestmark = [pytest.mark.services, pytest.mark.anyio]


def _queue_row(cluster: LocalRabbitCluster, queue: str) -> dict[str, object]:
    out = cluster.ctl(
        cluster.any_running(), "list_queues", "name", "type", "members", "--formatter", "json"
    )
    return next(row for row in json.loads(out) if row["name"] == queue)


async def test_qorgau_declares_a_replicated_quorum_queue_idempotently(
    rabbitmq_cluster: LocalRabbitCluster, topic_prefix: str
) -> None:
    settings = IngestSettings(
        broker="rabbitmq", topic_prefix=topic_prefix, ingest_share_group=f"{topic_prefix}-ingest"
    )
    connection = await aio_pika.connect(rabbitmq_cluster.amqp_urls[1])
    async with connection:
        channel = await connection.channel()
        for _ in range(2):  # a second worker, or a restart, declares the same again
            await declare_topology(channel, settings)
        row = _queue_row(rabbitmq_cluster, settings.ingest_share_group)
        assert row["type"] == "quorum"
        assert sorted(row["members"]) == sorted(n.name for n in rabbitmq_cluster.nodes)  # type: ignore[call-overload]
        await channel.queue_delete(settings.ingest_share_group)


@pytest.mark.slow
async def test_every_acknowledged_reading_is_stored_once_when_the_queue_leader_dies(
    rabbitmq_cluster: LocalRabbitCluster,
    pg_url: str,
    schema: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    restore_nodes(rabbitmq_cluster)
    queue = f"{topic_prefix}-ingest"
    workload = Workload(prefix=topic_prefix, devices=10, messages=80, values=10)
    await workload.register(pg_url, schema)
    payloads = workload.payloads()
    amqp = rabbitmq_cluster.amqp_urls
    mqtt = rabbitmq_cluster.mqtt_urls
    workers = [
        WorkerProcess(
            pg_url,
            schema,
            mqtt[0],
            topic_prefix,
            f"w{i}",
            tmp_path / f"w{i}.log",
            env={
                "QORGAU_BROKER": "rabbitmq",
                # Each worker starts on its own node and moves on along the list.
                "QORGAU_AMQP_URL": ",".join(amqp[i:] + amqp[:i]),
                "QORGAU_INGEST_SHARE_GROUP": queue,
                "QORGAU_INGEST_RECEIVE_MAXIMUM": "200",
            },
        ).start()
        for i in range(2)
    ]
    publishers: list[FailoverPublisher] = []
    try:
        for worker in workers:
            worker.wait_ready(60)
        half = len(payloads) // 2
        # Bad input takes the same path as on Mosquitto: quarantined with its reason.
        bad = (readings_topic(topic_prefix, ENTERPRISE, workload.device(0)), b"{not json")
        publishers = [
            FailoverPublisher(mqtt[i:] + mqtt[:i], part, name=f"publisher-{i}")
            for i, part in enumerate(([*payloads[:half], bad], payloads[half:]))
        ]
        for publisher in publishers:
            publisher.start()
        await eventually(
            lambda: sum(len(p.acknowledged) for p in publishers) >= len(payloads) // 3,
            timeout_s=120,
            what="a third of the stream acknowledged",
        )
        leader = rabbitmq_cluster.queue_leader(queue)
        assert leader is not None
        rabbitmq_cluster.kill(leader)
        for publisher in publishers:
            await asyncio.to_thread(publisher.done.wait, 180)
            assert publisher.done.is_set(), f"{publisher.name} did not finish"
        acknowledged = sum(len(p.acknowledged) for p in publishers)
        assert acknowledged == len(payloads) + 1
        expected = workload.readings
        assert expected == len(payloads) * len(CHANNELS) * workload.values

        def all_stored() -> bool:
            return exactly_once(pg_url, schema, expected)["lost"] == 0

        await eventually(all_stored, timeout_s=120, what="every acknowledged reading stored")
        await asyncio.sleep(1.0)  # redeliveries still on their way would show up as rows
        counts = exactly_once(pg_url, schema, expected)
        assert counts == {"stored": expected, "lost": 0, "duplicated": 0}
        reasons = rows(pg_url, schema, "SELECT DISTINCT reason FROM quarantine")
        assert reasons == [("malformed_json",)]
        assert rabbitmq_cluster.queue_leader(queue) not in (None, leader)  # a new leader took over
        # SIGTERM: each worker commits and acknowledges what it holds and exits cleanly.
        assert [worker.terminate() for worker in workers] == [0, 0]
    finally:
        for publisher in publishers:
            publisher.stop()
        for worker in workers:
            worker.terminate()
        restore_nodes(rabbitmq_cluster)
        with contextlib.suppress(ServiceStartError):  # not declared if the workers never ran
            rabbitmq_cluster.ctl(rabbitmq_cluster.any_running(), "delete_queue", queue)


async def test_a_worker_acknowledges_only_what_it_committed_and_leaves_nothing_behind(
    rabbitmq_cluster: LocalRabbitCluster, pg_url: str, schema: str, topic_prefix: str
) -> None:
    """In-process, without failures: every message stored once, no copy redelivered (an
    acknowledgement refused by the broker would close the channel and bring copies), and after
    a graceful stop the queue holds nothing, delivered or not."""
    restore_nodes(rabbitmq_cluster)
    queue = f"{topic_prefix}-ingest"
    workload = Workload(prefix=topic_prefix, devices=5, messages=40, values=5)
    await workload.register(pg_url, schema)
    settings = IngestSettings(
        database_url=pg_url,
        database_schema=schema,
        topic_prefix=topic_prefix,
        broker="rabbitmq",
        amqp_url=",".join(rabbitmq_cluster.amqp_urls),
        ingest_share_group=queue,
        ingest_receive_maximum=50,
        ingest_client_id=f"ingest-{topic_prefix}",
    )
    worker = make_worker(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.subscribed.wait(), 30)
        connection = await aio_pika.connect(rabbitmq_cluster.amqp_urls[2])
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(EXCHANGE, ensure=False)
            for topic, payload in workload.payloads():  # as the MQTT plugin routes them
                await exchange.publish(
                    aio_pika.Message(payload, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=topic.replace("/", "."),
                )
        expected = workload.readings
        await eventually(
            lambda: exactly_once(pg_url, schema, expected)["lost"] == 0,
            timeout_s=120,
            what="every reading stored",
        )
        stop.set()
        await asyncio.wait_for(task, 60)
        assert exactly_once(pg_url, schema, expected) == {
            "stored": expected,
            "lost": 0,
            "duplicated": 0,
        }
        assert worker.metrics.duplicates._value.get() == 0
        assert worker.metrics.mqtt_reconnects._value.get() == 0

        def left_in_queue() -> tuple[int, int]:
            out = rabbitmq_cluster.ctl(
                rabbitmq_cluster.any_running(),
                "list_queues",
                "name",
                "messages",
                "messages_unacknowledged",
                "--formatter",
                "json",
            )
            row = next(r for r in json.loads(out) if r["name"] == queue)
            return row["messages"], row["messages_unacknowledged"]

        # The broker's counts settle within a moment; unacknowledged messages would stay.
        await eventually(lambda: left_in_queue() == (0, 0), timeout_s=15, what="an empty queue")
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        with contextlib.suppress(ServiceStartError):
            rabbitmq_cluster.ctl(rabbitmq_cluster.any_running(), "delete_queue", queue)
