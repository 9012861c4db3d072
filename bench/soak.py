#!/usr/bin/env python3
"""Soak test: the whole stack at half its capacity for minutes, memory watched, every reading
counted.

    python bench/soak.py --minutes 5 [--json] [--workers 2] [--rate READINGS_PER_S]

Starts a private PostgreSQL (fsync on) and Mosquitto (``qorgau.localservices``, removed
afterwards), upgrades the schema, and runs the real services as subprocesses: ``--workers``
``qorgau ingest`` workers on the shared subscription (stable client ids ``soak-ingest-N``),
``qorgau alerts`` and ``qorgau api``. Then:

1. Capacity: a burst of ``--burst-seconds`` with bench/ingest.py's workload and publisher (a
   bounded backlog ahead of the commits), with every service running: the lower of the rate
   the ingest workers commit it at and the rate the alert engine takes it in at. ``--rate``
   skips the burst and sets the soak rate directly.
2. Soak: for ``--minutes``, simulated devices (bench/ingest.py's 8-channel messages, one
   message per device about every second) publish with QoS 1 at ``--load`` × capacity (half by
   default), paced, while a client asks the API for recent readings and the alert list a few
   times per second.
3. Memory: resident memory of each service — VmRSS of the ingest workers, the alert engine,
   the API and Mosquitto; the proportional set size (PSS, so that shared buffers count once)
   summed over PostgreSQL's process tree — at the start (after ``--warmup-s``), every
   ``--sample-s`` (for the maximum) and at the end, while under load.
4. Counts: after the ingest workers have drained, what the broker acknowledged to the
   publisher is compared with what is stored: each (device, seq) message once in
   ``ingested_messages`` and every reading once in ``readings`` (by distinct (sensor, time)).

Goals: memory flat within 10 % from start to end, no reading lost, none duplicated. The exit
status is 1 when a reading or message is lost or duplicated; memory growth is reported (table,
JSON goal flags) but does not change the exit status, as a few minutes cannot tell a slow leak
from a cache filling up. Progress goes to stderr; the result (a table, or one JSON object with
``--json``) to stdout. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

# bench/ingest.py and bench/api.py are named like packages: keep this folder off the path, and
# the repository's root on it for the bench.* modules.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from bench.ingest import (  # noqa: E402
    CHANNELS,
    Payloads,
    Shape,
    Worker,
    burst,
    register,
)
from bench.stack import api_token, machine, service_env, spawn, stop_all, wait_ready  # noqa: E402
from qorgau.localservices import LocalMosquitto, LocalPostgres, free_port, scratch_dir  # noqa: E402
from store.connection import connect  # noqa: E402
from store.migrate import upgrade  # noqa: E402

SCHEMA = "qorgau"
PREFIX = "qorgau"
MIB = 1024 * 1024
MEMORY_GOAL_PCT = 10.0
NO_MATCHING_SUBSCRIBERS = 0x10


# ---------------------------------------------------------------------- memory


def _status_kib(pid: int, field_name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _pss_kib(pid: int, shared: bool) -> int | None:
    """Proportional set size; without System V / POSIX shared memory unless ``shared``."""
    fields: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("Pss", "Pss_Shmem"):
                    fields[name] = int(rest.split()[0])
    except OSError:
        return None
    if "Pss" not in fields:
        return None
    return fields["Pss"] if shared else fields["Pss"] - fields.get("Pss_Shmem", 0)


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it, from /proc (no psutil needed)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in () may hold spaces
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


@dataclass
class Watched:
    """A service whose memory is sampled: one process (VmRSS) or a process tree (sum of PSS:
    PostgreSQL's backends share its buffers, which VmRSS would count once per backend). With
    ``shared=False`` a tree's shared memory is left out: PostgreSQL's shared buffers fill up to
    their configured size as data arrives, which is growth, but not a leak."""

    name: str
    pid: int
    tree: bool = False
    shared: bool = True
    samples: list[tuple[float, float]] = field(default_factory=list)  # (s since soak start, MiB)

    def mib(self) -> float | None:
        if not self.tree:
            kib = _status_kib(self.pid, "VmRSS")
            return None if kib is None else kib / 1024
        total = 0
        for pid in _descendants(self.pid):
            kib = _pss_kib(pid, self.shared)
            if kib is None:  # not ours to read: fall back to resident size
                kib = _status_kib(pid, "VmRSS") or 0
            total += kib
        return total / 1024


class MemorySampler(threading.Thread):
    def __init__(self, watched: list[Watched], every_s: float) -> None:
        super().__init__(daemon=True, name="memory-sampler")
        self.watched = watched
        self.every_s = every_s
        self.started_at = time.monotonic()
        self.halt = threading.Event()
        self.lock = threading.Lock()

    def sample(self) -> dict[str, float]:
        now = time.monotonic() - self.started_at
        out = {}
        with self.lock:
            for w in self.watched:
                value = w.mib()
                if value is not None:
                    w.samples.append((now, value))
                    out[w.name] = value
        return out

    def run(self) -> None:
        while not self.halt.wait(self.every_s):
            self.sample()


def memory_figures(w: Watched, start_s: float) -> dict[str, float | None]:
    """Start (first sample at or after ``start_s``), end (the last sample), max (from start)."""
    after = [mib for t, mib in w.samples if t >= start_s]
    if not after:
        return {"rss_start_mib": None, "rss_end_mib": None, "rss_max_mib": None, "growth_pct": None}
    start, end = after[0], after[-1]
    return {
        "rss_start_mib": round(start, 1),
        "rss_end_mib": round(end, 1),
        "rss_max_mib": round(max(after), 1),
        "growth_pct": round(100.0 * (end - start) / start, 1) if start else None,
    }


# ---------------------------------------------------------------------- publisher


def soak_publisher(
    mqtt_port: int,
    shape: Shape,
    prefix: str,
    interval_s: float,
    begin_monotonic: float,
    stop: Any,
    published: Any,
    acked: Any,
    out_path: str,
) -> None:
    """Each device publishes message ``seq`` at ``begin + seq × interval`` (devices spread over
    the interval, as unsynchronised instruments are), QoS 1, until ``stop``; then waits for the
    outstanding acknowledgements and writes what the broker acknowledged to ``out_path``."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us (Ctrl-C reaches it too)
    payloads = Payloads(shape, prefix)
    acks: deque[tuple[int, int]] = deque()  # (mid, reason); filled by paho's network thread

    def on_publish(_c: object, _u: object, mid: int, reason: Any, _p: object) -> None:
        acks.append((mid, int(getattr(reason, "value", 0))))

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="soak-publisher", protocol=paho.MQTTv5
    )
    client.on_publish = on_publish
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    pending: dict[int, tuple[int, int]] = {}  # mid → (device, seq)
    done: list[tuple[int, int]] = []
    refused = {"unrouted": 0, "failed": 0}
    first = last = 0.0

    def settle() -> None:
        while acks:
            mid, reason = acks.popleft()
            key = pending.pop(mid, None)
            if key is None:
                continue
            if reason == NO_MATCHING_SUBSCRIBERS:
                refused["unrouted"] += 1  # dropped by the broker: must not count as published
            elif reason >= 0x80:
                refused["failed"] += 1
            else:
                done.append(key)
        acked.value = len(done)

    k = 0
    try:
        while not stop.is_set():
            d, seq = k % shape.devices, k // shape.devices
            due = begin_monotonic + (seq + d / shape.devices) * interval_s
            delay = due - time.monotonic()
            if delay > 0:
                settle()
                time.sleep(min(delay, 0.2))
                continue
            topic, payload = payloads.message(d, seq)
            info = client.publish(topic, payload, qos=1)
            pending[info.mid] = (d, seq)
            last = time.monotonic()
            first = first or last
            k += 1
            published.value = k
            if k % 64 == 0:
                settle()
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            settle()
            time.sleep(0.01)
        settle()
    finally:
        client.disconnect()
        client.loop_stop()
        result = {
            "acked": done,
            "unacked": len(pending),
            **refused,
            "first_publish": first,
            "last_publish": last,
        }
        Path(out_path).write_text(json.dumps(result))


# ---------------------------------------------------------------------- API load


class ApiLoad(threading.Thread):
    """A client of the API while the soak runs: recent readings of a random sensor, and every
    fifth request the alert list, ``per_s`` times a second."""

    def __init__(self, base: str, token: str, sensor_ids: list[int], per_s: float) -> None:
        super().__init__(daemon=True, name="api-load")
        self.base, self.token, self.sensor_ids, self.per_s = base, token, sensor_ids, per_s
        self.halt = threading.Event()
        self.ok = 0
        self.errors = 0
        self.latencies_s: list[float] = []
        self.last_error = ""

    def run(self) -> None:
        pick = random.Random(5)
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=30) as http:
            n = 0
            while not self.halt.wait(1.0 / self.per_s):
                n += 1
                now = datetime.now(UTC)
                try:
                    t = time.perf_counter()
                    if n % 5 == 0:
                        response = http.get("/api/v1/alerts", params={"limit": 20})
                    else:
                        response = http.get(
                            f"/api/v1/sensors/{pick.choice(self.sensor_ids)}/readings",
                            params={
                                "from": (now - timedelta(seconds=5)).isoformat(),
                                "to": now.isoformat(),
                            },
                        )
                    self.latencies_s.append(time.perf_counter() - t)
                    response.raise_for_status()
                    self.ok += 1
                except httpx.HTTPError as exc:
                    self.errors += 1
                    self.last_error = repr(exc)[:200]


# ---------------------------------------------------------------------- counting


@dataclass(frozen=True)
class Counts:
    messages_stored: int
    messages_lost: int
    messages_unexpected: int  # stored, but never acknowledged to the publisher
    readings_stored: int
    readings_distinct: int
    quarantined: int


def count(url: str, shape: Shape, acked: set[tuple[int, int]], since: datetime) -> Counts:
    codes = {shape.device(d): d for d in range(shape.devices)}
    with connect(url, SCHEMA, autocommit=True) as conn:
        stored = {
            (codes[code], int(seq))
            for code, seq in conn.execute(
                "SELECT d.code, m.seq FROM ingested_messages m JOIN devices d ON d.id = m.device_id"
                " WHERE d.code = ANY(%s)",
                [list(codes)],
            )
        }
        # Per sensor, where the (sensor_id, time) index gives the order: one global DISTINCT
        # over composite keys takes twenty times longer.
        conn.execute("SET work_mem = '256MB'")
        per_sensor = conn.execute(
            "SELECT r.sensor_id, count(*), count(DISTINCT r.time) FROM readings r"
            " WHERE r.time >= %s AND r.sensor_id IN (SELECT s.id FROM sensors s"
            " JOIN devices d ON d.id = s.device_id WHERE d.code = ANY(%s))"
            " GROUP BY r.sensor_id",
            [since, list(codes)],
        ).fetchall()
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()
    assert quarantined is not None
    return Counts(
        messages_stored=len(stored),
        messages_lost=len(acked - stored),
        messages_unexpected=len(stored - acked),
        readings_stored=sum(int(r[1]) for r in per_sensor),
        readings_distinct=sum(int(r[2]) for r in per_sensor),
        quarantined=int(quarantined[0]),
    )


def soak_messages_stored(url: str, shape: Shape) -> int:
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={SCHEMA}") as conn:
        row = conn.execute(
            "SELECT count(*) FROM ingested_messages m JOIN devices d ON d.id = m.device_id"
            " WHERE d.code LIKE %s",
            [shape.device_prefix + "-%"],
        ).fetchone()
    assert row is not None
    return int(row[0])


def metric(url: str, name: str) -> float:
    for line in httpx.get(url, timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


# ---------------------------------------------------------------------- main


class TerminatedError(Exception):
    """SIGTERM: leave through the same clean-up as Ctrl-C."""


def _on_sigterm(_sig: int, _frame: FrameType | None) -> None:
    raise TerminatedError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 when nothing was lost or duplicated, 1 otherwise, 130 when "
        "interrupted. Memory growth above 10 % is reported (goals.memory_flat) but is not "
        "fatal: a few minutes cannot tell a leak from a cache filling up.",
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="soak length [5]")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--workers", type=int, default=2, help="ingest workers [2]")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="soak rate in readings/s (skips the capacity burst)",
    )
    parser.add_argument(
        "--load",
        type=float,
        default=0.5,
        help="soak rate as a fraction of the measured capacity [0.5]",
    )
    parser.add_argument(
        "--burst-seconds",
        type=float,
        default=15.0,
        help="publishing time of the capacity burst [15]",
    )
    parser.add_argument(
        "--values", type=int, default=250, help="samples per channel per message (8 channels) [250]"
    )
    parser.add_argument(
        "--warmup-s",
        type=float,
        default=None,
        help="seconds of soak before the start memory sample [a fifth of the soak, at most 60]",
    )
    parser.add_argument(
        "--sample-s", type=float, default=5.0, help="seconds between memory samples [5]"
    )
    parser.add_argument(
        "--api-per-s", type=float, default=4.0, help="API requests per second during the soak [4]"
    )
    parser.add_argument("--no-fsync", action="store_true", help="PostgreSQL with fsync off")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder (printed)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.workers < 1 or (args.rate is not None and args.rate <= 0):
        parser.error("--minutes, --workers and --rate must be positive")
    return args


def say(text: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _start_services(
    n_workers: int, env: dict[str, str], folder: Path, services: list[subprocess.Popen[bytes]]
) -> tuple[list[Worker], str, str]:
    """Start ``n_workers`` ingest workers, the alert engine and the API (each appended to
    ``services`` as it starts, so that a failure stops those already running) and wait until
    they are ready: the workers, the engine's metrics URL and the API's base URL."""
    workers: list[Worker] = []
    for n in range(n_workers):
        name = f"soak-ingest-{n}"
        port = free_port()
        process = spawn(
            "ingest",
            {
                **env,
                "QORGAU_INGEST_CLIENT_ID": name,
                "QORGAU_INGEST_METRICS_PORT": str(port),
                "QORGAU_INGEST_METRICS_HOST": "127.0.0.1",
            },
            folder,
            name,
        )
        services.append(process)
        workers.append(Worker(process, port, folder / f"{name}.log"))
    for n, w in enumerate(workers):
        wait_ready(w.process, w.ready, f"ingest worker {n}")

    metrics_port, api_port = free_port(), free_port()
    services.append(
        spawn(
            "alerts",
            {
                **env,
                "QORGAU_ALERTS_CLIENT_ID": "soak-alerts",
                "QORGAU_ALERTS_METRICS_PORT": str(metrics_port),
            },
            folder,
            "alerts",
        )
    )
    alerts_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    services.append(spawn("api", {**env, "QORGAU_API_PORT": str(api_port)}, folder, "api"))
    api = f"http://127.0.0.1:{api_port}"
    wait_ready(services[-1], lambda: httpx.get(f"{api}/health").status_code == 200, "API")
    wait_ready(
        services[-2],
        lambda: metric(alerts_metrics, "qorgau_alerts_ready") == 1.0,
        "alert engine",
    )
    return workers, alerts_metrics, api


@dataclass(frozen=True, slots=True)
class _Rate:
    """The soak's rate (readings/s), where it comes from, and the capacities it derives from
    when measured."""

    rate: float
    source: str
    capacity: float | None = None
    ingest: float | None = None
    alerts: float | None = None


def _soak_rate(
    args: argparse.Namespace, pg_url: str, broker_port: int, workers: list[Worker], alerts: str
) -> _Rate:
    """Capacity: what the whole stack sustains, both consumers of the stream included: the
    rate at which the ingest workers commit a burst (bounded backlog, as in bench/ingest.py)
    and the rate at which the alert engine (metrics at ``alerts``), on its own subscription,
    takes the same messages in; the lower of the two. The API runs meanwhile, idle. The
    burst's readings are two days old, apart from the soak's."""
    if args.rate is not None:
        return _Rate(args.rate, "given (--rate)")
    burst_shape = Shape(
        devices=50,
        values=args.values,
        period_s=0.1,
        device_prefix="burst",
        start=(datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0),
    )
    asyncio.run(register(pg_url, SCHEMA, burst_shape))
    say(f"capacity burst: {args.burst_seconds:.0f} s, {args.workers} ingest worker(s)…")
    heard_before = metric(alerts, "qorgau_alerts_messages_total")
    marks: list[float] = []
    run = burst(
        workers,
        broker_port,
        burst_shape,
        PREFIX,
        args.burst_seconds,
        120,
        lambda: marks.append(time.monotonic()),
    )
    deadline = time.monotonic() + 120
    while metric(alerts, "qorgau_alerts_messages_total") - heard_before < run.messages:
        if time.monotonic() > deadline:
            raise RuntimeError("the alert engine did not take in the burst")
        time.sleep(0.1)
    ingest_capacity = run.readings_per_s
    alerts_capacity = run.messages * burst_shape.per_message / (time.monotonic() - marks[0])
    capacity = min(ingest_capacity, alerts_capacity)
    say(
        f"  capacity {capacity:,.0f} readings/s (ingest {ingest_capacity:,.0f}, "
        f"alert engine {alerts_capacity:,.0f})"
    )
    return _Rate(
        args.load * capacity,
        f"measured ({args.burst_seconds:.0f} s burst)",
        capacity,
        ingest_capacity,
        alerts_capacity,
    )


@dataclass(slots=True)
class _Backlog:
    """Messages published but not yet committed by ingest / not yet taken in by the engine:
    memory held for a backlog is not a leak, so the run says how large it got."""

    workers: list[Worker]
    alerts_metrics: str
    committed_before: float
    heard_before: float
    max: dict[str, float] = field(default_factory=lambda: {"ingest": 0.0, "alerts": 0.0})
    at_end: dict[str, float] = field(default_factory=lambda: {"ingest": 0.0, "alerts": 0.0})

    def update(self, published: Any) -> None:
        # Consumers first, publisher last: a message published in between is not counted as
        # taken in before it was sent.
        committed = sum(w.metric("qorgau_ingest_messages_committed_total") for w in self.workers)
        heard = metric(self.alerts_metrics, "qorgau_alerts_messages_total")
        sent_now = published.value
        self.at_end = {
            "ingest": sent_now - (committed - self.committed_before),
            "alerts": sent_now - (heard - self.heard_before),
        }
        self.max = {k: max(v, self.at_end[k]) for k, v in self.max.items()}


@dataclass(frozen=True, slots=True)
class _SoakWatch:
    begin: float  # time.monotonic() of the first message
    soak_s: float
    warmup_s: float
    per_message: int  # readings
    folder: Path  # the services' logs


def _watch_soak(
    watch: _SoakWatch,
    backlog: _Backlog,
    published: Any,
    sampler: MemorySampler,
    api_load: ApiLoad,
    watched: list[Watched],
    services: list[subprocess.Popen[bytes]],
) -> None:
    """Until the soak is over: the start memory sample after the warm-up, the backlog, a
    progress line every 10 s, and a stop if a service exits."""
    begin, end = watch.begin, watch.begin + watch.soak_s
    warm_sampled = False
    next_report = time.monotonic() + 10
    while (now := time.monotonic()) < end:
        if not warm_sampled and now - begin >= watch.warmup_s:
            sampler.sample()
            warm_sampled = True
        backlog.update(published)
        if now >= next_report:
            next_report += 10
            rss = "  ".join(f"{w.name} {w.samples[-1][1]:.0f}" for w in watched if w.samples)
            say(
                f"{now - begin:4.0f} s: published "
                f"{published.value * watch.per_message / (now - begin):,.0f} readings/s | "
                f"backlog (messages) ingest {backlog.at_end['ingest']:,.0f} alerts "
                f"{backlog.at_end['alerts']:,.0f} | API {api_load.ok} ok {api_load.errors} "
                f"errors | MiB: {rss}"
            )
        for s in services:
            if s.poll() is not None:
                raise RuntimeError(f"a service exited with {s.returncode}: see {watch.folder}")
        time.sleep(min(0.5, max(0.0, end - time.monotonic())))
    if not warm_sampled:
        sampler.sample()


def _drain(pg_url: str, shape: Shape, expected: int) -> float:
    """Seconds until ingest has stored ``expected`` soak messages, or has made no progress for
    30 s."""
    drain_started = time.monotonic()
    last, last_change = -1, time.monotonic()
    while (stored_now := soak_messages_stored(pg_url, shape)) < expected:
        if stored_now != last:
            last, last_change = stored_now, time.monotonic()
        elif time.monotonic() - last_change > 30:
            say("ingest stopped making progress: counting what is there")
            break
        time.sleep(0.2)
    return time.monotonic() - drain_started


def _engine_catch_up(alerts_metrics: str, heard_before: float, expected: int) -> float:
    """Messages the engine has taken in since ``heard_before``, once ``expected`` or after
    30 s."""
    deadline = time.monotonic() + 30
    while (
        heard := metric(alerts_metrics, "qorgau_alerts_messages_total") - heard_before
    ) < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return heard


def _stop_publisher(publisher: Any) -> None:
    if publisher is None:
        return
    publisher.join(10)
    if publisher.is_alive():
        publisher.kill()
        publisher.join()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soak_s = args.minutes * 60.0
    warmup_s = args.warmup_s if args.warmup_s is not None else min(60.0, soak_s / 5)
    signal.signal(signal.SIGTERM, _on_sigterm)
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    folder = scratch_dir("qorgau-soak-")
    pg = LocalPostgres(folder / "pg", durable=not args.no_fsync)
    broker = LocalMosquitto(folder / "mqtt")
    services: list[subprocess.Popen[bytes]] = []
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    publisher: Any = None
    api_load: ApiLoad | None = None
    sampler: MemorySampler | None = None
    result: dict[str, Any] = {}
    interrupted = False
    try:
        say(f"PostgreSQL and Mosquitto in {folder}")
        pg.start()
        broker.start()
        upgrade(pg.url, SCHEMA, timescale="off")
        env = service_env(pg.url, SCHEMA, broker.url, PREFIX)
        workers, alerts_metrics, api = _start_services(args.workers, env, folder, services)
        rated = _soak_rate(args, pg.url, broker.port, workers, alerts_metrics)
        rate = rated.rate
        token = api_token(pg.url, SCHEMA, "soak")

        # One message per device about every second, 8 channels × --values samples each:
        # the device count carries the rate.
        per_message = len(CHANNELS) * args.values
        devices = max(1, round(rate / per_message))
        interval_s = devices * per_message / rate
        begin_wall = time.time() + 3.0  # the publisher process needs a moment to start
        begin = time.monotonic() + 3.0
        shape = Shape(
            devices=devices,
            values=args.values,
            period_s=interval_s / args.values,
            device_prefix="soak",
            start=datetime.fromtimestamp(begin_wall - interval_s, UTC),  # data ends when sent
        )
        ids = asyncio.run(register(pg.url, SCHEMA, shape))
        say(
            f"soak: {rate:,.0f} readings/s ({rated.source}), {devices} devices × "
            f"{per_message} readings every {interval_s:.2f} s, {args.minutes:g} min; memory "
            f"start sample after {warmup_s:.0f} s"
        )

        watched = [Watched(f"ingest-{n}", w.process.pid) for n, w in enumerate(workers)]
        watched += [Watched("alerts", services[-2].pid), Watched("api", services[-1].pid)]
        assert broker.process is not None
        assert pg.process is not None
        watched += [
            Watched("mosquitto", broker.process.pid),
            Watched("postgresql", pg.process.pid, tree=True),
            Watched("pg-private", pg.process.pid, tree=True, shared=False),
        ]
        # Messages published but not yet committed by ingest / not yet taken in by the engine:
        # memory held for a backlog is not a leak, so the run says how large it got. Counted
        # from here, before the first soak message.
        committed_before = sum(w.metric("qorgau_ingest_messages_committed_total") for w in workers)
        heard_before = metric(alerts_metrics, "qorgau_alerts_messages_total")
        published, acked = ctx.Value("q", 0), ctx.Value("q", 0)
        out_path = folder / "published.json"
        publisher = ctx.Process(
            target=soak_publisher,
            args=(
                broker.port,
                shape,
                PREFIX,
                interval_s,
                begin,
                stop,
                published,
                acked,
                str(out_path),
            ),
        )
        publisher.start()
        time.sleep(max(0.0, begin - time.monotonic()))
        sampler = MemorySampler(watched, args.sample_s)
        sampler.start()
        api_load = ApiLoad(api, token, [s for row in ids for s in row], args.api_per_s)
        api_load.start()

        backlog = _Backlog(workers, alerts_metrics, committed_before, heard_before)
        _watch_soak(
            _SoakWatch(begin, soak_s, warmup_s, per_message, folder),
            backlog,
            published,
            sampler,
            api_load,
            watched,
            services,
        )
        sampler.sample()  # the end sample, still under load
        sampler.halt.set()
        api_load.halt.set()
        stop.set()
        say("soak over: waiting for the broker's acknowledgements and for ingest to drain…")
        publisher.join(90)
        sent = json.loads(out_path.read_text())
        acked_set = {(int(d), int(s)) for d, s in sent["acked"]}
        drain_s = _drain(pg.url, shape, len(acked_set))
        # The engine has its own subscription: give it the same chance to catch up.
        heard = _engine_catch_up(alerts_metrics, heard_before, len(acked_set))
        say("counting…")
        counts = count(pg.url, shape, acked_set, shape.start)
        api_load.join(10)

        published_readings = len(acked_set) * per_message
        soak_elapsed = (sent["last_publish"] - sent["first_publish"]) or 1.0
        lost = published_readings - counts.readings_distinct
        duplicated = counts.readings_stored - counts.readings_distinct
        memory = {w.name: memory_figures(w, warmup_s) for w in watched}
        growths = [m["growth_pct"] for m in memory.values()]
        latencies = sorted(api_load.latencies_s)
        result = {
            "minutes": args.minutes,
            "services": memory,
            "rate_source": rated.source,
            "capacity": None if rated.capacity is None else round(rated.capacity),
            "capacity_ingest": None if rated.ingest is None else round(rated.ingest),
            "capacity_alerts": None if rated.alerts is None else round(rated.alerts),
            "rate_target": round(rate),
            # n messages published over the n - 1 gaps between the first and the last
            "rate_achieved": round((len(acked_set) - 1) * per_message / soak_elapsed),
            "published": published_readings,
            "stored": counts.readings_stored,
            "lost": lost,
            "duplicated": duplicated,
            "quarantined": counts.quarantined,
            "messages_published": len(acked_set),
            "messages_stored": counts.messages_stored,
            "messages_lost": counts.messages_lost,
            "messages_stored_unacknowledged": counts.messages_unexpected,
            "messages_unacknowledged_by_broker": sent["unacked"],
            "messages_refused_by_broker": sent["unrouted"] + sent["failed"],
            "drain_s": round(drain_s, 2),
            "backlog_max_messages": {k: int(v) for k, v in backlog.max.items()},
            "backlog_at_end_messages": {k: int(v) for k, v in backlog.at_end.items()},
            "alerts_messages_received": int(heard),
            "api_requests_ok": api_load.ok,
            "api_requests_failed": api_load.errors,
            "api_p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
            "devices": devices,
            "readings_per_message": per_message,
            "warmup_s": warmup_s,
            "goals": {
                "memory_flat": all(g is not None and g <= MEMORY_GOAL_PCT for g in growths),
                "no_loss": lost == 0 and counts.messages_lost == 0,
                "no_duplicates": duplicated == 0,
            },
            "memory_series_mib": {
                w.name: [[round(t, 1), round(m, 1)] for t, m in w.samples] for w in watched
            },
            "date": datetime.now(UTC).date().isoformat(),
            "load_average_1min_before": round(load_before, 2),
            "machine": machine(fsync=not args.no_fsync),
        }
        if api_load.errors:
            result["api_last_error"] = api_load.last_error
    except (KeyboardInterrupt, TerminatedError):
        interrupted = True
        say("interrupted: stopping everything")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one clean-up, not two
        for thread in (sampler, api_load):
            if thread is not None:
                thread.halt.set()
        stop.set()
        _stop_publisher(publisher)
        stop_all(services)
        broker.stop()
        pg.stop()
        if args.keep:
            say(f"logs in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if interrupted:
        return 130
    report(result, args.json)
    return 0 if result["goals"]["no_loss"] and result["goals"]["no_duplicates"] else 1


def report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return

    def num(value: float | None, digits: int = 1) -> str:
        return "–" if value is None else f"{value:,.{digits}f}"

    print(
        f"{'service':<12} {'RSS start (MiB)':>16} {'RSS end (MiB)':>14} {'RSS max (MiB)':>14}"
        f" {'growth (%)':>11}"
    )
    for name, m in result["services"].items():
        print(
            f"{name:<12} {num(m['rss_start_mib']):>16} {num(m['rss_end_mib']):>14}"
            f" {num(m['rss_max_mib']):>14} {num(m['growth_pct']):>11}"
        )
    print(
        "(postgresql: PSS summed over its processes, shared buffers included; pg-private: the "
        "same without shared memory; the others: VmRSS)"
    )
    rows = [
        ("capacity (readings/s)", num(result["capacity"], 0)),
        ("rate target (readings/s)", f"{num(result['rate_target'], 0)}  {result['rate_source']}"),
        ("rate achieved (readings/s)", num(result["rate_achieved"], 0)),
        ("published (readings)", num(result["published"], 0)),
        ("stored (readings)", num(result["stored"], 0)),
        ("lost (readings)", num(result["lost"], 0)),
        ("duplicated (readings)", num(result["duplicated"], 0)),
        ("quarantined (records)", num(result["quarantined"], 0)),
        (
            "messages published / stored",
            f"{result['messages_published']:,} / {result['messages_stored']:,}",
        ),
        ("drain after the soak (s)", num(result["drain_s"], 2)),
        (
            "backlog max, ingest / alerts",
            f"{result['backlog_max_messages']['ingest']:,} / "
            f"{result['backlog_max_messages']['alerts']:,} messages",
        ),
        (
            "API requests ok / failed",
            f"{result['api_requests_ok']} / {result['api_requests_failed']}",
        ),
        ("memory flat within 10 % (goal)", str(result["goals"]["memory_flat"])),
        ("nothing lost (goal)", str(result["goals"]["no_loss"])),
        ("nothing duplicated (goal)", str(result["goals"]["no_duplicates"])),
    ]
    for label, value in rows:
        print(f"{label:<32} {value}")


if __name__ == "__main__":
    sys.exit(main())
