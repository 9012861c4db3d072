"""A bad message is quarantined with a logged reason; the service keeps running and the good
messages and channels next to it are stored."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta

import aiomqtt
import pytest

from firmware_sim.device import standard_device
from ingest.service import IngestWorker
from ingest.settings import IngestSettings
from qorgau.demo import register_device
from tests.support import count_readings, eventually, rows
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import Channel, ReadingsMessage, encode_readings, readings_topic

pytestmark = [pytest.mark.anyio, pytest.mark.services]


def good(device: str, seq: int, t0: datetime, n: int = 10) -> bytes:
    message = ReadingsMessage(
        device=device,
        seq=seq,
        channels=[
            Channel(
                sensor=f"{device}.noise",
                quantity="noise_laeq",
                unit="dB(A)",
                t0=t0,
                period_s=1.0,
                values=[80.0 + i for i in range(n)],
            )
        ],
    )
    return encode_readings(message)


async def test_bad_payloads_are_quarantined_and_good_ones_kept(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ingest")
    t0 = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)
    device = standard_device("bad-dev", t0)
    await register_device(pg_url, schema, device, enterprise="ent-a")
    stop = asyncio.Event()
    worker = IngestWorker(
        IngestSettings(
            database_url=pg_url,
            database_schema=schema,
            mqtt_url=mqtt_url,
            topic_prefix=topic_prefix,
            ingest_client_id=f"ingest-{topic_prefix}",
        )
    )
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(worker.subscribed.wait(), 10)

    topic = readings_topic(topic_prefix, "ent-a", "bad-dev")
    mixed = json.loads(good("bad-dev", 2, t0 + timedelta(seconds=20)))
    mixed["channels"].append(
        # Registered as mg/m3 of CO: a ppm reading under the same sensor id is a mismatch.
        {
            "sensor": "bad-dev.co",
            "quantity": "gas",
            "unit": "ppm",
            "substance": "CO",
            "t0": t0.isoformat(),
            "period_s": 1.0,
            "values": [5.0, 6.0],
        }
    )
    endpoint = MqttEndpoint.parse(mqtt_url)
    async with aiomqtt.Client(endpoint.host, endpoint.port) as publisher:
        await publisher.publish(topic, good("bad-dev", 0, t0), qos=1)
        await publisher.publish(topic, b"{not json", qos=1)
        await publisher.publish(topic, json.dumps({"v": 9, "device": "bad-dev"}).encode(), qos=1)
        await publisher.publish(topic, good("bad-dev", 1, t0 + timedelta(seconds=10)), qos=1)
        await publisher.publish(topic, json.dumps(mixed).encode(), qos=1)
        # A registered device's id under another enterprise's topic is a spoof.
        spoof = readings_topic(topic_prefix, "ent-b", "bad-dev")
        await publisher.publish(spoof, good("bad-dev", 3, t0 + timedelta(seconds=30)), qos=1)
        await publisher.publish(topic, good("bad-dev", 4, t0 + timedelta(seconds=40)), qos=1)

    try:
        await eventually(
            lambda: count_readings(pg_url, schema) == 40, what="the 4 good messages' readings"
        )
        await eventually(
            lambda: len(rows(pg_url, schema, "SELECT 1 FROM quarantine")) == 4,
            what="4 quarantine records",
        )
        reasons = sorted(r[0] for r in rows(pg_url, schema, "SELECT reason FROM quarantine"))
        assert reasons == [
            "malformed_json",
            "topic_mismatch",
            "unit_mismatch",
            "unsupported_version",
        ]
        # Every quarantine record says why, and keeps the payload for inspection.
        for detail, payload in rows(pg_url, schema, "SELECT detail, payload FROM quarantine"):
            assert detail
            assert payload
        logged = " ".join(r.getMessage() for r in caplog.records)
        for reason in reasons:
            assert f"quarantined ({reason})" in logged
        assert not task.done(), "the worker must survive bad input"
        assert worker.metrics.quarantined.labels("malformed_json")._value.get() == 1
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
