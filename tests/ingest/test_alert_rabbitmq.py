"""The alert engine on a 3-node RabbitMQ cluster (``QORGAU_BROKER=rabbitmq``): a device publishes
over MQTT (the plugin, 3.1.1) to ``amq.topic``, the engine reads its own quorum queue over AMQP,
raises the alert, stores it and publishes it where MQTT subscribers of the alert topic get it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiomqtt
import numpy as np
import pytest
from pydantic import ValidationError

from ingest.alerting.amqp_source import AmqpSource
from ingest.alerting.service import AlertService
from ingest.alerting.settings import AlertsSettings
from qorgau.localrabbitmq import LocalRabbitCluster
from qorgau.localservices import ServiceStartError
from tests.ingest.cluster_harness import restore_nodes
from tests.ingest.test_alerting import DEV, ENT, gas, register
from tests.support import eventually, rows
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import ReadingsMessage, encode_readings, readings_topic
from vocabulary.protocol.alerts import AlertMessage, alerts_subscription

pytestmark = [pytest.mark.services, pytest.mark.anyio]


def _mqtt311(url: str, identifier: str) -> aiomqtt.Client:
    """A client of RabbitMQ 3.10's MQTT plugin, which speaks 3.1.1 only."""
    endpoint = MqttEndpoint.parse(url)
    return aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        username=endpoint.username,
        password=endpoint.password,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V311,
    )


@contextlib.asynccontextmanager
async def _engine(settings: AlertsSettings) -> AsyncIterator[AlertService]:
    stop = asyncio.Event()
    engine = AlertService(settings)
    task = asyncio.create_task(engine.run(stop))
    try:
        await asyncio.wait_for(engine.subscribed.wait(), 60)
        yield engine
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def _reading(seq: int, value: float, *, device: str = DEV) -> bytes:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    channel = gas(f"{device}.h2s", t0, np.array([value]))
    return encode_readings(ReadingsMessage(device=device, seq=seq, channels=[channel]))


async def test_the_engine_on_rabbitmq_raises_stores_and_publishes_an_alert(
    rabbitmq_cluster: LocalRabbitCluster, pg_url: str, schema: str, topic_prefix: str
) -> None:
    restore_nodes(rabbitmq_cluster)
    await register(pg_url, schema, [(f"{DEV}.h2s", "gas", "mg/m3", "H2S")])
    queue = f"alerts-{topic_prefix}"
    amqp, mqtt = rabbitmq_cluster.amqp_urls, rabbitmq_cluster.mqtt_urls
    settings = AlertsSettings(
        database_url=pg_url,
        database_schema=schema,
        topic_prefix=topic_prefix,
        broker="rabbitmq",
        amqp_url=",".join(amqp),
        alerts_client_id=queue,
        alerts_enterprises=ENT,
        alerts_tick_s=0.05,
        alerts_warm_start=False,
    )
    received: list[AlertMessage] = []
    listener = _mqtt311(mqtt[2], f"listen-{topic_prefix}")
    device = _mqtt311(mqtt[1], f"device-{topic_prefix}")
    try:
        async with listener, device:
            await listener.subscribe(alerts_subscription(topic_prefix), qos=1)

            async def listen() -> None:
                async for m in listener.messages:
                    with contextlib.suppress(ValidationError):
                        received.append(AlertMessage.model_validate_json(bytes(m.payload)))

            listening = asyncio.create_task(listen())
            async with _engine(settings) as engine:
                assert isinstance(engine.source, AmqpSource)
                # Another enterprise's device: not bound to this engine's queue, never sent.
                await device.publish(
                    readings_topic(topic_prefix, "globex", "globex-dev-1"),
                    _reading(0, 30.0, device="globex-dev-1"),
                    qos=1,
                )
                # H2S above its ceiling (20 mg/m³): exactly one ceiling alert.
                # Until the quorum queues on the dead node have new leaders, the plugin cannot
                # confirm a publish: the device sends again, as the edge outbox does.
                topic, payload = readings_topic(topic_prefix, ENT, DEV), _reading(0, 25.0)
                for _ in range(12):
                    try:
                        await device.publish(topic, payload, qos=1, timeout=10)
                        break
                    except aiomqtt.MqttError:
                        continue
                else:
                    pytest.fail("the cluster never confirmed the reading")
                await eventually(
                    lambda: any(m.kind == "ceiling" for m in received),
                    timeout_s=60,
                    what="the ceiling alert on the MQTT alert topic",
                )
                (ceiling,) = [m for m in received if m.kind == "ceiling"]
                assert (ceiling.enterprise, ceiling.sensor) == (ENT, f"{DEV}.h2s")
                assert ceiling.transition == "opened"

                async def stored() -> bool:
                    got = rows(pg_url, schema, "SELECT id::text, kind, state FROM alerts")
                    return got == [(ceiling.alert_id, "ceiling", "open")]

                await eventually(stored, what="the alert stored")
                await asyncio.sleep(0.5)  # our own alert, bound too, comes back and is dropped
                assert engine.metrics.messages._value.get() == 1
                assert engine.metrics.skipped.labels("not_owned")._value.get() == 0
            # Stopped: what devices publish now waits in the engine's queue for its return.
            await device.publish(readings_topic(topic_prefix, ENT, DEV), _reading(1, 26.0), qos=1)
            await asyncio.sleep(0.5)
            async with _engine(settings) as engine:
                await eventually(
                    lambda: engine.messages_evaluated == 1,
                    timeout_s=30,
                    what="the reading published while the engine was stopped",
                )
                # The open alert was restored, not raised again.
                state = engine.states["default"]
                assert set(state.cells.by_id) == {ceiling.alert_id}
            listening.cancel()
        assert [m.kind for m in received if m.transition == "opened"] == ["ceiling"]
        out = rabbitmq_cluster.ctl(
            rabbitmq_cluster.any_running(),
            "list_queues",
            "name",
            "type",
            "members",
            "arguments",
            "--formatter",
            "json",
        )
        row = next(r for r in json.loads(out) if r["name"] == queue)
        assert row["type"] == "quorum"
        assert len(row["members"]) == len(rabbitmq_cluster.nodes)
    finally:
        with contextlib.suppress(ServiceStartError):
            rabbitmq_cluster.ctl(rabbitmq_cluster.any_running(), "delete_queue", queue)


@pytest.mark.slow
async def test_the_engine_moves_to_another_node_when_its_node_dies(
    rabbitmq_cluster: LocalRabbitCluster, pg_url: str, schema: str, topic_prefix: str
) -> None:
    restore_nodes(rabbitmq_cluster)
    await register(pg_url, schema, [(f"{DEV}.h2s", "gas", "mg/m3", "H2S")])
    queue = f"alerts-{topic_prefix}"
    first = rabbitmq_cluster.nodes[0]
    settings = AlertsSettings(
        database_url=pg_url,
        database_schema=schema,
        topic_prefix=topic_prefix,
        broker="rabbitmq",
        amqp_url=",".join(rabbitmq_cluster.amqp_urls),
        alerts_client_id=queue,
        alerts_tick_s=0.05,
        alerts_warm_start=False,
        alerts_retry_max_s=1.0,
    )
    received: list[AlertMessage] = []
    try:
        async with _engine(settings) as engine:
            engine.listeners.append(received.append)
            # The engine's first connection is to the first node of QORGAU_AMQP_URL.
            rabbitmq_cluster.kill(first)
            await eventually(
                lambda: engine.metrics.mqtt_reconnects._value.get() >= 1,
                timeout_s=30,
                what="the lost connection noticed",
            )
            await eventually(lambda: engine.subscribed.is_set(), timeout_s=60, what="reconnected")
            # Until the quorum queue has a new leader, the plugin cannot confirm a publish: the
            # device sends again, on a new connection, as the edge outbox does.
            topic, payload = readings_topic(topic_prefix, ENT, DEV), _reading(0, 25.0)
            problems: list[str] = []
            for attempt in range(12):
                try:
                    async with _mqtt311(rabbitmq_cluster.mqtt_urls[1], f"dev-{attempt}") as device:
                        await device.publish(topic, payload, qos=1, timeout=10)
                    break
                except aiomqtt.MqttError as exc:
                    problems.append(str(exc))
                    await asyncio.sleep(1.0)
            else:
                pytest.fail(f"the cluster never confirmed the reading: {problems}")
            await eventually(
                lambda: any(m.kind == "ceiling" for m in received),
                timeout_s=60,
                what=f"the alert raised after the failover (publish problems: {problems})",
            )

        async def stored() -> bool:
            return rows(pg_url, schema, "SELECT kind FROM alerts") == [("ceiling",)]

        await eventually(stored, what="the alert stored")
    finally:
        restore_nodes(rabbitmq_cluster)
        with contextlib.suppress(ServiceStartError):
            rabbitmq_cluster.ctl(rabbitmq_cluster.any_running(), "delete_queue", queue)
