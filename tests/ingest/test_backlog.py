"""A backlog stays with the broker: a worker whose commits cannot finish holds no more than its
Receive Maximum, acknowledges none of it (acknowledgements go out in batches, after the commit
only), and a replacement with the same client id stores everything exactly once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.ingest.harness import ReliablePublisher, WorkerProcess, Workload, stored
from tests.ingest.test_faults import all_stored_once, until

pytestmark = [pytest.mark.anyio, pytest.mark.services]

WINDOW = 20  # the worker's Receive Maximum here


@contextlib.contextmanager
def writes_blocked(url: str, schema: str) -> Iterator[None]:
    """Hold a lock that every ingest commit waits for (its exactly-once claims)."""
    with psycopg.connect(url, options=f"-c search_path={schema}") as conn:
        conn.execute("LOCK TABLE ingested_messages IN ACCESS EXCLUSIVE MODE")
        yield
        conn.rollback()


async def test_a_backlog_stays_with_the_broker_and_nothing_is_acknowledged_before_commit(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str, tmp_path: Path
) -> None:
    work = Workload(topic_prefix, devices=10, messages=12, values=1)  # 120 small messages
    await work.register(pg_url, schema)
    worker = WorkerProcess(
        pg_url,
        schema,
        mqtt_url,
        topic_prefix,
        "backlog",
        tmp_path / "w.log",
        env={"QORGAU_INGEST_RECEIVE_MAXIMUM": str(WINDOW)},
    )
    await asyncio.to_thread(worker.start().wait_ready)
    replacement: WorkerProcess | None = None
    publisher = ReliablePublisher(mqtt_url, work.payloads())
    try:
        with writes_blocked(pg_url, schema):
            publisher.start()
            await until(publisher.done.is_set, "the broker to accept every message")

            def held() -> int:
                value = (worker.health() or {}).get("unacknowledged", -1)
                return value if isinstance(value, int) else -1

            await until(lambda: held() == WINDOW, f"the worker to hold {WINDOW} messages")
            # Six times the window is published; the worker holds its window whatever the
            # backlog, and the broker the rest.
            for _ in range(5):
                health = worker.health()
                assert health is not None
                assert health["unacknowledged"] == WINDOW
                assert health["queue_messages"] <= WINDOW  # type: ignore[operator]
                await asyncio.sleep(0.2)
            assert stored(pg_url, schema)[0] == 0
            # The commit waits for the lock: killed now, the worker has acknowledged nothing,
            # so the broker keeps all of its window for the client id.
            worker.kill()
        replacement = WorkerProcess(
            pg_url,
            schema,
            mqtt_url,
            topic_prefix,
            "backlog",
            tmp_path / "w2.log",
            env={"QORGAU_INGEST_RECEIVE_MAXIMUM": str(WINDOW)},
        )
        await asyncio.to_thread(replacement.start().wait_ready)
        await all_stored_once(pg_url, schema, work.readings)
        assert replacement.metric("qorgau_ingest_messages_committed_total") == 120
        assert replacement.terminate() == 0
    finally:
        publisher.stop()
        for w in (worker, replacement):
            if w is not None:
                w.kill()
