"""Benchmark of early warning: reading published → alert received, on MQTT and on SSE.

Starts a private PostgreSQL and Mosquitto (``qorgau.localservices``), then as separate
processes two ``qorgau ingest`` workers, ``qorgau alerts`` and ``qorgau api``. It measures what
the ingest workers can commit (a short flood), then keeps simulated devices publishing at about
half that rate in the background while it injects threshold crossings: each injection is one
message carrying an H2S sample above the ceiling from a sensor that has not alerted yet, so it
must raise exactly one ``ceiling`` alert. Latency is from just before the publish to the
alert's arrival at a subscriber of the alert topic and at a client of
``GET /api/v1/alerts/stream``.

Notifications: a local SMTP server (aiosmtpd) stands in for the mail relay; a person at level 0
is told of every ceiling alert by email and a person at level 1 when it is still unacknowledged
``--escalate-after`` seconds later. ``email_p99_ms`` is from the publish to the mail accepted by
the SMTP server, ``escalation_late_p99_s`` how long after its deadline an escalation mail was
accepted, ``notifications_lost`` the alerts whose mail never arrived plus notifications failed
or still pending long after they were due. ``--smtp-outage S`` takes the mail server down for S
seconds mid-run (mail then waits in the outbox; the latency figures include the wait).
Prints figures; asserts nothing; cleans up.

    python bench/alerts.py [--seconds 30] [--json] [--devices 40] [--workers 2]

Then, unless ``--small-devices 0``, the same injections once more over the load devices send
(``small_message_*`` keys): ``--small-devices`` devices of 8 channels each, one message a second
of one value per channel (8 readings per message, the edge agent's default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

# This file is named like nothing it imports, but keep its folder off the path all the same.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))  # for bench.stack

import aiomqtt  # noqa: E402
import httpx  # noqa: E402
import orjson  # noqa: E402
import psycopg  # noqa: E402

from bench.stack import api_token, service_env, spawn, stop_all, wait_ready  # noqa: E402
from qorgau.localservices import LocalMosquitto, LocalPostgres, free_port, scratch_dir  # noqa: E402
from store.migrate import upgrade  # noqa: E402
from tests.notify_support import SmtpSink  # noqa: E402
from vocabulary.mqtt_url import MqttEndpoint  # noqa: E402
from vocabulary.protocol import readings_topic  # noqa: E402
from vocabulary.protocol.alerts import alerts_subscription  # noqa: E402

ENT = "bench"
SCHEMA = "qorgau"
PREFIX = "qorgau"
CHANNELS = (
    ("noise", "noise_laeq", "dB(A)", None, 70.0),
    ("co", "gas", "mg/m3", "CO", 2.0),
    ("h2s", "gas", "mg/m3", "H2S", 0.5),
    ("dust", "dust", "mg/m3", "silica_10_70", 0.3),
    ("vib", "vib_hav", "m/s2", None, 0.8),
)


def register(url: str, devices: int, probes: int) -> None:
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={SCHEMA}") as conn:
        ent = conn.execute(
            "INSERT INTO enterprises (code, name) VALUES (%s, 'Bench') RETURNING id", [ENT]
        ).fetchone()[0]  # type: ignore[index]
        rows = []
        for d in range(devices):
            dev = conn.execute(
                "INSERT INTO devices (enterprise_id, code) VALUES (%s, %s) RETURNING id",
                [ent, f"bg-{d}"],
            ).fetchone()[0]  # type: ignore[index]
            for name, quantity, unit, substance, _ in CHANNELS:
                rows.append((dev, f"bg-{d}.{name}", quantity, unit, substance))
        probe = conn.execute(
            "INSERT INTO devices (enterprise_id, code) VALUES (%s, 'probe') RETURNING id", [ent]
        ).fetchone()[0]  # type: ignore[index]
        rows += [(probe, f"probe.h2s-{i}", "gas", "mg/m3", "H2S") for i in range(probes)]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO sensors (device_id, code, quantity, unit, substance) "
                "VALUES (%s, %s, %s, %s, %s)",
                rows,
            )


def register_people(url: str, escalate_after_s: int) -> None:
    """A shift supervisor told of every ceiling alert, a safety officer when it is still
    unacknowledged ``escalate_after_s`` later (no reminders)."""
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={SCHEMA}") as conn:
        for level, address in enumerate((SUPERVISOR, OFFICER)):
            person = conn.execute(
                "INSERT INTO alert_recipients (enterprise, name, language) "
                "VALUES (%s, %s, 'en') RETURNING id",
                [ENT, address],
            ).fetchone()[0]  # type: ignore[index]
            conn.execute(
                "INSERT INTO alert_recipient_channels (recipient_id, channel, address) "
                "VALUES (%s, 'email', %s)",
                [person, address],
            )
            conn.execute(
                "INSERT INTO alert_routes (enterprise, recipient_id, level, min_severity, kinds) "
                "VALUES (%s, %s, %s, 'critical', ARRAY['ceiling'])",
                [ENT, person, level],
            )
        conn.execute(
            "INSERT INTO alert_escalation_policies (enterprise, escalate_after_s, max_reminders) "
            "VALUES (%s, %s, 0)",
            [ENT, escalate_after_s],
        )


SUPERVISOR = "supervisor@bench.kz"
OFFICER = "officer@bench.kz"
_PROBE = re.compile(r"probe\.h2s-[0-9]+")


def notification_figures(
    url: str, smtp: SmtpSink, sent_wall: dict[str, float], alerted: set[str]
) -> dict[str, Any]:
    """Email latency, escalation lateness and lost notifications (see the module's doc)."""
    arrived: dict[str, float] = {}
    for mail in smtp.to(SUPERVISOR):
        found = _PROBE.search(mail.text)
        if found and found.group() not in arrived:
            arrived[found.group()] = mail.received_at
    latency = [1000 * (arrived[s] - sent_wall[s]) for s in sent_wall if s in arrived]
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={SCHEMA}") as conn:
        late = [
            float(r[0])
            for r in conn.execute(
                "SELECT extract(epoch FROM sent_at - due_at) FROM alert_notifications "
                "WHERE event = 'escalation' AND state = 'sent'"
            ).fetchall()
        ]
        stuck = conn.execute(
            "SELECT count(*) FROM alert_notifications WHERE state = 'failed' "
            "OR (state = 'pending' AND due_at < now() - interval '30 seconds')"
        ).fetchone()[0]  # type: ignore[index]
        attempts = conn.execute("SELECT count(*) FROM alert_notification_attempts").fetchone()[0]  # type: ignore[index]
    never = len({s for s in alerted if s in sent_wall} - set(arrived))

    def pct(values: list[float], q: float, digits: int) -> float | None:
        return round(float(np.percentile(values, q)), digits) if values else None

    return {
        "emails": len(latency),
        "email_p50_ms": pct(latency, 50, 1),
        "email_p99_ms": pct(latency, 99, 1),
        "escalations": len(late),
        "escalation_late_p50_s": pct(late, 50, 2),
        "escalation_late_p99_s": pct(late, 99, 2),
        "notification_attempts": int(attempts),
        "notifications_lost": never + int(stuck),
    }


def _message(device: str, seq: int, t0: float, samples: int, rng: np.random.Generator) -> bytes:
    start = datetime.fromtimestamp(t0, UTC).isoformat()
    channels = [
        {
            "sensor": f"{device}.{name}",
            "quantity": quantity,
            "unit": unit,
            **({"substance": substance} if substance else {}),
            "t0": start,
            "period_s": 1.0 / samples,
            "values": np.round(base * (1 + 0.05 * rng.standard_normal(samples)), 3).tolist(),
        }
        for name, quantity, unit, substance, base in CHANNELS
    ]
    return orjson.dumps({"v": 1, "device": device, "seq": seq, "channels": channels})


def publisher(
    mqtt_url: str,
    devices: int,
    samples: int,
    rate_hz: float | None,
    seconds: float,
    seq_base: int,
    stop: Any,
    sent: Any,
    backfill_from: float | None = None,
) -> None:
    """Background devices (a separate process): each sends one message per 1/rate_hz holding
    the last second of ``samples`` per channel; ``rate_hz=None`` floods as fast as the broker
    takes them, with sample times from ``backfill_from`` on (one second per message, as an
    outbox catching up would)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    endpoint = MqttEndpoint.parse(mqtt_url)
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-pub-{os.getpid()}",
        protocol=paho.MQTTv5,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    rng = np.random.default_rng(os.getpid())
    seq = seq_base
    started = time.monotonic()
    tick = 0
    count = 0
    while not stop.is_set() and time.monotonic() - started < seconds:
        now = time.time() if backfill_from is None else backfill_from + tick
        for d in range(devices):
            if rate_hz is not None:
                # Devices are not synchronised: each sends at its own phase of the period.
                delay = started + (tick + d / devices) / rate_hz - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                now = time.time()
            device = f"bg-{d}"
            client.publish(
                readings_topic(PREFIX, ENT, device), _message(device, seq, now, samples, rng), qos=1
            )
            count += 1
        seq += 1
        tick += 1
        if rate_hz is None and len(client._out_messages) > 2000:
            time.sleep(0.01)  # flooding: don't queue unboundedly in the client
    while client._out_messages:
        time.sleep(0.01)
    sent.value = count
    client.loop_stop()
    client.disconnect()


# The realistic background: 8 channels of one value a second (the edge agent's default message).
SMALL_CHANNELS = (
    *CHANNELS,
    ("lamax", "noise_lamax", "dB(A)", None, 85.0),
    ("ch4", "gas", "%LEL", "CH4", 3.0),
    ("wbv", "vib_wbv_z", "m/s2", None, 0.3),
)


def register_small(url: str, devices: int) -> None:
    """``sm-N`` devices with the 8 channels of ``SMALL_CHANNELS``."""
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={SCHEMA}") as conn:
        ent = conn.execute("SELECT id FROM enterprises WHERE code = %s", [ENT]).fetchone()[0]  # type: ignore[index]
        rows = []
        for d in range(devices):
            dev = conn.execute(
                "INSERT INTO devices (enterprise_id, code) VALUES (%s, %s) RETURNING id",
                [ent, f"sm-{d}"],
            ).fetchone()[0]  # type: ignore[index]
            rows += [(dev, f"sm-{d}.{c[0]}", c[1], c[2], c[3]) for c in SMALL_CHANNELS]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO sensors (device_id, code, quantity, unit, substance) "
                "VALUES (%s, %s, %s, %s, %s)",
                rows,
            )


def small_publisher(mqtt_url: str, devices: int, seconds: float, stop: Any, sent: Any) -> None:
    """``devices`` devices, each one message a second (own phase) of 8 channels × 1 value, sent
    with bench/ingest.py's raw publisher (a client library would be the limit)."""
    from bench.ingest import RawPublisher

    link = RawPublisher(MqttEndpoint.parse(mqtt_url).port, f"bench-small-{os.getpid()}")
    rng = np.random.default_rng(os.getpid())
    started = time.monotonic()
    count, tick = 0, 0
    while not stop.is_set() and time.monotonic() - started < seconds:
        for d in range(devices):
            due = started + tick + d / devices
            while (delay := due - time.monotonic()) > 0:  # reading acks until it is due
                link.read_acks(wait_s=delay)
            while link.room() <= 0:
                link.read_acks(wait_s=0.01)
            device = f"sm-{d}"
            channels = [
                {
                    "sensor": f"{device}.{name}",
                    "quantity": quantity,
                    "unit": unit,
                    **({"substance": substance} if substance else {}),
                    "t0": datetime.fromtimestamp(time.time(), UTC).isoformat(),
                    "period_s": 1.0,
                    "values": [round(base * (1 + 0.05 * float(rng.standard_normal())), 3)],
                }
                for name, quantity, unit, substance, base in SMALL_CHANNELS
            ]
            payload = orjson.dumps({"v": 1, "device": device, "seq": tick, "channels": channels})
            link.send([link.packet(readings_topic(PREFIX, ENT, device), payload)])
            count += 1
        tick += 1
    link.drain(timeout_s=30)
    link.close()
    sent.value = count


def readings(url: str) -> int:
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={SCHEMA}") as conn:
        return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])  # type: ignore[index]


def engine_figures(metrics_url: str) -> dict[str, float]:
    """Mean evaluation time and messages per evaluation, from the engine's own metrics."""
    values: dict[str, float] = {}
    for line in httpx.get(metrics_url).text.splitlines():
        if line.startswith("qorgau_alerts_") and " " in line and "{" not in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    count = values.get("qorgau_alerts_evaluate_seconds_count", 0.0) or 1.0
    return {
        "engine_evaluate_mean_ms": round(
            1000 * values.get("qorgau_alerts_evaluate_seconds_sum", 0.0) / count, 2
        ),
        "engine_messages_per_evaluation": round(
            values.get("qorgau_alerts_batch_messages_sum", 0.0)
            / max(values.get("qorgau_alerts_batch_messages_count", 0.0), 1.0),
            2,
        ),
    }


def measure_capacity(mqtt_url: str, pg: str, devices: int, seconds: float) -> float:
    """Readings per second the ingest workers commit while flooded."""
    ctx = mp.get_context("spawn")
    stop, sent = ctx.Event(), ctx.Value("q", 0)
    before = readings(pg)
    started = time.monotonic()
    proc = ctx.Process(
        target=publisher,
        args=(mqtt_url, devices, 50, None, seconds, 1_000_000, stop, sent, time.time() - 7200),
    )
    proc.start()
    proc.join()
    expected = sent.value * len(CHANNELS) * 50
    last, same_since = -1, time.monotonic()
    while True:
        now_count = readings(pg) - before
        if now_count >= expected:
            break
        if now_count != last:
            last, same_since = now_count, time.monotonic()
        elif time.monotonic() - same_since > 10:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    return (readings(pg) - before) / elapsed


async def probe(
    mqtt_url: str,
    api: str,
    seconds: float,
    probes: int,
    interval_s: float,
    token: str,
    sent_wall: dict[str, float],
    first: int = 0,
) -> dict[str, Any]:
    endpoint = MqttEndpoint.parse(mqtt_url)
    sent: dict[str, float] = {}
    mqtt_at: dict[str, float] = {}
    sse_at: dict[str, float] = {}
    seen = _first_ceiling

    async def read_sse(http: httpx.AsyncClient) -> None:
        async with http.stream("GET", f"{api}/api/v1/alerts/stream?kind=ceiling") as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    seen(sse_at, json.loads(line[6:]))

    async with (
        aiomqtt.Client(endpoint.host, endpoint.port, identifier="bench-listen") as listener,
        aiomqtt.Client(endpoint.host, endpoint.port, identifier="bench-probe") as injector,
        httpx.AsyncClient(timeout=None, headers={"Authorization": f"Bearer {token}"}) as http,
    ):
        await listener.subscribe(alerts_subscription(PREFIX), qos=1)

        async def read_mqtt() -> None:
            async for message in listener.messages:
                seen(mqtt_at, orjson.loads(message.payload))

        tasks = [asyncio.create_task(read_mqtt()), asyncio.create_task(read_sse(http))]
        await asyncio.sleep(1.0)
        warmup = f"probe.h2s-{first}"  # one alert end to end before measuring (not counted)
        rng = np.random.default_rng(7)
        seq = first
        deadline = time.monotonic() + seconds
        while seq < probes and time.monotonic() < deadline:
            sensor = f"probe.h2s-{seq}"
            t = time.time()
            payload = _probe_payload(sensor, seq, t)
            sent[sensor] = time.perf_counter()
            sent_wall[sensor] = time.time()
            await injector.publish(readings_topic(PREFIX, ENT, "probe"), payload, qos=1)
            seq += 1
            if sensor == warmup:
                await _arrived_both(warmup, mqtt_at, sse_at)
                del sent[warmup], sent_wall[warmup]
                deadline = time.monotonic() + seconds
            await asyncio.sleep(interval_s * float(rng.uniform(0.5, 1.5)))
        await asyncio.sleep(5.0)  # stragglers
        for task in tasks:
            task.cancel()
    return _latencies(sent, mqtt_at, sse_at)


def _first_ceiling(store: dict[str, float], data: dict[str, Any]) -> None:
    """Note when the first ceiling alert of a probe sensor arrived."""
    sensor = data.get("sensor") or ""
    if (
        data.get("kind") == "ceiling"
        and data.get("transition") == "opened"
        and sensor.startswith("probe.")
        and sensor not in store
    ):
        store[sensor] = time.perf_counter()


def _probe_payload(sensor: str, seq: int, t: float) -> bytes:
    """One H2S reading far above its ceiling, as a readings message of the probe device."""
    return orjson.dumps(
        {
            "v": 1,
            "device": "probe",
            "seq": seq,
            "channels": [
                {
                    "sensor": sensor,
                    "quantity": "gas",
                    "unit": "mg/m3",
                    "substance": "H2S",
                    "t0": datetime.fromtimestamp(t, UTC).isoformat(),
                    "period_s": 1.0,
                    "values": [30.0],
                }
            ],
        }
    )


async def _arrived_both(sensor: str, *arrivals: dict[str, float]) -> None:
    """Wait (10 s at most) until ``sensor``'s alert has arrived on every path."""
    for _ in range(200):
        if all(sensor in arrived for arrived in arrivals):
            return
        await asyncio.sleep(0.05)


def _latencies(
    sent: dict[str, float], mqtt_at: dict[str, float], sse_at: dict[str, float]
) -> dict[str, Any]:
    """Percentiles of the alert latency (ms) on MQTT and on the SSE stream, and what missed."""

    def stats(arrived: dict[str, float]) -> tuple[list[float], int]:
        lat = [1000 * (arrived[s] - sent[s]) for s in sent if s in arrived]
        return lat, len(sent) - len(lat)

    mqtt_lat, missed = stats(mqtt_at)
    sse_lat, sse_missed = stats(sse_at)

    def pct(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)), 1) if values else None

    return {
        "injected": len(sent),
        "p50_ms": pct(mqtt_lat, 50),
        "p95_ms": pct(mqtt_lat, 95),
        "p99_ms": pct(mqtt_lat, 99),
        "max_ms": pct(mqtt_lat, 100),
        "sse_p50_ms": pct(sse_lat, 50),
        "sse_p95_ms": pct(sse_lat, 95),
        "sse_p99_ms": pct(sse_lat, 99),
        "missed": missed,
        "sse_missed": sse_missed,
        "alerted": sorted(mqtt_at),
    }


def wait_delivered(url: str, limit_s: float) -> None:
    """Until no notification that is due waits in the outbox, or ``limit_s`` passes."""
    deadline = time.monotonic() + limit_s
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={SCHEMA}") as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM alert_notifications WHERE state = 'pending' "
                "AND due_at < now()"
            ).fetchone()[0]  # type: ignore[index]
            if not waiting:
                return
            time.sleep(0.5)


def outage_of(smtp: SmtpSink, seconds: float) -> None:
    smtp.stop()
    time.sleep(seconds)
    smtp.start()


def small_message_phase(
    mqtt_url: str, pg: str, api: str, args: argparse.Namespace, first_probe: int, token: str
) -> dict[str, Any]:
    """The injections again while ``args.small_devices`` devices each send one 8-reading
    message a second."""
    ctx = mp.get_context("spawn")
    stop, sent = ctx.Event(), ctx.Value("q", 0)
    background = ctx.Process(
        target=small_publisher, args=(mqtt_url, args.small_devices, args.seconds + 30, stop, sent)
    )
    before = readings(pg)
    started = time.monotonic()
    background.start()
    time.sleep(3.0)  # the load is steady before the first injection
    figures = asyncio.run(
        probe(mqtt_url, api, args.seconds, 2 * first_probe, args.interval, token, {}, first_probe)
    )
    committed = readings(pg) - before
    stop.set()
    background.join(30)
    return {
        "small_message_p50_ms": figures["p50_ms"],
        "small_message_p95_ms": figures["p95_ms"],
        "small_message_p99_ms": figures["p99_ms"],
        "small_message_sse_p99_ms": figures["sse_p99_ms"],
        "small_message_missed": figures["missed"],
        "small_message_injected": figures["injected"],
        "small_message_background_messages_per_s": round(
            committed / 8 / (time.monotonic() - started)
        ),
        "small_message_readings_per_message": len(SMALL_CHANNELS),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30.0, help="injection phase length")
    parser.add_argument("--devices", type=int, default=40, help="background devices")
    parser.add_argument("--workers", type=int, default=2, help="ingest workers")
    parser.add_argument("--interval", type=float, default=0.2, help="mean s between injections")
    parser.add_argument("--load", type=float, default=0.5, help="fraction of ingest capacity")
    parser.add_argument(
        "--ingest-nice",
        type=int,
        default=0,
        help="CPU niceness of the ingest workers (0: the same priority as the engine)",
    )
    parser.add_argument(
        "--escalate-after", type=int, default=10, help="s unacknowledged before escalating"
    )
    parser.add_argument(
        "--smtp-outage", type=float, default=0.0, help="s the mail server is down mid-run"
    )
    parser.add_argument(
        "--small-devices",
        type=int,
        default=1000,
        help="devices of the realistic phase, one 8-reading message a second each (0: skip it)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder (printed)")
    args = parser.parse_args(argv)

    folder = scratch_dir("qorgau-bench-alerts-")
    pg = LocalPostgres(folder / "pg", durable=False)
    broker = LocalMosquitto(folder / "mqtt")
    processes: list[subprocess.Popen[bytes]] = []
    probes = int(args.seconds / args.interval * 2) + 10
    small_probes = probes if args.small_devices > 0 else 0
    result: dict[str, Any] = {}
    smtp = SmtpSink()
    try:
        pg.start()
        broker.start()
        smtp.start()
        upgrade(pg.url, SCHEMA, timescale="off")
        register(pg.url, args.devices, probes + small_probes)
        register_people(pg.url, args.escalate_after)
        register_small(pg.url, args.small_devices)
        token = api_token(pg.url, SCHEMA)
        api_port = free_port()
        env = {
            **service_env(pg.url, SCHEMA, broker.url, PREFIX),
            "QORGAU_API_PORT": str(api_port),
            "QORGAU_ALERTS_CLIENT_ID": "bench-alerts",
        }
        for w in range(args.workers):
            processes.append(
                spawn(
                    "ingest",
                    {**env, "QORGAU_INGEST_CLIENT_ID": f"bench-ingest-{w}"},
                    folder,
                    f"ingest-{w}",
                    nice=args.ingest_nice,
                )
            )
        time.sleep(2.0)  # workers subscribed
        # Ingest's capacity alone (the engine and the API start afterwards, so that they
        # don't see the flood); the background then runs at a fraction of it.
        capacity = measure_capacity(broker.url, pg.url, args.devices, 8.0)
        metrics_port = free_port()
        mail = {
            "QORGAU_NOTIFY_SMTP_HOST": "127.0.0.1",
            "QORGAU_NOTIFY_SMTP_PORT": str(smtp.port),
            "QORGAU_NOTIFY_SMTP_STARTTLS": "false",
            "QORGAU_NOTIFY_POLL_S": "0.5",
            "QORGAU_NOTIFY_RETRY_MAX_S": "10",
        }
        processes.append(
            spawn(
                "alerts",
                {**env, **mail, "QORGAU_ALERTS_METRICS_PORT": str(metrics_port)},
                folder,
                "alerts",
            )
        )
        api = f"http://127.0.0.1:{api_port}"
        processes.append(spawn("api", env, folder, "api"))
        wait_ready(processes[-1], lambda: httpx.get(f"{api}/health").status_code == 200, "API")
        wait_ready(
            processes[-2],
            lambda: (
                "qorgau_alerts_ready 1.0"
                in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
            ),
            "alert engine",
        )
        target = args.load * capacity  # readings per second
        samples = max(1, round(target / (args.devices * len(CHANNELS))))
        ctx = mp.get_context("spawn")
        stop, sent = ctx.Event(), ctx.Value("q", 0)
        background = ctx.Process(
            target=publisher,
            args=(broker.url, args.devices, samples, 1.0, args.seconds + 30, 2_000_000, stop, sent),
        )
        before = readings(pg.url)
        t_bg = time.monotonic()
        background.start()
        time.sleep(3.0)  # the load is steady before the first injection
        sent_wall: dict[str, float] = {}
        outage = None
        if args.smtp_outage > 0:
            outage = threading.Timer(args.seconds / 3, outage_of, (smtp, args.smtp_outage))
            outage.start()
        result = asyncio.run(
            probe(broker.url, api, args.seconds, probes, args.interval, token, sent_wall)
        )
        committed = readings(pg.url) - before
        if outage is not None:
            outage.join()
        # Every escalation of the injected alerts has come due, and had time to be sent; after
        # an outage, the outbox has drained (a delay, not a loss, up to 120 s).
        time.sleep(args.escalate_after + 5.0)
        wait_delivered(pg.url, 120.0)
        alerted = set(result.pop("alerted"))
        result |= notification_figures(pg.url, smtp, sent_wall, alerted)
        result |= engine_figures(f"http://127.0.0.1:{metrics_port}/metrics")
        stop.set()
        background.join(30)
        result |= {
            "seconds": args.seconds,
            "ingest_workers": args.workers,
            "ingest_nice": args.ingest_nice,
            "ingest_capacity_readings_per_s": round(capacity),
            "background_readings_per_s": round(committed / (time.monotonic() - t_bg)),
            "background_messages_per_s": args.devices,
        }
        if args.small_devices > 0:
            result |= small_message_phase(broker.url, pg.url, api, args, probes, token)
    finally:
        stop_all(processes, 20)
        smtp.stop()
        broker.stop()
        pg.stop()
        if args.keep:
            print(f"logs in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:34} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
