"""Ingest throughput, end to end, against its ceiling and a naive baseline.

    python bench/ingest.py --seconds 20 --json

Starts its own PostgreSQL and Mosquitto (``qorgau.localservices``, removed afterwards), then
measures, each in a fresh schema with the same table layout:

- ``raw_copy_rows_per_s``: the same rows COPYed straight into ``readings`` as pre-encoded binary
  buffers of one ingest batch each, one transaction per buffer: what PostgreSQL itself takes,
  the ceiling for ingest.
- ``naive_readings_per_s``: a naive ingestor: ``json.loads`` each message, one ``INSERT`` per
  reading, one commit per message (no broker: its cost would only lower this figure).
- ``end_to_end_readings_per_s`` (1 worker) and ``end_to_end_2_workers_readings_per_s``: simulated
  devices publish batched messages (QoS 1) to Mosquitto for ``--seconds``; ``qorgau ingest``
  worker processes validate, de-duplicate, COPY, keep rollups and acknowledge; the figure is
  committed readings over the time from the first publish to the last commit. The publisher
  keeps a bounded backlog ahead of the workers (so they never starve and the broker's queue
  stays small), and builds payloads from pre-encoded pieces, as devices do their own encoding.
- ``lost`` and ``duplicated``: readings published but not stored, and stored twice, over every
  end-to-end run (by distinct (sensor, time), each reading having its own).

The realistic mode (``--small-seconds``, on by default; ``--only small`` runs nothing else) sends
what devices send: one message a second per device of 8 channels × 1 value (the edge agent's
default), from ``--small-devices`` devices, as fast as the publishers manage with at most
``--small-window`` messages ahead of the commits, and reports, at 8 readings per message:

- ``small_messages_per_s`` (2 workers) and ``small_messages_1_worker_per_s``: messages committed
  per second, first publish to last commit;
- ``bare_subscriber_messages_per_s``: the same with two subscriber processes that only take the
  messages and acknowledge them (ingest's own MQTT client code, no database), on the same broker
  in the same run: the ceiling of the MQTT path on this machine; ``ratio_to_bare_subscriber``
  is the 2-worker figure over it;
- ``small_publisher_alone_messages_per_s``: the publishers with nobody subscribed, to show that
  they are not the limit.

Figures only, never pass/fail: the machine decides.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# bench/edge.py and bench/api.py are named like packages this file imports (vocabulary.protocol):
# keep this folder off the import path when run as a script, and the repository's root on it
# for the bench.* modules.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import psycopg  # noqa: E402

from bench.stack import machine  # noqa: E402
from qorgau.localservices import (  # noqa: E402
    LocalMosquitto,
    LocalPostgres,
    free_port,
    scratch_dir,
    timescaledb_installed,
)
from qorgau.worker_process import spawn_ingest_worker  # noqa: E402
from store.connection import connect, connect_async  # noqa: E402
from store.migrate import upgrade  # noqa: E402
from store.readings import (  # noqa: E402
    COPY_READINGS_SQL,
    ReadingBlock,
    datetime_to_us,
    days_of,
    encode_copy_binary,
    ensure_day_partitions,
    us_to_datetime,
)
from store.registry import upsert_device, upsert_enterprise, upsert_sensor  # noqa: E402
from vocabulary.protocol import readings_topic  # noqa: E402

ENTERPRISE = "bench-ent"
# suffix, quantity, unit, substance, value range of the simulated instrument
CHANNELS = (
    ("laeq", "noise_laeq", "dB(A)", None, 55.0, 105.0),
    ("lamax", "noise_lamax", "dB(A)", None, 70.0, 120.0),
    ("hav", "vib_hav", "m/s2", None, 0.2, 9.0),
    ("wbvz", "vib_wbv_z", "m/s2", None, 0.05, 1.2),
    ("co", "gas", "mg/m3", "CO", 0.0, 60.0),
    ("h2s", "gas", "ppm", "H2S", 0.0, 15.0),
    ("ch4", "gas", "%LEL", "CH4", 0.0, 40.0),
    ("dust", "dust", "mg/m3", "silica", 0.05, 6.0),
)


@dataclass(frozen=True)
class Shape:
    devices: int
    values: int  # per channel per message
    period_s: float
    start: datetime
    device_prefix: str = "bench-dev"  # distinct prefixes keep two workloads apart in one schema

    @property
    def per_message(self) -> int:
        return len(CHANNELS) * self.values

    def device(self, d: int) -> str:
        return f"{self.device_prefix}-{d:04d}"

    def t0(self, seq: int) -> datetime:
        return self.start + timedelta(seconds=seq * self.values * self.period_s)


class Payloads:
    """Message bytes from pre-encoded pieces: only seq and t0 change between messages."""

    def __init__(self, shape: Shape, prefix: str, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.shape = shape
        self.topics = [
            readings_topic(prefix, ENTERPRISE, shape.device(d)) for d in range(shape.devices)
        ]
        self.heads: list[bytes] = []
        self.channels: list[list[tuple[bytes, bytes]]] = []
        for d in range(shape.devices):
            code = shape.device(d)
            self.heads.append(f'{{"v":1,"device":"{code}","seq":'.encode())
            parts = []
            for suffix, quantity, unit, substance, lo, hi in CHANNELS:
                sub = f',"substance":"{substance}"' if substance else ""
                before_t0 = (
                    f'{{"sensor":"{code}.{suffix}","quantity":"{quantity}","unit":"{unit}"{sub},'
                    '"t0":"'
                ).encode()
                values = np.round(rng.uniform(lo, hi, shape.values), 2)
                after_t0 = (
                    f'","period_s":{shape.period_s},"values":' + json.dumps(values.tolist()) + "}"
                ).encode()
                parts.append((before_t0, after_t0))
            self.channels.append(parts)

    def message(self, d: int, seq: int) -> tuple[str, bytes]:
        t0 = self.shape.t0(seq).isoformat().encode()
        body = b",".join(before + t0 + after for before, after in self.channels[d])
        return self.topics[d], b"".join(
            (self.heads[d], str(seq).encode(), b',"channels":[', body, b"]}")
        )

    def block(self, d: int, seq: int, sensor_ids: list[int]) -> ReadingBlock:
        """The readings of one message, as ingest stores them."""
        shape = self.shape
        t0 = datetime_to_us(shape.t0(seq))
        times = t0 + np.rint(np.arange(shape.values) * shape.period_s * 1e6).astype(np.int64)
        blocks = []
        for c, (_, after) in enumerate(self.channels[d]):
            values = np.array(json.loads(after.split(b'"values":', 1)[1][:-1]), dtype=np.float64)
            blocks.append(
                ReadingBlock(times, np.full(shape.values, sensor_ids[c], np.int32), values)
            )
        return ReadingBlock.concat(blocks)


# ---------------------------------------------------------------------- services and schema


async def register(url: str, schema: str, shape: Shape) -> list[list[int]]:
    conn = await connect_async(url, schema, autocommit=True)
    ids: list[list[int]] = []
    async with conn:
        enterprise = await upsert_enterprise(conn, ENTERPRISE, "Benchmark")
        for d in range(shape.devices):
            device = await upsert_device(conn, enterprise, shape.device(d))
            row = []
            for suffix, quantity, unit, substance, _, _ in CHANNELS:
                sensor = await upsert_sensor(
                    conn,
                    device,
                    f"{shape.device(d)}.{suffix}",
                    quantity=quantity,
                    unit=unit,
                    substance=substance,
                )
                row.append(sensor.id)
            ids.append(row)
    return ids


def fresh_schema(url: str, name: str, shape: Shape, backend: str = "plain") -> list[list[int]]:
    upgrade(url, name, timescale="on" if backend == "timescale" else "off")
    return asyncio.run(register(url, name, shape))


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def count_stored(url: str, schema: str) -> tuple[int, int]:
    with connect(url, schema, autocommit=True) as conn:
        conn.execute("SET work_mem = '512MB'")
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (sensor_id, time)) FROM readings"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


# ---------------------------------------------------------------------- raw COPY ceiling


def raw_copy(
    url: str, shape: Shape, payloads: Payloads, seconds: float, batch: int
) -> dict[str, float]:
    """COPY rate of the readings the workload produces, one batch per transaction, two ways
    into fresh tables: pre-encoded binary buffers, and psycopg's typed ``write_row`` from
    prepared tuples. Only COPY and commit are timed; the faster is the ceiling."""
    rates = {}
    for schema, typed in (("bench_raw", False), ("bench_raw_rows", True)):
        ids = fresh_schema(url, schema, shape)
        per_batch = max(1, batch // shape.per_message)
        batches: list[Any] = []
        seq, d, rows_ready = 0, 0, 0
        days: set[int] = set()
        # Enough for the time given at a generous rate (the loop below stops on time), with a
        # cap on prepared tuples, which take memory.
        while rows_ready < seconds * 600_000 and (not typed or rows_ready < 1_500_000):
            blocks = []
            for _ in range(per_batch):
                blocks.append(payloads.block(d, seq, ids[d]))
                d += 1
                if d == shape.devices:
                    d, seq = 0, seq + 1
            block = ReadingBlock.concat(blocks)
            days |= days_of(block.times_us)
            rows_ready += len(block)
            if typed:
                batches.append(
                    [
                        (us_to_datetime(int(t)), int(s), float(v))
                        for t, s, v in zip(
                            block.times_us, block.sensor_ids, block.values, strict=True
                        )
                    ]
                )
            else:
                batches.append((encode_copy_binary(block), len(block)))
        asyncio.run(_ensure_days(url, schema, days))
        rows = 0
        with connect(url, schema) as conn:
            started = time.perf_counter()
            for item in batches:
                with conn.cursor().copy(COPY_READINGS_SQL) as copy:
                    if typed:
                        copy.set_types(["timestamptz", "int4", "float8"])
                        for row in item:
                            copy.write_row(row)
                        rows += len(item)
                    else:
                        copy.write(item[0])
                        rows += item[1]
                conn.commit()
                if time.perf_counter() - started >= seconds:
                    break
            rates[typed] = rows / (time.perf_counter() - started)
        del batches
        drop_schema(url, schema)
    return {
        "raw_copy_rows_per_s": max(rates.values()),
        "raw_copy_buffer_rows_per_s": rates[False],
        "raw_copy_write_row_rows_per_s": rates[True],
    }


async def _ensure_days(url: str, schema: str, days: set[int]) -> None:
    conn = await connect_async(url, schema, autocommit=True)
    async with conn:
        await ensure_day_partitions(conn, days)


# ---------------------------------------------------------------------- naive baseline


def naive(url: str, shape: Shape, payloads: Payloads, seconds: float) -> float:
    ids = fresh_schema(url, "bench_naive", shape)
    sensor_ids = {
        f"{shape.device(d)}.{suffix}": ids[d][c]
        for d in range(shape.devices)
        for c, (suffix, *_rest) in enumerate(CHANNELS)
    }
    readings = 0
    with psycopg.connect(url, options="-c search_path=bench_naive,public") as conn:
        started = time.perf_counter()
        seq = 0
        while time.perf_counter() - started < seconds:
            for d in range(shape.devices):
                _, payload = payloads.message(d, seq)
                message = json.loads(payload)
                with conn.cursor() as cur:
                    for channel in message["channels"]:
                        t0 = datetime.fromisoformat(channel["t0"])
                        sensor = sensor_ids[channel["sensor"]]
                        for i, value in enumerate(channel["values"]):
                            cur.execute(
                                "INSERT INTO readings (time, sensor_id, value) VALUES (%s, %s, %s)",
                                (t0 + timedelta(seconds=i * channel["period_s"]), sensor, value),
                            )
                            readings += 1
                conn.commit()
                if time.perf_counter() - started >= seconds:
                    break
            seq += 1
        elapsed = time.perf_counter() - started
    drop_schema(url, "bench_naive")
    return readings / elapsed


# ---------------------------------------------------------------------- end to end


def publisher_main(
    mqtt_port: int,
    shape: Shape,
    prefix: str,
    seconds: float,
    allowed: Any,
    published: Any,
    ready: Any,
    part: tuple[int, int] = (0, 1),
) -> None:
    """Publish messages round-robin over devices while the backlog allows, for ``seconds``, and
    wait for the broker's acknowledgements. ``part`` = (n, of): this publisher takes every
    ``of``-th device from the ``n``-th; ``allowed`` and ``published`` count for all publishers
    together.

    Devices encode and send their own messages, so the bench must not spend more per message
    than ingest does: this publisher writes ready-made MQTT 5 PUBLISH packets (QoS 1) to the
    socket many at a time and counts PUBACKs, where a client library would cost tens of µs of
    Python per message and become the limit (``small_publisher_alone_messages_per_s``)."""
    payloads = Payloads(shape, prefix)
    mine = list(range(part[0], shape.devices, part[1]))
    link = RawPublisher(mqtt_port, f"bench-pub-{prefix}-{part[0]}")
    ready.set()
    count = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            room = min(allowed.value - published.value, link.room(), 200)
            if room <= 0:
                link.read_acks(wait_s=0.001)
                continue
            packets = []
            for _ in range(room):
                d, seq = mine[count % len(mine)], count // len(mine)
                packets.append(link.packet(*payloads.message(d, seq)))
                count += 1
            link.send(packets)
            with published.get_lock():
                published.value += room
            link.read_acks(wait_s=0.0)
        link.drain(timeout_s=60)
    finally:
        link.close()


class RawPublisher:
    """A minimal MQTT 5 publisher on a plain socket (QoS 1, no properties): CONNECT, PUBLISH
    packets built in bulk, PUBACKs counted. For the bench only; devices use the edge agent."""

    INFLIGHT = 1000

    def __init__(self, port: int, client_id: str) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cid = client_id.encode()
        # protocol name, level 5, clean start, keepalive 60 s, no properties, client id
        body = b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + len(cid).to_bytes(2, "big") + cid
        self.sock.sendall(b"\x10" + _varint(len(body)) + body)
        self.buffer = b""
        kind, _ = self._packet(block=True)
        if kind != 0x20:
            raise RuntimeError(f"expected CONNACK, got packet type {kind:#x}")
        self.next_mid = 1
        self.inflight = 0
        self.unrouted = 0  # PUBACK 0x10: nobody subscribed (the publisher-alone run)

    def room(self) -> int:
        return self.INFLIGHT - self.inflight

    def packet(self, topic: str, payload: bytes) -> bytes:
        mid = self.next_mid
        self.next_mid = mid % 65535 + 1
        name = topic.encode()
        body = b"".join(
            (len(name).to_bytes(2, "big"), name, mid.to_bytes(2, "big"), b"\x00", payload)
        )
        return b"\x32" + _varint(len(body)) + body

    def send(self, packets: list[bytes]) -> None:
        self.sock.sendall(b"".join(packets))
        self.inflight += len(packets)

    def read_acks(self, wait_s: float) -> None:
        import select

        if not select.select([self.sock], [], [], wait_s)[0]:
            return
        data = self.sock.recv(1 << 16)
        if not data:
            raise RuntimeError("the broker closed the connection")
        self.buffer += data
        while True:
            kind, body = self._packet(block=False)
            if kind is None:
                return
            if kind == 0x40:
                self.inflight -= 1
                if len(body) > 2 and body[2] == 0x10:
                    self.unrouted += 1
                elif len(body) > 2 and body[2] >= 0x80:
                    raise RuntimeError(f"the broker refused a message (reason {body[2]:#x})")

    def drain(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.inflight > 0 and time.monotonic() < deadline:
            self.read_acks(wait_s=0.05)
        if self.inflight > 0:
            raise RuntimeError(f"{self.inflight} messages never acknowledged by the broker")

    def _packet(self, *, block: bool) -> tuple[int | None, bytes]:
        while True:
            kind, body, used = _split_packet(self.buffer)
            if kind is not None:
                self.buffer = self.buffer[used:]
                return kind, body
            if not block:
                return None, b""
            data = self.sock.recv(1 << 16)
            if not data:
                raise RuntimeError("the broker closed the connection")
            self.buffer += data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _split_packet(buffer: bytes) -> tuple[int | None, bytes, int]:
    """The first whole packet of ``buffer``: (type, body, bytes used), or (None, b"", 0)."""
    if len(buffer) < 2:
        return None, b"", 0
    length, shift, pos = 0, 0, 1
    while True:
        if pos >= len(buffer):
            return None, b"", 0
        byte = buffer[pos]
        length |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            break
        shift += 7
    if len(buffer) < pos + length:
        return None, b"", 0
    return buffer[0] & 0xF0, buffer[pos : pos + length], pos + length


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=60) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return 0.0

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return bool(json.loads(r.read())["broker_connected"])
        except OSError:
            return False


def start_worker(
    pg: str,
    mqtt: str,
    schema: str,
    prefix: str,
    name: str,
    folder: Path,
    extra_env: dict[str, str] | None = None,
) -> Worker:
    port = free_port()
    log = folder / f"{name}.log"
    process = spawn_ingest_worker(
        database_url=pg,
        schema=schema,
        mqtt_url=mqtt,
        prefix=prefix,
        client_id=name,
        metrics_port=port,
        log_path=log,
        env=extra_env,
    )
    worker = Worker(process, port, log)
    deadline = time.monotonic() + 30
    while not worker.ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"ingest worker did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    return worker


@dataclass(frozen=True)
class Burst:
    messages: int  # published (and acknowledged by the broker)
    readings: float  # committed by the workers during the burst
    elapsed_s: float  # first publish → last commit

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _pace(
    senders: list[Any],
    committed_now: Callable[[], float],
    allowed: Any,
    published: Any,
    window_messages: int,
) -> float:
    """Keep the publishers at most ``window_messages`` ahead of the commits until they have
    stopped and everything published is committed; returns when the last commit was seen."""
    committed = 0.0
    last_change = time.monotonic()
    while True:
        now_committed = committed_now()
        if now_committed != committed:
            committed, last_change = now_committed, time.monotonic()
        allowed.value = int(committed) + window_messages
        running = any(sender.is_alive() for sender in senders)
        if not running and committed >= published.value:
            return last_change
        if time.monotonic() - last_change > 60:
            raise RuntimeError("ingest stopped committing")
        time.sleep(0.05)


def burst(
    procs: list[Worker],
    mqtt_port: int,
    shape: Shape,
    prefix: str,
    seconds: float,
    window_messages: int,
    on_started: Callable[[], None] | None = None,
    publishers: int = 1,
    progress: Callable[[], float] | None = None,
) -> Burst:
    """Publish ``shape``'s messages for ``seconds`` with at most ``window_messages`` ahead of
    the workers' commits, and wait until they have committed them all: what the workers
    sustain end to end when never starved and never buried. ``progress`` counts the messages
    done when something else than ``procs`` takes them (the bare subscriber)."""

    def done() -> float:
        if progress is not None:
            return progress()
        return sum(w.metric("qorgau_ingest_messages_committed_total") for w in procs)

    baseline = done()
    readings_before = sum(w.metric("qorgau_ingest_readings_total") for w in procs)
    ctx = mp.get_context("spawn")
    allowed = ctx.Value("q", window_messages)
    published = ctx.Value("q", 0)
    readies = [ctx.Event() for _ in range(publishers)]
    senders = [
        ctx.Process(
            target=publisher_main,
            args=(mqtt_port, shape, prefix, seconds, allowed, published, ready, (n, publishers)),
        )
        for n, ready in enumerate(readies)
    ]
    try:
        for sender in senders:
            sender.start()
        for ready in readies:
            ready.wait(30)
        if on_started is not None:
            on_started()
        started = time.monotonic()
        last_change = _pace(senders, lambda: done() - baseline, allowed, published, window_messages)
        for sender in senders:
            sender.join()
    finally:
        for sender in senders:
            if sender.is_alive():
                sender.kill()
                sender.join()
    readings = sum(w.metric("qorgau_ingest_readings_total") for w in procs) - readings_before
    return Burst(int(published.value), readings, last_change - started)


def end_to_end(
    pg: str,
    mqtt_url: str,
    mqtt_port: int,
    shape: Shape,
    seconds: float,
    workers: int,
    window_messages: int,
    folder: Path,
    profile: Path | None = None,
    publishers: int = 1,
    label: str = "",
    backend: str = "plain",
    env: dict[str, str] | None = None,
    services: dict[str, int] | None = None,
) -> dict[str, float]:
    """``services``: name → process id of a server (PostgreSQL, Mosquitto) whose CPU per
    message, with its children's, is reported as ``{name}_cpu_us_per_message``."""
    schema = f"bench_e2e{label}{workers}"
    prefix = f"bench{label}{workers}"
    fresh_schema(pg, schema, shape, backend)
    procs = [
        start_worker(pg, mqtt_url, schema, prefix, f"{prefix}-w{n}", folder, env)
        for n in range(workers)
    ]
    spies: list[subprocess.Popen[bytes]] = []

    def profile_workers() -> None:
        if profile is None:
            return
        for n, w in enumerate(procs):  # py-spy (pip install py-spy), collapsed stacks per worker
            spies.append(
                subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "--pid",
                        str(w.process.pid),
                        "--duration",
                        str(int(seconds)),
                        "--output",
                        str(profile.with_suffix(f".w{n}.txt")),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    try:
        cpu_before = sum(_cpu_s(w.process.pid) for w in procs)
        services_before = {name: _tree_cpu_s(sid) for name, sid in (services or {}).items()}
        machine_before = _machine_cpu_s()
        children_before = _children_cpu_s()
        run = burst(
            procs,
            mqtt_port,
            shape,
            prefix,
            seconds,
            window_messages,
            profile_workers,
            publishers=publishers,
        )
        cpu_s = sum(_cpu_s(w.process.pid) for w in procs) - cpu_before
        # Where the machine's CPU went during the run: the workers, each server, the publishers
        # (this process's children that have ended), and everything on the machine.
        spent = {
            f"{name}_cpu_s": _tree_cpu_s(sid) - services_before[name]
            for name, sid in (services or {}).items()
        }
        spent["publishers_cpu_s"] = _children_cpu_s() - children_before
        busy, machine_s = (
            now - before for now, before in zip(_machine_cpu_s(), machine_before, strict=True)
        )
        spent["machine_cpu_s"] = busy
        batches = sum(w.metric("qorgau_ingest_batch_readings_count") for w in procs)
        commit_s = sum(w.metric("qorgau_ingest_commit_seconds_sum") for w in procs)
        latency_sum = sum(w.metric("qorgau_ingest_latency_seconds_sum") for w in procs)
        latency_n = sum(w.metric("qorgau_ingest_latency_seconds_count") for w in procs)
        shares = [w.metric("qorgau_ingest_readings_total") for w in procs]
        for spy in spies:
            spy.wait(seconds + 30)
    finally:
        for w in procs:
            w.process.terminate()
            w.process.wait(30)
    readings = run.readings
    expected = run.messages * shape.per_message
    total, distinct = count_stored(pg, schema)
    drop_schema(pg, schema)
    return {
        "readings_per_s": run.readings_per_s,
        "messages_per_s": run.messages / run.elapsed_s if run.elapsed_s > 0 else 0.0,
        "worker_cpu_us_per_message": 1e6 * cpu_s / run.messages if run.messages else 0.0,
        **{
            name.replace("_cpu_s", "_cpu_us_per_message"): 1e6 * t / run.messages
            for name, t in spent.items()
            if run.messages
        },
        "machine_busy_fraction": busy / machine_s if machine_s else 0.0,
        "messages": run.messages,
        "readings": expected,
        "lost": expected - distinct,
        "duplicated": total - distinct,
        "mean_batch_readings": readings / batches if batches else 0.0,
        "mean_commit_s": commit_s / batches if batches else 0.0,
        "mean_arrival_to_commit_s": latency_sum / latency_n if latency_n else 0.0,
        "worker_share_min": min(shares) / max(sum(shares), 1),
    }


def _cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used so far, in seconds (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_pids(pg: LocalPostgres, broker: LocalMosquitto) -> dict[str, int]:
    """The process ids of the bench's servers."""
    return {
        name: server.process.pid
        for name, server in (("postgres", pg), ("broker", broker))
        if server.process is not None
    }


def _tree_cpu_s(root: int) -> float:
    """CPU time (user + system, with that of ended children) of a process and all its live
    descendants: a server and its children (PostgreSQL's backends leave its session, so the
    tree is followed by parent ids)."""
    stats: dict[int, tuple[int, int]] = {}  # pid -> (parent, clock ticks)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
    inside = {root}
    grew = True
    while grew:
        grew = False
        for pid, (parent, _) in stats.items():
            if parent in inside and pid not in inside:
                inside.add(pid)
                grew = True
    return sum(stats[pid][1] for pid in inside if pid in stats) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    """CPU time of this process's children that have ended and been waited for."""
    times = os.times()
    return times.children_user + times.children_system


def _machine_cpu_s() -> tuple[float, float]:
    """CPU time the whole machine has been busy (anything but idle and I/O wait) and its total,
    in seconds summed over CPUs (Linux)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])  # user … steal; guest time is already in user
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


# ---------------------------------------------------------------------- realistic mode


def bare_subscriber_main(
    mqtt_port: int, prefix: str, client_id: str, taken: Any, ready: Any, stop: Any
) -> None:
    """Take messages from the shared subscription and acknowledge them, nothing else, with
    ingest's own MQTT client code (``ingest.mqtt``): the ceiling of ingest's MQTT path."""
    from ingest import mqtt
    from vocabulary.mqtt_url import MqttEndpoint
    from vocabulary.protocol import readings_subscription

    async def run() -> None:
        client = mqtt.build_client(
            MqttEndpoint.parse(f"mqtt://127.0.0.1:{mqtt_port}"),
            client_id=client_id,
            session_expiry_s=0,
            receive_maximum=2000,
            clean_start=True,
        )
        inbox = mqtt.Inbox(client)
        async with client:
            await client.subscribe(readings_subscription(prefix, "qorgau-ingest"), qos=1)
            ready.set()
            while not stop.is_set():
                try:
                    async with asyncio.timeout(0.2):
                        messages = await inbox.take(500)
                except TimeoutError:
                    continue
                mqtt.ack_many(client, [m.mid for m in messages if m.qos])
                with taken.get_lock():
                    taken.value += len(messages)
                await asyncio.sleep(0)

    asyncio.run(run())


def bare_subscriber(
    mqtt_port: int,
    shape: Shape,
    seconds: float,
    window_messages: int,
    publishers: int,
    subscribers: int = 2,
) -> tuple[float, float]:
    """Messages per second that ``subscribers`` bare subscribers take and acknowledge, and the
    machine's CPU time per message meanwhile (µs: publishers, broker and subscribers)."""
    ctx = mp.get_context("spawn")
    taken = ctx.Value("q", 0)
    stop = ctx.Event()
    readies = [ctx.Event() for _ in range(subscribers)]
    prefix = "benchbare"
    procs = [
        ctx.Process(
            target=bare_subscriber_main, args=(mqtt_port, prefix, f"bare-{n}", taken, ready, stop)
        )
        for n, ready in enumerate(readies)
    ]
    try:
        for proc in procs:
            proc.start()
        for ready in readies:
            if not ready.wait(30):
                raise RuntimeError("bare subscriber did not start")
        machine_before = _machine_cpu_s()[0]
        run = burst(
            [],
            mqtt_port,
            shape,
            prefix,
            seconds,
            window_messages,
            publishers=publishers,
            progress=lambda: float(taken.value),
        )
        busy_s = _machine_cpu_s()[0] - machine_before
    finally:
        stop.set()
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    if run.elapsed_s <= 0 or not run.messages:
        return 0.0, 0.0
    return run.messages / run.elapsed_s, 1e6 * busy_s / run.messages


def publisher_alone(mqtt_port: int, shape: Shape, seconds: float, publishers: int) -> float:
    """Messages per second the publishers send (and the broker acknowledges) with nobody
    subscribed: what they can offer, so that they are shown not to be the limit."""
    ctx = mp.get_context("spawn")
    allowed = ctx.Value("q", 1 << 60)
    published = ctx.Value("q", 0)
    readies = [ctx.Event() for _ in range(publishers)]
    senders = [
        ctx.Process(
            target=publisher_main,
            args=(
                mqtt_port,
                shape,
                "benchalone",
                seconds,
                allowed,
                published,
                ready,
                (n, publishers),
            ),
        )
        for n, ready in enumerate(readies)
    ]
    for sender in senders:
        sender.start()
    for ready in readies:
        ready.wait(30)
    started = time.monotonic()
    for sender in senders:
        sender.join()
    return float(published.value) / (time.monotonic() - started)


def small_messages(
    pg: str,
    broker: LocalMosquitto,
    seconds: float,
    devices: int,
    window: int,
    publishers: int,
    folder: Path,
    say: Callable[..., None],
    profile: Path | None = None,
    backend: str = "plain",
    env: dict[str, str] | None = None,
    services: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The realistic mode: 8 readings per message (see the module docstring)."""
    shape = Shape(
        devices=devices,
        values=1,
        period_s=1.0,
        start=(datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0),
        device_prefix="small-dev",
    )
    say(f"small messages ({shape.per_message} readings): publishers alone…")
    alone = publisher_alone(broker.port, shape, min(seconds, 10.0), publishers)
    say(f"  {alone:,.0f} messages/s")
    say("small messages: bare subscriber (2 processes)…")
    bare, bare_cpu_us = bare_subscriber(broker.port, shape, seconds, window, publishers)
    say(f"  {bare:,.0f} messages/s")
    runs = {}
    for n in (1, 2):
        say(f"small messages: {n} worker(s)…")
        runs[n] = end_to_end(
            pg,
            broker.url,
            broker.port,
            shape,
            seconds,
            n,
            window,
            folder,
            profile if n == 1 else None,
            publishers=publishers,
            label="small",
            backend=backend,
            env=env,
            services=services,
        )
        say(f"  {runs[n]['messages_per_s']:,.0f} messages/s")
    return {
        "small_messages_per_s": round(runs[2]["messages_per_s"]),
        "small_messages_1_worker_per_s": round(runs[1]["messages_per_s"]),
        "bare_subscriber_messages_per_s": round(bare),
        # What the MQTT path alone (publishers, broker, bare subscribers) costs the machine per
        # message: on shared cores it bounds the ratio any ingest can reach (docs/ingest.md).
        "bare_subscriber_machine_cpu_us_per_message": round(bare_cpu_us, 1),
        "ratio_to_bare_subscriber": round(runs[2]["messages_per_s"] / bare, 3) if bare else 0.0,
        "ratio_1_worker_to_bare_subscriber": (
            round(runs[1]["messages_per_s"] / bare, 3) if bare else 0.0
        ),
        "small_publisher_alone_messages_per_s": round(alone),
        "small_readings_per_message": shape.per_message,
        "small_worker_cpu_us_per_message": round(runs[1]["worker_cpu_us_per_message"], 1),
        "small_worker_cpu_us_per_message_2_workers": round(runs[2]["worker_cpu_us_per_message"], 1),
        "small_mean_arrival_to_commit_s": round(runs[2]["mean_arrival_to_commit_s"], 4),
        "small_mean_batch_messages_1_worker": round(
            runs[1]["mean_batch_readings"] / shape.per_message
        ),
        "small_mean_commit_s_1_worker": round(runs[1]["mean_commit_s"], 4),
        # CPU per message committed, by whom (see ``end_to_end``); the machine's
        # figure includes work that is not the bench's on a shared machine.
        **{
            f"small_{k}_{n}_worker{'s' if n > 1 else ''}": round(
                v, 1 if k.endswith("message") else 3
            )
            for n in (1, 2)
            for k, v in runs[n].items()
            if k.endswith(("_cpu_us_per_message", "_busy_fraction"))
            and k != "worker_cpu_us_per_message"
        },
        "small_backend": backend,
        "small_worker_env": env or {},
        "small_lost": int(runs[1]["lost"] + runs[2]["lost"]),
        "small_duplicated": int(runs[1]["duplicated"] + runs[2]["duplicated"]),
        "small_messages_published": int(runs[1]["messages"] + runs[2]["messages"]),
        "small_devices": devices,
        "small_publishers": publishers,
    }


# ---------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="publishing time per run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--only",
        choices=("all", "large", "small"),
        default="all",
        help="large: the batched workload only; small: the realistic mode only",
    )
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--values", type=int, default=250, help="samples per channel per message")
    parser.add_argument("--period-s", type=float, default=0.1, help="sampling period")
    parser.add_argument("--batch", type=int, default=50_000, help="raw COPY rows per commit")
    parser.add_argument(
        "--window-messages",
        type=int,
        default=120,
        help="most messages published ahead of the commits",
    )
    parser.add_argument(
        "--small-seconds",
        type=float,
        default=10.0,
        help="publishing time per run of the realistic mode (8 readings/message)",
    )
    parser.add_argument(
        "--small-devices",
        type=int,
        default=1000,
        help="devices of the realistic mode, one message each per round",
    )
    parser.add_argument(
        "--small-window",
        type=int,
        default=20_000,
        help="realistic mode: most messages published ahead of the commits",
    )
    parser.add_argument(
        "--publishers", type=int, default=2, help="publisher processes of the realistic mode"
    )
    parser.add_argument(
        "--small-backend",
        choices=("timescale", "plain"),
        default=None,
        help="database backend of the realistic mode (default: TimescaleDB "
        "where installed, as deployed; plain PostgreSQL keeps rollups itself)",
    )
    parser.add_argument(
        "--worker-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="realistic mode: an environment setting for the ingest workers, "
        "e.g. QORGAU_INGEST_RECEIVE_MAXIMUM=8000",
    )
    parser.add_argument(
        "--broker-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a Mosquitto setting (qorgau.broker.BrokerConfig field, "
        "integers), e.g. max_inflight_messages=20, to measure its effect",
    )
    parser.add_argument("--naive-seconds", type=float, default=None)
    parser.add_argument("--no-fsync", action="store_true", help="PostgreSQL with fsync off")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy the 1-worker run into PROFILE.w0.txt (with --only small: "
        "the realistic mode's)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat ceiling and end-to-end runs; figures are medians (a busy machine varies)",
    )
    args = parser.parse_args()
    try:
        overrides = {k: int(v) for k, v in (item.split("=", 1) for item in args.broker_set)}
    except ValueError:
        parser.error("--broker-set takes KEY=INTEGER, e.g. max_inflight_messages=20")

    small_backend = args.small_backend or ("timescale" if timescaledb_installed() else "plain")
    shape = Shape(
        devices=args.devices,
        values=args.values,
        period_s=args.period_s,
        start=(datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0),
    )
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    folder = scratch_dir("qorgau-bench-")
    pg = LocalPostgres(folder / "pg", durable=not args.no_fsync)
    broker = LocalMosquitto(folder / "mqtt", config_overrides=overrides)
    rounds: list[dict[Any, Any]] = []
    small: dict[str, Any] = {}
    try:
        pg.start()
        broker.start()

        def say(*parts: object) -> None:
            if not args.json:
                print(*parts, file=sys.stderr)

        if args.only != "small":
            say("naive ingestor…")
            naive_rate = naive(
                pg.url,
                shape,
                Payloads(shape, "naive"),
                args.naive_seconds or min(args.seconds / 2, 10.0),
            )
            say(f"  {naive_rate:,.0f} readings/s")
        for r in range(args.rounds if args.only != "small" else 0):
            say(f"round {r + 1} of {args.rounds}: raw COPY ceiling…")
            raw = raw_copy(pg.url, shape, Payloads(shape, "raw"), args.seconds / 2, args.batch)
            say(f"  {raw['raw_copy_rows_per_s']:,.0f} rows/s")
            runs: dict[int, dict[str, Any]] = {}
            for n in (1, 2):
                say(f"round {r + 1}: end to end, {n} worker(s)…")
                runs[n] = end_to_end(
                    pg.url,
                    broker.url,
                    broker.port,
                    shape,
                    args.seconds,
                    n,
                    args.window_messages,
                    folder,
                    args.profile if n == 1 and r == 0 else None,
                )
                say(f"  {runs[n]['readings_per_s']:,.0f} readings/s")
            rounds.append({"raw": raw, 1: runs[1], 2: runs[2]})
        if args.only != "large":
            small = small_messages(
                pg.url,
                broker,
                args.small_seconds,
                args.small_devices,
                args.small_window,
                args.publishers,
                folder,
                say,
                args.profile if args.only == "small" else None,
                small_backend,
                dict(item.split("=", 1) for item in args.worker_set),
                _server_pids(pg, broker),
            )
    finally:
        broker.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)

    def median(values: list[float]) -> float:
        return float(np.median(values))

    result: dict[str, Any] = {}
    if rounds:
        raw = {k: median([r["raw"][k] for r in rounds]) for k in rounds[0]["raw"]}
        one = {k: median([r[1][k] for r in rounds]) for k in rounds[0][1]}
        two = {k: median([r[2][k] for r in rounds]) for k in rounds[0][2]}
        published = sum(r[n]["readings"] for r in rounds for n in (1, 2))
        result |= {
            "end_to_end_readings_per_s": round(one["readings_per_s"]),
            "end_to_end_2_workers_readings_per_s": round(two["readings_per_s"]),
            "raw_copy_rows_per_s": round(raw["raw_copy_rows_per_s"]),
            "naive_readings_per_s": round(naive_rate),
            "ratio_to_raw_copy": round(one["readings_per_s"] / raw["raw_copy_rows_per_s"], 3),
            "ratio_2_workers_to_raw_copy": round(
                two["readings_per_s"] / raw["raw_copy_rows_per_s"], 3
            ),
            "speedup_over_naive": round(one["readings_per_s"] / naive_rate, 1),
            "raw_copy_buffer_rows_per_s": round(raw["raw_copy_buffer_rows_per_s"]),
            "raw_copy_write_row_rows_per_s": round(raw["raw_copy_write_row_rows_per_s"]),
            "readings_published": int(published),
            "readings_per_message": shape.per_message,
            "mean_batch_readings": round(one["mean_batch_readings"]),
            "mean_commit_s": round(one["mean_commit_s"], 4),
            "mean_arrival_to_commit_s": round(one["mean_arrival_to_commit_s"], 4),
            "mean_arrival_to_commit_2_workers_s": round(two["mean_arrival_to_commit_s"], 4),
            "smaller_worker_share_2_workers": round(two["worker_share_min"], 3),
            "seconds": args.seconds,
            "rounds": args.rounds,
            "per_round": [
                {
                    "raw_copy_rows_per_s": round(r["raw"]["raw_copy_rows_per_s"]),
                    "end_to_end_readings_per_s": round(r[1]["readings_per_s"]),
                    "end_to_end_2_workers_readings_per_s": round(r[2]["readings_per_s"]),
                }
                for r in rounds
            ],
        }
    result |= small
    # Over every end-to-end run, large and small messages.
    result["lost"] = int(
        sum(r[n]["lost"] for r in rounds for n in (1, 2)) + small.get("small_lost", 0)
    )
    result["duplicated"] = int(
        sum(r[n]["duplicated"] for r in rounds for n in (1, 2)) + small.get("small_duplicated", 0)
    )
    result |= {
        "broker_settings": overrides,
        "date": datetime.now(UTC).date().isoformat(),
        "load_average_1min_before": round(load_before, 2),
        "machine": machine(fsync=not args.no_fsync),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:40} {value}")


if __name__ == "__main__":
    main()
