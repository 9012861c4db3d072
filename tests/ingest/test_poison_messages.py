"""Poison messages with a real broker and database (issue 13): hostile content is quarantined
with its reason and never stops a worker, through a restart; a message that cannot be processed
for another reason becomes a dead letter, is acknowledged, and comes back with
``qorgau deadletters replay``."""

from __future__ import annotations

import asyncio
import json
import math
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import httpx
import psycopg
import pytest
from psycopg import sql

from ingest.http import serve_http
from ingest.service import IngestWorker
from ingest.settings import IngestSettings
from qorgau.cli import main
from qorgau.localservices import free_port
from store.connection import connect, connect_async
from store.readings import datetime_to_us
from store.registry import upsert_device, upsert_enterprise, upsert_sensor
from tests.ingest.harness import stored, stored_rows
from tests.support import eventually, rows, scalar
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import readings_topic

pytestmark = [pytest.mark.anyio, pytest.mark.services]

ENTERPRISE = "ent-poison"
DEVICES = ("pdev-1", "pdev-2")
DEEP = b"[" * 1100 + b"]" * 1100  # the message that stopped ingest for good


class Corpus:
    """Good messages and hostile ones, and what each should leave behind."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.base = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
        self.good: list[tuple[str, bytes]] = []
        self.hostile: list[tuple[str, bytes]] = []
        self.reasons: Counter[str] = Counter()
        self.expected: list[tuple[str, int, float]] = []  # (sensor code, µs, value)
        self.rng = random.Random(13)

    def topic(self, device: str) -> str:
        return readings_topic(self.prefix, ENTERPRISE, device)

    def channel(self, device: str, seq: int, values: list[Any], **override: Any) -> dict[str, Any]:
        t0 = self.base + timedelta(seconds=10 * seq)
        return {
            "sensor": f"{device}.noise",
            "quantity": "noise_laeq",
            "unit": "dB(A)",
            "t0": t0.isoformat(),
            "period_s": 1.0,
            "values": values,
            **override,
        }

    def body(self, device: str, seq: int, *channels: dict[str, Any]) -> bytes:
        message = {"v": 1, "device": device, "seq": seq, "channels": list(channels)}
        return json.dumps(message, allow_nan=True).encode()

    def add_good(self, device: str, seq: int) -> None:
        values = [round(self.rng.uniform(60, 100), 2) for _ in range(5)]
        self.good.append(
            (self.topic(device), self.body(device, seq, self.channel(device, seq, values)))
        )
        t0 = datetime_to_us(self.base + timedelta(seconds=10 * seq))
        self.expected += [(f"{device}.noise", t0 + i * 1_000_000, v) for i, v in enumerate(values)]

    def add_bad(self, device: str, payload: bytes, reason: str) -> None:
        self.hostile.append((self.topic(device), payload))
        self.reasons[reason] += 1

    def build(self, messages_per_device: int) -> list[tuple[str, bytes]]:
        for seq in range(messages_per_device):
            for device in DEVICES:
                self.add_good(device, seq)
        d, seq = "pdev-1", 10_000  # keyed hostile messages take seqs no good message uses
        self.add_bad(d, DEEP, "too_deep")
        self.add_bad(d, b'{"a":' * 1100 + b"1" + b"}" * 1100, "too_deep")
        self.add_bad(d, b'{"v": 1, "device": "pdev\xff-1", "seq": 1}', "malformed_json")
        self.add_bad(d, b"[1, 2, 3]", "schema")
        self.add_bad(d, b'"readings"', "schema")
        self.add_bad(d, self.body(d, 2**70, self.channel(d, 0, [80.0])), "schema")
        self.add_bad(
            d, self.body(d, seq).replace(b"[]", b"[" + b"9" * 5000 + b"]"), "malformed_json"
        )
        self.add_bad(d, b'{"v": ' + b"[" * 500 + b"]" * 500 + b"}", "unsupported_version")
        # Refused channel by channel (the message is known, its channel is not stored).
        self.add_bad(
            d, self.body(d, seq + 1, self.channel(d, 0, [80.0], extra=nested(30))), "too_deep"
        )
        gas = {"quantity": "gas", "unit": "mg/m3"}
        for n, substance in enumerate(["C\ud800O", "C\x00O"]):  # not storable text
            bad = self.channel(d, 0, [1.0], **gas, substance=substance)
            self.add_bad(d, self.body(d, seq + 2 + n, bad), "schema")
        late = self.channel(d, 0, [80.0, 81.0], t0="9999-12-31T23:59:00Z", period_s=3600.0)
        self.add_bad(d, self.body(d, seq + 4, late), "schema")
        # A device naming a sensor after another device: never registered (auto-registration on).
        self.add_bad(
            d,
            self.body(d, seq + 5, self.channel(d, 0, [80.0], sensor="pdev-2.noise")),
            "foreign_sensor",
        )
        # Samples refused one by one: these are only NaN or infinite, so nothing is stored.
        self.add_bad(
            d, self.body(d, seq + 6, self.channel(d, 0, [math.nan, math.inf])), "non_finite"
        )
        messages = list(self.good)
        for payload in self.hostile:  # spread between the good ones
            messages.insert(self.rng.randrange(len(messages) + 1), payload)
        return messages


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


async def register(url: str, schema: str) -> dict[str, int]:
    conn = await connect_async(url, schema, autocommit=True)
    async with conn:
        enterprise = await upsert_enterprise(conn, ENTERPRISE, "Poison test")
        ids = {}
        for device in DEVICES:
            device_id = await upsert_device(conn, enterprise, device)
            sensor = await upsert_sensor(
                conn,
                device_id,
                f"{device}.noise",
                quantity="noise_laeq",
                unit="dB(A)",
                min_value=30.0,
                max_value=140.0,
            )
            ids[sensor.code] = sensor.id
    return ids


def settings(pg_url: str, schema: str, mqtt_url: str, prefix: str, **extra: Any) -> IngestSettings:
    return IngestSettings(
        database_url=pg_url,
        database_schema=schema,
        mqtt_url=mqtt_url,
        topic_prefix=prefix,
        ingest_client_id=f"poison-{prefix}",
        ingest_retry_max_s=0.3,
        **extra,
    )


async def publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    endpoint = MqttEndpoint.parse(url)
    async with aiomqtt.Client(endpoint.host, endpoint.port) as publisher:
        for topic, payload in messages:
            await publisher.publish(topic, payload, qos=1)


def quarantined(pg_url: str, schema: str) -> Counter[str]:
    found = rows(pg_url, schema, "SELECT reason, count(*) FROM quarantine GROUP BY reason")
    return Counter({reason: int(n) for reason, n in found})


async def test_hostile_messages_between_good_ones_through_a_restart(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    ids = await register(pg_url, schema)
    corpus = Corpus(topic_prefix)
    messages = corpus.build(messages_per_device=150)
    half = len(messages) // 2
    config = settings(pg_url, schema, mqtt_url, topic_prefix)

    first = IngestWorker(config)
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    await asyncio.wait_for(first.subscribed.wait(), 10)
    await publish(mqtt_url, messages[:half])
    # Stopped abruptly while it works through them: what it held unacknowledged comes again.
    await eventually(lambda: stored(pg_url, schema)[0] > 0, what="the first worker to store")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert first.status().dead_letters == 0

    # While no worker runs, the broker keeps the session's messages; the deep one comes first.
    await publish(mqtt_url, [(corpus.topic("pdev-1"), DEEP), *messages[half:]])
    corpus.reasons["too_deep"] += 1
    second = IngestWorker(config)
    stop = asyncio.Event()
    task = asyncio.create_task(second.run(stop))
    try:
        await eventually(
            lambda: (
                stored(pg_url, schema)[0] >= len(corpus.expected)
                and all(quarantined(pg_url, schema)[r] >= n for r, n in corpus.reasons.items())
            ),
            timeout_s=60,
            what=f"every message processed ({len(corpus.expected)} readings, {corpus.reasons})",
        )
        await second.flush(30)
        assert not task.done(), "hostile input must not stop the worker"
        assert second.status().healthy
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

    expected = sorted((ids[code], t, v) for code, t, v in corpus.expected)
    assert stored_rows(pg_url, schema) == expected, "every good reading, once, and nothing else"
    found = quarantined(pg_url, schema)
    # Messages the first worker held unacknowledged were quarantined again by the second.
    assert set(found) == set(corpus.reasons)
    for reason, count in corpus.reasons.items():
        assert found[reason] >= count, reason
    for detail, topic in rows(pg_url, schema, "SELECT detail, topic FROM quarantine"):
        assert detail
        assert topic.startswith(topic_prefix)
    # Nothing the content did counts as a processing failure.
    assert scalar(pg_url, schema, "SELECT count(*) FROM dead_letters") == 0
    assert second.metrics.processing_failures.labels("validate")._value.get() == 0
    sensors = rows(
        pg_url,
        schema,
        "SELECT s.code FROM sensors s JOIN devices d ON d.id = s.device_id WHERE d.code = 'pdev-1'",
    )
    assert sensors == [("pdev-1.noise",)], "no sensor named after another device"


# --------------------------------------------------------------------------- dead letters


def execute(pg_url: str, schema: str, statement: sql.Composed) -> None:
    with connect(pg_url, schema, autocommit=True) as conn:
        conn.execute(statement)


def refuse_writes(pg_url: str, schema: str, table: str, condition: str) -> None:
    """A fault of the database that is not an outage: a trigger refusing some rows."""
    execute(
        pg_url,
        schema,
        sql.SQL(
            "CREATE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'test fault: this row is refused'; END $$; "
            "CREATE TRIGGER refuse BEFORE INSERT ON {t} FOR EACH ROW WHEN ({c}) "
            "EXECUTE FUNCTION {f}()"
        ).format(
            f=sql.Identifier(schema, "refuse"),
            t=sql.Identifier(schema, table),
            c=sql.SQL(condition),
        ),
    )


def allow_writes(pg_url: str, schema: str, table: str) -> None:
    execute(
        pg_url,
        schema,
        sql.SQL("DROP TRIGGER refuse ON {t}").format(t=sql.Identifier(schema, table)),
    )


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, ["deadletters", *args])
    return code, capsys.readouterr().out


@pytest.mark.parametrize(
    ("stage", "table", "condition"),
    [
        # The commit fails: a batch is retried, split, and only the poison message set aside.
        ("write", "ingested_messages", "NEW.device_id = {pdev_1} AND NEW.seq = 3"),
        # Registering a new sensor fails while the message is checked.
        ("validate", "sensors", "NEW.code = 'pdev-1.dust'"),
    ],
)
async def test_a_message_that_keeps_failing_becomes_a_dead_letter_and_replays(
    pg_url: str,
    mqtt_url: str,
    schema: str,
    topic_prefix: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
    table: str,
    condition: str,
) -> None:
    ids = await register(pg_url, schema)
    corpus = Corpus(topic_prefix)
    corpus.build(messages_per_device=6)
    poison_topic = corpus.topic("pdev-1")
    dust = corpus.channel(
        "pdev-1",
        3,
        [0.5, 0.6],
        sensor="pdev-1.dust",
        quantity="dust",
        unit="mg/m3",
        substance="silica_10_70",
    )
    if stage == "validate":  # the same message, with a sensor that cannot be registered
        corpus.good[6] = (poison_topic, corpus.body("pdev-1", 3, dust))
    pdev_1 = scalar(pg_url, schema, "SELECT id FROM devices WHERE code = 'pdev-1'")
    refuse_writes(pg_url, schema, table, condition.format(pdev_1=int(pdev_1)))
    config = settings(pg_url, schema, mqtt_url, topic_prefix, ingest_max_attempts=3)
    worker = IngestWorker(config)
    port = free_port()
    server = await serve_http("127.0.0.1", port, worker.metrics.registry, worker.status)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.subscribed.wait(), 10)
        await publish(mqtt_url, corpus.good)
        await eventually(lambda: worker.status().dead_letters == 1, what="a dead letter")
        # The rest of the stream went on: everything but the poison message is stored.
        others = [
            r
            for r in corpus.expected
            if not (
                r[0] == "pdev-1.noise"
                and r[1] >= datetime_to_us(corpus.base + timedelta(seconds=30))
                and r[1] < datetime_to_us(corpus.base + timedelta(seconds=40))
            )
        ]
        await eventually(lambda: stored(pg_url, schema)[0] == len(others), what="the others")
        await worker.flush(10)
        assert worker.status().unacknowledged == 0, "the dead letter is acknowledged"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            health = (await http.get("/health")).json()
        assert health["status"] == "ok"
        assert health["subscribed"] is True
        assert health["dead_letters"] == 1
        assert health["last_dead_letter_at"] is not None
        assert health["last_commit_at"] is not None
        assert worker.metrics.dead_letters.labels(stage)._value.get() == 1
        assert worker.metrics.processing_failures.labels(stage)._value.get() >= 3
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        server.close()
        await server.wait_closed()

    letter = rows(
        pg_url, schema, "SELECT stage, topic, device, attempts, error, payload FROM dead_letters"
    )
    assert len(letter) == 1
    got_stage, topic, device, attempts, error, payload = letter[0]
    assert (got_stage, topic, device, attempts) == (stage, poison_topic, "pdev-1", 3)
    assert "test fault: this row is refused" in error
    assert json.loads(bytes(payload))["seq"] == 3, "the whole message is kept for a replay"

    monkeypatch.setenv("QORGAU_DATABASE_URL", pg_url)
    monkeypatch.setenv("QORGAU_DATABASE_SCHEMA", schema)
    code, out = await cli(capsys, "list")
    assert code == 0
    assert "test fault: this row is refused" in out
    assert poison_topic in out
    # Replaying before the cause is fixed fails again and keeps the letter, with exit status 1.
    code, out = await cli(capsys, "replay")
    assert code == 1
    assert "failed again" in out
    allow_writes(pg_url, schema, table)
    code, out = await cli(capsys, "replay")
    assert code == 0, out
    assert "replayed 1, failed 0" in out
    poison = json.loads(bytes(payload))["channels"][0]
    expected = [
        (c, t, v)
        for c, t, v in corpus.expected
        if (c, t, v) in others or (c == poison["sensor"] and stage == "write")
    ]
    if stage == "validate":
        t0 = datetime_to_us(datetime.fromisoformat(poison["t0"]))
        expected += [("pdev-1.dust", t0 + i * 1_000_000, v) for i, v in enumerate(poison["values"])]
        ids["pdev-1.dust"] = scalar(
            pg_url, schema, "SELECT id FROM sensors WHERE code = %s", ["pdev-1.dust"]
        )
    assert stored_rows(pg_url, schema) == sorted((ids[c], t, v) for c, t, v in expected)
    code, out = await cli(capsys, "list")
    assert "no dead letters waiting for a replay" in out
    code, out = await cli(capsys, "list", "--all")
    assert "replay (" in out
    assert f"stored {len(poison['values'])} readings" in out
    # Once more: exactly-once holds for replays too.
    letter_id = scalar(pg_url, schema, "SELECT id FROM dead_letters")
    code, out = await cli(capsys, "replay", "--id", str(letter_id))
    assert code == 0
    assert "already stored" in out
    assert len(stored_rows(pg_url, schema)) == len(expected)


def test_replay_without_the_table_says_to_upgrade(
    pg_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = f"t_empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(empty)))
    try:
        monkeypatch.setenv("QORGAU_DATABASE_URL", pg_url)
        monkeypatch.setenv("QORGAU_DATABASE_SCHEMA", empty)
        assert main(["deadletters", "list"]) == 1
        assert "qorgau db upgrade" in capsys.readouterr().err
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(empty)))
