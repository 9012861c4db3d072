"""The worker says how it is: /health (200 or 503 with the reason, and TimescaleDB jobs that
fail), /metrics for Prometheus, and a retained status message on the broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

import aiomqtt
import httpx
import pytest

from ingest.http import serve_http
from ingest.service import IngestWorker
from ingest.settings import IngestSettings
from qorgau.localservices import LocalMosquitto, free_port
from store.migrate import upgrade
from tests.store.conftest import timescale_missing_reason
from tests.support import break_compression_job, drop_schema, eventually, pause_jobs
from vocabulary.mqtt_url import MqttEndpoint

pytestmark = [pytest.mark.anyio, pytest.mark.services]


async def retained_status(url: str, topic: str) -> dict[str, object]:
    endpoint = MqttEndpoint.parse(url)
    async with aiomqtt.Client(endpoint.host, endpoint.port) as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(5):
            async for message in client.messages:
                body: dict[str, object] = json.loads(bytes(message.payload))
                return body
    raise AssertionError("no status")


async def test_health_metrics_and_status_topic(
    pg_url: str,
    schema: str,
    topic_prefix: str,
    broker_factory: Callable[..., LocalMosquitto],
) -> None:
    broker = broker_factory()
    settings = IngestSettings(
        database_url=pg_url,
        database_schema=schema,
        mqtt_url=broker.url,
        topic_prefix=topic_prefix,
        ingest_client_id="health-check",
        ingest_retry_max_s=0.5,
    )
    worker = IngestWorker(settings)
    port = free_port()
    server = await serve_http("127.0.0.1", port, worker.metrics.registry, worker.status)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            await asyncio.wait_for(worker.subscribed.wait(), 10)
            health = await http.get("/health")
            assert health.status_code == 200
            assert health.json()["status"] == "ok"
            metrics = (await http.get("/metrics")).text
            assert "qorgau_ingest_readings_total" in metrics
            assert "qorgau_ingest_broker_connected 1.0" in metrics
            assert (await http.get("/nowhere")).status_code == 404
            status = await retained_status(broker.url, settings.status_topic())
            assert status["state"] == "online"
            assert status["client_id"] == "health-check"

            await asyncio.to_thread(broker.stop)

            async def degraded() -> bool:
                response = await http.get("/health")
                return response.status_code == 503 and not response.json()["broker_connected"]

            await eventually(degraded, what="health to report the broker away")
            assert (await http.get("/live")).status_code == 200
            await asyncio.to_thread(broker.start)
            await eventually(
                lambda: worker.status().healthy, what="health to recover with the broker"
            )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        server.close()
        await server.wait_closed()
    status = await retained_status(broker.url, settings.status_topic())
    assert status["state"] == "offline"


async def test_failing_timescaledb_jobs_show_on_health_and_metrics(
    pg_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    """A refresh or compression job that fails leaves ingest healthy (it stores readings) but
    is shown on /health and counted by a gauge, as the maintenance job last read them."""
    reason = timescale_missing_reason(pg_url)
    if reason:
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    upgrade(pg_url, schema, timescale="on")
    pause_jobs(pg_url, schema)
    try:
        broken = break_compression_job(pg_url, schema)
        settings = IngestSettings(
            database_url=pg_url,
            database_schema=schema,
            mqtt_url=mqtt_url,
            topic_prefix=topic_prefix,
            ingest_client_id=f"jobs-{topic_prefix}",
            db_maintenance_interval_s=0.3,
        )
        worker = IngestWorker(settings)
        port = free_port()
        server = await serve_http("127.0.0.1", port, worker.metrics.registry, worker.status)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

                async def reported() -> bool:
                    body = (await http.get("/health")).json()
                    return bool(body["failing_jobs"])

                await eventually(reported, timeout_s=60, what="the failing job on /health")
                health = await http.get("/health")
                assert health.status_code == 200, "ingest itself is fine"
                # Others may be listed too: on PostgreSQL 15.20 every job the scheduler ran
                # between the upgrade and the pause reports a failure.
                lines = health.json()["failing_jobs"]
                (line,) = (x for x in lines if x.startswith(f"job {broken} "))
                assert line.startswith(f"job {broken} policy_compression on readings: ")
                assert "not an interval" in line
                metrics = (await http.get("/metrics")).text
                assert f"qorgau_db_background_jobs_failing {float(len(lines))}" in metrics
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            server.close()
            await server.wait_closed()
    finally:
        drop_schema(pg_url, schema)
