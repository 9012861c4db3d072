"""Faults against real Mosquitto and PostgreSQL, counting readings published against readings
stored: the worker killed with SIGKILL mid-stream, the broker restarted, PostgreSQL restarted or
crashed, two workers sharing the subscription (one of them killed). Every case ends with every
reading stored exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ingest.listeners import CommittedBatch
from ingest.service import IngestWorker
from ingest.settings import IngestSettings
from qorgau.localservices import LocalMosquitto, LocalPostgres
from store.migrate import upgrade
from tests.ingest.harness import ReliablePublisher, WorkerProcess, Workload, stored, stored_rows

pytestmark = [pytest.mark.anyio, pytest.mark.services, pytest.mark.slow]


async def until(check: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


async def all_stored_once(url: str, schema: str, expected: int) -> None:
    await until(lambda: stored(url, schema)[0] >= expected, f"{expected} readings stored")
    await asyncio.sleep(1.0)  # anything extra would be a duplicate: give it time to show
    total, distinct = await asyncio.to_thread(stored, url, schema)
    assert distinct == expected, f"lost {expected - distinct} readings"
    assert total == distinct, f"{total - distinct} duplicated readings"


def in_process_worker(url: str, schema: str, mqtt: str, prefix: str, client: str) -> IngestWorker:
    return IngestWorker(
        IngestSettings(
            database_url=url,
            database_schema=schema,
            mqtt_url=mqtt,
            topic_prefix=prefix,
            ingest_client_id=client,
            ingest_retry_max_s=1.0,
        )
    )


async def test_worker_killed_mid_stream_and_restarted_loses_and_duplicates_nothing(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str, tmp_path: Path
) -> None:
    work = Workload(topic_prefix, devices=10, messages=60)
    await work.register(pg_url, schema)
    worker = WorkerProcess(pg_url, schema, mqtt_url, topic_prefix, "kill-me", tmp_path / "w.log")
    await asyncio.to_thread(worker.start().wait_ready)
    publisher = ReliablePublisher(mqtt_url, work.payloads(), rate_per_s=200)
    publisher.start()
    try:
        await until(lambda: stored(pg_url, schema)[0] > work.readings // 4, "a quarter stored")
        worker.kill()
        at_kill = stored(pg_url, schema)[0]
        assert at_kill < work.readings, "the kill must come mid-stream"
        await asyncio.sleep(1.0)  # the stream goes on while the worker is down
        restarted = WorkerProcess(
            pg_url, schema, mqtt_url, topic_prefix, "kill-me", tmp_path / "w2.log"
        )
        await asyncio.to_thread(restarted.start().wait_ready)
        await until(publisher.done.is_set, "every message acknowledged by the broker")
        await all_stored_once(pg_url, schema, work.readings)
        assert restarted.terminate() == 0
    finally:
        publisher.stop()
        for w in (worker, locals().get("restarted")):
            if isinstance(w, WorkerProcess):
                with contextlib.suppress(Exception):
                    w.terminate()


async def test_broker_restarted_mid_stream_loses_and_duplicates_nothing(
    pg_url: str,
    schema: str,
    topic_prefix: str,
    broker_factory: Callable[..., LocalMosquitto],
) -> None:
    broker = broker_factory()
    work = Workload(topic_prefix, devices=10, messages=60)
    await work.register(pg_url, schema)
    worker = in_process_worker(pg_url, schema, broker.url, topic_prefix, "broker-restart")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(worker.subscribed.wait(), 10)
    publisher = ReliablePublisher(broker.url, work.payloads(), rate_per_s=200)
    publisher.start()
    try:
        await until(lambda: stored(pg_url, schema)[0] > work.readings // 4, "a quarter stored")
        await asyncio.to_thread(broker.stop)
        assert stored(pg_url, schema)[0] < work.readings
        await asyncio.sleep(1.0)
        await asyncio.to_thread(broker.start)
        await until(publisher.done.is_set, "every message acknowledged by the broker")
        await all_stored_once(pg_url, schema, work.readings)
        assert publisher.reconnects >= 1
        assert worker.metrics.mqtt_reconnects._value.get() >= 1
    finally:
        publisher.stop()
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("how", ["restart", "crash"])
async def test_postgres_restarted_mid_stream_loses_and_duplicates_nothing(
    mqtt_url: str, topic_prefix: str, pg_factory: Callable[[], LocalPostgres], how: str
) -> None:
    pg = pg_factory()
    schema = "faults"
    await asyncio.to_thread(upgrade, pg.url, schema, timescale="off")
    work = Workload(topic_prefix, devices=10, messages=60)
    await work.register(pg.url, schema)
    worker = in_process_worker(pg.url, schema, mqtt_url, topic_prefix, f"pg-{how}-{topic_prefix}")
    seen: list[CommittedBatch] = []

    async def listen(batch: CommittedBatch) -> None:
        seen.append(batch)

    worker.add_listener(listen, name="recorder")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(worker.subscribed.wait(), 10)
    publisher = ReliablePublisher(mqtt_url, work.payloads(), rate_per_s=200)
    publisher.start()
    try:
        await until(lambda: stored(pg.url, schema)[0] > work.readings // 4, "a quarter stored")
        await asyncio.to_thread(pg.stop, kill=how == "crash")
        await asyncio.sleep(2.0)  # the stream goes on; the worker holds its acknowledgements
        assert worker.status().database_ok is False or worker.metrics.db_retries._value.get() > 0
        await asyncio.to_thread(pg.start)
        await until(publisher.done.is_set, "every message acknowledged by the broker")
        await all_stored_once(pg.url, schema, work.readings)
        assert worker.metrics.db_retries._value.get() >= 1
        await until(lambda: sum(b.readings for b in seen) >= work.readings, "listener caught up")
        # Listeners saw exactly what was committed: every reading once, none that was not.
        heard = sorted(
            (s.sensor_id, int(t), float(v))
            for b in seen
            for s in b.sensors
            for t, v in zip(s.times_us, s.values, strict=True)
        )
        assert heard == await asyncio.to_thread(stored_rows, pg.url, schema)
    finally:
        publisher.stop()
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_two_workers_share_the_stream_and_survive_one_being_killed(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str, tmp_path: Path
) -> None:
    work = Workload(topic_prefix, devices=12, messages=60)
    await work.register(pg_url, schema)
    workers = [
        WorkerProcess(pg_url, schema, mqtt_url, topic_prefix, f"share-{n}", tmp_path / f"{n}.log")
        for n in ("a", "b")
    ]
    for w in workers:
        w.start()
    for w in workers:
        await asyncio.to_thread(w.wait_ready)
    # Slow enough that the stream is still going when a third is stored: a worker commits what
    # it has received in one batch, so once the publisher is done the survivor may have nothing
    # left to commit.
    publisher = ReliablePublisher(mqtt_url, work.payloads(), rate_per_s=100)
    publisher.start()
    replacement: WorkerProcess | None = None
    try:
        await until(lambda: stored(pg_url, schema)[0] > work.readings // 3, "a third stored")
        shares = [w.metric("qorgau_ingest_readings_total") for w in workers]
        assert all(s > 0 for s in shares), f"both workers take part: {shares}"
        assert not publisher.done.is_set(), "the kill must come while the stream goes on"
        survivor = workers[0]
        workers[1].kill()
        assert stored(pg_url, schema)[0] < work.readings, "the kill must come mid-stream"
        at_kill = survivor.metric("qorgau_ingest_messages_committed_total")
        # The survivor goes on committing its share of the stream while the other is down.
        await until(
            lambda: survivor.metric("qorgau_ingest_messages_committed_total") > at_kill,
            "the surviving worker to commit after the kill",
        )
        # Mosquitto keeps the killed member's share for its client id: it comes back with it.
        replacement = WorkerProcess(
            pg_url, schema, mqtt_url, topic_prefix, "share-b", tmp_path / "b2.log"
        )
        await asyncio.to_thread(replacement.start().wait_ready)
        await until(publisher.done.is_set, "every message acknowledged by the broker")
        assert publisher.acknowledged == work.devices * work.messages
        await all_stored_once(pg_url, schema, work.readings)
        assert survivor.process is not None
        assert survivor.process.poll() is None, "the surviving worker kept running"
        messages = np.array(
            [w.metric("qorgau_ingest_messages_committed_total") for w in (survivor, replacement)]
        )
        assert messages.min() > 0, f"the survivor and the replacement both commit: {messages}"
    finally:
        publisher.stop()
        started: list[WorkerProcess | None] = [*workers, replacement]
        for process in started:
            if process is not None:
                with contextlib.suppress(Exception):
                    process.terminate()
