"""Thousands of malformed, oversized and spoofed messages interleaved with good ones: every good
reading is stored once, every bad message, channel or sample is quarantined with its reason, and
the worker stays up."""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import pytest

from ingest.service import IngestWorker
from ingest.settings import IngestSettings
from store.connection import connect_async
from store.readings import datetime_to_us
from store.registry import upsert_device, upsert_enterprise, upsert_sensor
from tests.ingest.harness import stored, stored_rows
from tests.support import eventually, rows
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import readings_topic

pytestmark = [pytest.mark.anyio, pytest.mark.services, pytest.mark.slow]

DEVICES = [f"good-{i:03d}" for i in range(5)]
SENSORS = {  # suffix: quantity, unit, substance, registered range
    "noise": ("noise_laeq", "dB(A)", None, (30.0, 140.0)),
    "co": ("gas", "mg/m3", "CO", (0.0, 500.0)),
    "hav": ("vib_hav", "m/s2", None, (None, None)),  # physical range applies: [0, 1e4]
}


class Plan:
    """Messages to publish, and what each should leave behind."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.base = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
        self.messages: list[tuple[str, bytes]] = []
        self.reasons: Counter[str] = Counter()
        self.good: list[tuple[str, int, float]] = []  # (sensor code, µs, value)
        self.seq = dict.fromkeys(DEVICES, 0)
        self.rng = random.Random(20261123)

    def topic(self, device: str, enterprise: str = "ent-good") -> str:
        return readings_topic(self.prefix, enterprise, device)

    def channel(
        self, device: str, suffix: str, t0: datetime, values: list[float], **override: Any
    ) -> dict[str, Any]:
        quantity, unit, substance, _ = SENSORS[suffix]
        ch: dict[str, Any] = {
            "sensor": f"{device}.{suffix}",
            "quantity": quantity,
            "unit": unit,
            "t0": t0.isoformat(),
            "period_s": 1.0,
            "values": values,
        }
        if substance:
            ch["substance"] = substance
        ch.update(override)
        return ch

    def keyed(self, device: str | None = None) -> tuple[str, int, datetime]:
        device = device or self.rng.choice(DEVICES)
        seq = self.seq[device]
        self.seq[device] += 1
        return device, seq, self.base + timedelta(seconds=30 * seq)

    def expect_good(
        self,
        device: str,
        suffix: str,
        t0: datetime,
        values: list[float],
        keep: list[bool] | None = None,
    ) -> None:
        for i, v in enumerate(values):
            if keep is None or keep[i]:
                self.good.append((f"{device}.{suffix}", datetime_to_us(t0) + i * 1_000_000, v))

    def add(self, topic: str, body: dict[str, Any] | bytes, *reasons: str) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.messages.append((topic, payload))
        self.reasons.update(reasons)

    def message(self, device: str, seq: int, channels: list[dict[str, Any]]) -> dict[str, Any]:
        return {"v": 1, "device": device, "seq": seq, "channels": channels}

    # ---- kinds of message

    def good_message(self) -> None:
        device, seq, t0 = self.keyed()
        noise = [round(self.rng.uniform(60, 110), 2) for _ in range(10)]
        co = [round(self.rng.uniform(0, 30), 3) for _ in range(10)]
        body = self.message(
            device,
            seq,
            [self.channel(device, "noise", t0, noise), self.channel(device, "co", t0, co)],
        )
        self.expect_good(device, "noise", t0, noise)
        self.expect_good(device, "co", t0, co)
        self.add(self.topic(device), body)
        if self.rng.random() < 0.2:  # a redelivery: stored once, not quarantined
            self.add(self.topic(device), body)

    def with_good_neighbour(
        self, bad: dict[str, Any], device: str, seq: int, t0: datetime, *reasons: str
    ) -> None:
        co = [round(self.rng.uniform(0, 30), 3) for _ in range(5)]
        self.expect_good(device, "co", t0, co)
        good = self.channel(device, "co", t0, co)
        self.add(self.topic(device), self.message(device, seq, [bad, good]), *reasons)

    def build(self) -> None:
        for _ in range(500):
            self.good_message()
        self.unreadable()
        self.wrong_envelope()
        self.spoofed()
        self.bad_channels()
        self.bad_samples()
        self.rng.shuffle(self.messages)

    def unreadable(self) -> None:
        for i in range(20):
            self.add(
                self.topic(DEVICES[0]),
                b'{"v": 1, "pad": "' + b"x" * (300_000 + i) + b'"}',
                "oversized",
            )
        junk = [b"{not json", b"\xff\xfe\x00garbage", b'{"v": 1, "device": "good-000", "seq"']
        for i in range(500):
            payload = junk[i % 3] if i % 5 else bytes(self.rng.getrandbits(8) for _ in range(40))
            self.add(self.topic(self.rng.choice(DEVICES)), payload, "malformed_json")

    def wrong_envelope(self) -> None:
        for _ in range(200):
            device, seq, t0 = self.keyed()
            body = self.message(device, seq, [self.channel(device, "noise", t0, [80.0])])
            self.add(self.topic(device), {**body, "v": 2}, "unsupported_version")
        for i in range(200):
            device = self.rng.choice(DEVICES)
            if i % 2:
                self.add(self.topic(device), b"[1, 2, 3]", "schema")
            else:
                self.add(self.topic(device), self.message(device, -1, []), "schema")
        for _ in range(100):  # one channel breaks the wire format; its neighbour is kept
            device, seq, t0 = self.keyed()
            bad = self.channel(device, "noise", t0, [80.0], unit="furlongs")
            self.with_good_neighbour(bad, device, seq, t0, "schema")

    def spoofed(self) -> None:
        for i in range(600):  # spoofing: another device's id, or another enterprise's topic
            device, seq, t0 = self.keyed()
            body = self.message(device, seq, [self.channel(device, "noise", t0, [90.0])])
            if i % 2:
                self.add(
                    self.topic(DEVICES[(DEVICES.index(device) + 1) % 5]), body, "topic_mismatch"
                )
            else:
                self.add(self.topic(device, "ent-other"), body, "topic_mismatch")
        for i in range(500):
            ghost = f"ghost-{i:04d}"
            body = self.message(ghost, 0, [self.channel(ghost, "noise", self.base, [70.0])])
            self.add(self.topic(ghost), body, "unknown_device")

    def bad_channels(self) -> None:
        for _ in range(100):
            device, seq, t0 = self.keyed()
            bad = self.channel(device, "noise", t0, [70.0], sensor=f"{device}.mystery")
            self.with_good_neighbour(bad, device, seq, t0, "unknown_sensor")
        for _ in range(100):
            device, seq, t0 = self.keyed()
            bad = self.channel(device, "co", t0, [5.0], unit="ppm")
            self.with_good_neighbour(bad, device, seq, t0, "unit_mismatch")

    def bad_samples(self) -> None:
        for _ in range(100):  # NaN and infinity among good samples: only those are refused
            device, seq, t0 = self.keyed()
            values = [80.0, math.nan, 81.5, math.inf, 82.25, -math.inf]
            keep = [math.isfinite(v) for v in values]
            text = json.dumps(
                self.message(device, seq, [self.channel(device, "noise", t0, values)])
            )
            self.expect_good(device, "noise", t0, values, keep)
            self.add(self.topic(device), text.encode(), "non_finite")
        for i in range(100):  # outside the registered or the physical range
            device, seq, t0 = self.keyed()
            suffix, values = (
                ("noise", [85.0, 500.0, 20.0, 95.0]) if i % 2 else ("hav", [1.5, -0.2, 2.5, 1e6])
            )
            lo, hi = SENSORS[suffix][3]
            lo, hi = (0.0 if lo is None else lo), (1e4 if hi is None else hi)
            keep = [lo <= v <= hi for v in values]
            self.expect_good(device, suffix, t0, values, keep)
            self.add(
                self.topic(device),
                self.message(device, seq, [self.channel(device, suffix, t0, values)]),
                "out_of_range",
            )
        for _ in range(100):
            device, seq, t0 = self.keyed()
            late = datetime.now(UTC) + timedelta(hours=1)
            bad = self.channel(device, "noise", late, [80.0, 81.0])
            self.with_good_neighbour(bad, device, seq, t0, "future_timestamp")
        for _ in range(100):
            device, seq, t0 = self.keyed()
            bad = self.channel(device, "noise", datetime(1970, 1, 1, tzinfo=UTC), [80.0])
            self.with_good_neighbour(bad, device, seq, t0, "past_timestamp")


async def register(url: str, schema: str) -> dict[str, int]:
    conn = await connect_async(url, schema, autocommit=True)
    ids = {}
    async with conn:
        good = await upsert_enterprise(conn, "ent-good", "Good")
        await upsert_enterprise(conn, "ent-other", "Other")
        for device in DEVICES:
            device_id = await upsert_device(conn, good, device)
            for suffix, (quantity, unit, substance, (lo, hi)) in SENSORS.items():
                sensor = await upsert_sensor(
                    conn,
                    device_id,
                    f"{device}.{suffix}",
                    quantity=quantity,
                    unit=unit,
                    substance=substance,
                    min_value=lo,
                    max_value=hi,
                )
                ids[sensor.code] = sensor.id
    return ids


async def test_hostile_stream_keeps_every_good_reading_and_quarantines_the_rest(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    ids = await register(pg_url, schema)
    plan = Plan(topic_prefix)
    plan.build()
    assert len(plan.messages) > 3000
    worker = IngestWorker(
        IngestSettings(
            database_url=pg_url,
            database_schema=schema,
            mqtt_url=mqtt_url,
            topic_prefix=topic_prefix,
            ingest_client_id=f"hostile-{topic_prefix}",
            ingest_auto_register_sensors=False,
        )
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.subscribed.wait(), 10)
        endpoint = MqttEndpoint.parse(mqtt_url)
        async with aiomqtt.Client(endpoint.host, endpoint.port) as publisher:
            for topic, payload in plan.messages:
                await publisher.publish(topic, payload, qos=1)
        expected_quarantine = sum(plan.reasons.values())
        await eventually(
            lambda: (
                rows(pg_url, schema, "SELECT count(*) FROM quarantine")[0][0] >= expected_quarantine
                and stored(pg_url, schema)[0] >= len(plan.good)
            ),
            timeout_s=120,
            what="every message processed",
        )
        await worker.flush(30)
        assert not task.done(), "the worker must survive hostile input"
        assert worker.status().healthy
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

    expected = sorted((ids[code], t, v) for code, t, v in plan.good)
    assert stored_rows(pg_url, schema) == expected, "every good reading, once, and nothing else"
    found = Counter(
        dict(rows(pg_url, schema, "SELECT reason, count(*) FROM quarantine GROUP BY reason"))
    )
    assert found == plan.reasons
    for reason, count in plan.reasons.items():
        assert worker.metrics.quarantined.labels(reason)._value.get() == count
    # Oversized payloads are kept only up to the cap, with their real size.
    for kept, size in rows(
        pg_url,
        schema,
        "SELECT length(payload), payload_bytes FROM quarantine WHERE reason = 'oversized'",
    ):
        assert kept == worker.settings.ingest_quarantine_payload_bytes
        assert size > worker.settings.ingest_max_payload_bytes
    for detail, topic in rows(pg_url, schema, "SELECT detail, topic FROM quarantine"):
        assert detail
        assert topic.startswith(topic_prefix)
