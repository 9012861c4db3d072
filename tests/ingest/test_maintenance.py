"""The maintenance job inside ingest: it runs on its timer, and pruning the dedupe records of
old messages leaves exactly-once intact for every message within the horizon."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from ingest.service import IngestWorker
from ingest.settings import IngestSettings
from store.connection import connect_async
from store.readings import ReadingBlock, days_of, ensure_day_partitions
from tests.ingest.harness import WorkerProcess, Workload, stored
from tests.support import eventually, scalar, write_as_ingest
from vocabulary.mqtt_url import MqttEndpoint

# Retention here is plain PostgreSQL's (day partitions); TimescaleDB's is a policy.
pytestmark = [pytest.mark.anyio, pytest.mark.services, pytest.mark.plain]

OLD_MESSAGES = 15


async def age_the_database(url: str, schema: str) -> str:
    """A reading ten days old in its own day partition, and dedupe records of messages stored
    40 days ago; returns the old partition's name."""
    old = datetime.now(UTC) - timedelta(days=10)
    block = ReadingBlock.from_rows([(old, 1, 1.0)])
    conn = await connect_async(url, schema, autocommit=True)
    async with conn:
        await ensure_day_partitions(conn, days_of(block.times_us))
        async with conn.transaction():
            await write_as_ingest(conn, block)
        await conn.execute(
            "INSERT INTO ingested_messages (device_id, seq, readings, received_at) "
            "SELECT 0, s, 1, now() - interval '40 days' FROM generate_series(1, %s) AS s",
            [OLD_MESSAGES],
        )
    return f"readings_p{old:%Y%m%d}"


def has_table(url: str, schema: str, name: str) -> bool:
    return bool(scalar(url, schema, "SELECT to_regclass(%s) IS NOT NULL", [name]))


def old_records(url: str, schema: str) -> int:
    return int(scalar(url, schema, "SELECT count(*) FROM ingested_messages WHERE device_id = 0"))


async def test_redeliveries_within_the_horizon_stay_duplicates_after_pruning(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    work = Workload(
        topic_prefix,
        devices=2,
        messages=5,
        values=10,
        start=(datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0),
    )
    await work.register(pg_url, schema)
    old_partition = await age_the_database(pg_url, schema)
    worker = IngestWorker(
        IngestSettings(
            database_url=pg_url,
            database_schema=schema,
            mqtt_url=mqtt_url,
            topic_prefix=topic_prefix,
            ingest_client_id=f"prune-{topic_prefix}",
            db_retention="5 days",
            db_maintenance_interval_s=0.2,
            db_maintenance_batch_rows=4,
        )
    )
    runs = worker.metrics.maintenance_runs.labels("done")
    payloads = work.payloads()
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.subscribed.wait(), 10)
        endpoint = MqttEndpoint.parse(mqtt_url)
        async with aiomqtt.Client(endpoint.host, endpoint.port) as publisher:
            for topic, payload in payloads:
                await publisher.publish(topic, payload, qos=1)
            await eventually(
                lambda: stored(pg_url, schema)[0] == work.readings, what="all readings stored"
            )
            await eventually(lambda: old_records(pg_url, schema) == 0, what="old records pruned")
            await eventually(
                lambda: not has_table(pg_url, schema, old_partition), what="old partition dropped"
            )
            # At least one more run after the messages were stored, so theirs were considered.
            after = runs._value.get()
            await eventually(lambda: runs._value.get() >= after + 2, what="two more runs")
            assert scalar(pg_url, schema, "SELECT count(*) FROM ingested_messages") == len(payloads)
            for topic, payload in payloads:  # the edge outbox sends them all again
                await publisher.publish(topic, payload, qos=1)
            await eventually(
                lambda: worker.metrics.duplicates._value.get() == len(payloads),
                what="every copy recognised as a duplicate",
            )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    total, distinct = stored(pg_url, schema)
    assert total == distinct == work.readings
    assert worker.metrics.maintenance_runs.labels("failed")._value.get() == 0
    assert worker.metrics.maintenance_removed.labels("ingested_messages")._value.get() == (
        OLD_MESSAGES
    )
    assert worker.metrics.maintenance_removed.labels("partitions")._value.get() == 1


async def test_qorgau_ingest_runs_the_maintenance_job_on_its_timer(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str, tmp_path: Path
) -> None:
    old_partition = await age_the_database(pg_url, schema)
    workers = [
        WorkerProcess(
            pg_url,
            schema,
            mqtt_url,
            topic_prefix,
            f"timer-{n}",
            tmp_path / f"{n}.log",
            env={"QORGAU_DB_RETENTION": "5 days", "QORGAU_DB_MAINTENANCE_INTERVAL_S": "0.3"},
        ).start()
        for n in range(2)
    ]
    try:
        for worker in workers:
            worker.wait_ready()
        await eventually(lambda: old_records(pg_url, schema) == 0, what="old records pruned")
        await eventually(
            lambda: not has_table(pg_url, schema, old_partition), what="old partition dropped"
        )
    finally:
        codes = [worker.terminate() for worker in workers]
    assert codes == [0, 0]
    for n in range(2):
        log = (tmp_path / f"{n}.log").read_text()
        assert "maintenance job failed" not in log, log
