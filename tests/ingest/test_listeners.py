"""Listeners see exactly the committed readings, grouped by sensor; a listener that fails,
hangs or falls behind never loses or blocks ingest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiomqtt
import numpy as np
import pytest

from ingest.listeners import CommittedBatch, build_batch
from ingest.service import IngestWorker
from ingest.settings import IngestSettings
from ingest.validate import ChannelRows
from store.registry import DeviceInfo, SensorInfo
from tests.ingest.harness import Workload, stored, stored_rows
from tests.support import eventually
from vocabulary.mqtt_url import MqttEndpoint


def sensor(sid: int, code: str) -> SensorInfo:
    return SensorInfo(sid, 1, code, "noise_laeq", "dB(A)", None, 7, None, None)


def test_a_batch_groups_readings_by_sensor_in_time_order() -> None:
    device = DeviceInfo(id=1, code="d1", enterprise_id=1, enterprise_code="e1", workplace_id=7)
    a, b = sensor(5, "d1.a"), sensor(3, "d1.b")
    rows = [
        ChannelRows(a, np.array([30, 10], np.int64), np.array([3.0, 1.0])),
        ChannelRows(b, np.array([5], np.int64), np.array([9.0])),
        ChannelRows(a, np.array([20], np.int64), np.array([2.0])),
    ]
    batch = build_batch([(device, rows[:2]), (device, rows[2:])], committed_at_s=1.5)
    assert [s.sensor_id for s in batch.sensors] == [3, 5]
    got = batch.sensors[1]
    assert got.times_us.tolist() == [10, 20, 30]
    assert got.values.tolist() == [1.0, 2.0, 3.0]
    assert got.times_s.tolist() == [1e-5, 2e-5, 3e-5]
    assert got.times[0] == np.datetime64(10, "us")
    assert (got.sensor, got.device, got.enterprise, got.workplace_id) == ("d1.a", "d1", "e1", 7)
    assert (got.quantity, got.unit, got.substance) == ("noise_laeq", "dB(A)", None)
    assert batch.readings == 4


@pytest.mark.anyio
@pytest.mark.services
async def test_listeners_see_committed_readings_once_and_bad_listeners_harm_nothing(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    work = Workload(
        topic_prefix,
        devices=4,
        messages=30,
        values=20,
        start=(datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0),
    )
    await work.register(pg_url, schema)
    worker = IngestWorker(
        IngestSettings(
            database_url=pg_url,
            database_schema=schema,
            mqtt_url=mqtt_url,
            topic_prefix=topic_prefix,
            ingest_client_id=f"listen-{topic_prefix}",
            ingest_listener_queue_batches=2,
            ingest_listener_timeout_s=0.2,
        )
    )
    seen: list[CommittedBatch] = []
    release_slow = asyncio.Event()

    async def record(batch: CommittedBatch) -> None:
        seen.append(batch)

    async def explode(batch: CommittedBatch) -> None:
        raise RuntimeError("detector bug")

    async def hang(batch: CommittedBatch) -> None:
        await asyncio.Event().wait()

    async def slow(batch: CommittedBatch) -> None:
        await release_slow.wait()

    worker.add_listener(explode, name="explode")
    worker.add_listener(hang, name="hang")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    worker.add_listener(record, name="record")  # added while running: starts at once
    worker.add_listener(slow, name="slow")
    try:
        await asyncio.wait_for(worker.subscribed.wait(), 10)
        payloads = work.payloads()
        endpoint = MqttEndpoint.parse(mqtt_url)
        async with aiomqtt.Client(endpoint.host, endpoint.port) as publisher:
            for i, (topic, payload) in enumerate(payloads):
                await publisher.publish(topic, payload, qos=1)
                if i % 3 == 0:  # redeliveries: stored once, heard once
                    await publisher.publish(topic, payload, qos=1)
                if i % 10 == 0:
                    await asyncio.sleep(0.06)  # several batches, not one
        await eventually(lambda: stored(pg_url, schema)[0] == work.readings, what="stored")
        await eventually(lambda: sum(b.readings for b in seen) == work.readings, what="heard")
        assert not task.done()
    finally:
        release_slow.set()
        stop.set()
        await asyncio.wait_for(task, 30)

    total, distinct = stored(pg_url, schema)
    assert total == distinct == work.readings
    heard = sorted(
        (s.sensor_id, int(t), float(v))
        for b in seen
        for s in b.sensors
        for t, v in zip(s.times_us, s.values, strict=True)
    )
    assert heard == stored_rows(pg_url, schema)
    assert worker.metrics.duplicates._value.get() > 0
    batches = len(seen)
    assert batches > 1
    errors = worker.metrics.listener_errors
    assert errors.labels("explode")._value.get() == batches
    assert errors.labels("hang")._value.get() >= 1  # timed out, then the next batch
    dropped = worker.metrics.listener_dropped
    assert dropped.labels("slow")._value.get() >= 1
    assert dropped.labels("record")._value.get() == 0
