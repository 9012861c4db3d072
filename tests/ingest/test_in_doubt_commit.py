"""A COMMIT whose answer never arrives: the worker asks PostgreSQL what became of the
transaction, and if it committed, acknowledges its messages and hands its readings to listeners
exactly once, instead of treating them as duplicates on the retry."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import aiomqtt
import pytest

from ingest.listeners import CommittedBatch
from ingest.service import IngestWorker
from ingest.settings import IngestSettings
from tests.ingest.harness import CommitCutter, Workload, stored, stored_rows
from tests.support import eventually
from vocabulary.mqtt_url import MqttEndpoint

pytestmark = [pytest.mark.anyio, pytest.mark.services]


async def test_a_commit_with_a_lost_answer_is_settled_not_repeated(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    work = Workload(
        topic_prefix,
        devices=2,
        messages=5,
        values=20,
        start=(datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0),
    )
    await work.register(pg_url, schema)
    port = int(pg_url.rsplit(":", 1)[1].split("/")[0])
    async with CommitCutter(port) as cutter:
        proxied = pg_url.replace(f":{port}/", f":{cutter.port}/")
        worker = IngestWorker(
            IngestSettings(
                database_url=proxied,
                database_schema=schema,
                mqtt_url=mqtt_url,
                topic_prefix=topic_prefix,
                ingest_client_id=f"doubt-{topic_prefix}",
                ingest_retry_max_s=0.5,
                ingest_batch_max_delay_ms=300,
                # The proxy cuts the first COMMIT it sees on any connection: it must be the
                # writer's, so no background job may share the proxy.
                db_maintenance_interval_s=0,
            )
        )
        seen: list[CommittedBatch] = []

        async def listen(batch: CommittedBatch) -> None:
            seen.append(batch)

        worker.add_listener(listen)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await asyncio.wait_for(worker.subscribed.wait(), 10)
            cutter.armed = True
            endpoint = MqttEndpoint.parse(mqtt_url)
            async with aiomqtt.Client(endpoint.host, endpoint.port) as publisher:
                for topic, payload in work.payloads():
                    await publisher.publish(topic, payload, qos=1)
            await eventually(
                lambda: stored(pg_url, schema)[0] == work.readings, what="all readings stored"
            )
            await eventually(
                lambda: sum(b.readings for b in seen) == work.readings, what="listener"
            )
            await worker.flush(10)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    assert cutter.cut == 1, "the COMMIT answer was cut once"
    assert worker.metrics.db_retries._value.get() >= 1
    assert any(
        "committed" in r.getMessage() for r in caplog.records if "transaction" in r.getMessage()
    )
    total, distinct = stored(pg_url, schema)
    assert total == distinct == work.readings
    heard = sorted(
        (s.sensor_id, int(t), float(v))
        for b in seen
        for s in b.sensors
        for t, v in zip(s.times_us, s.values, strict=True)
    )
    assert heard == stored_rows(pg_url, schema)
    assert worker.metrics.duplicates._value.get() == 0
