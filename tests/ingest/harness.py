"""Tools for ingest's fault tests: a deterministic workload, a publisher that never gives up on a
message (like the edge outbox), ``qorgau ingest`` as a real subprocess, and exact counts."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from qorgau.localservices import free_port
from qorgau.worker_process import spawn_ingest_worker
from store.connection import DatabaseUnavailableError, connect, connect_async
from store.registry import upsert_device, upsert_enterprise, upsert_sensor
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import Channel, ReadingsMessage, encode_readings, readings_topic

ENTERPRISE = "fault-ent"
CHANNELS = (  # sensor suffix, quantity, unit, substance, lo, hi
    ("noise", "noise_laeq", "dB(A)", None, 60.0, 110.0),
    ("hav", "vib_hav", "m/s2", None, 0.5, 8.0),
    ("co", "gas", "mg/m3", "CO", 0.0, 40.0),
    ("dust", "dust", "mg/m3", "silica", 0.1, 3.0),
)


@dataclass
class Workload:
    """``devices`` × ``messages`` messages of len(CHANNELS) × ``values`` readings, every reading
    at its own (sensor, time), so a duplicate is visible as a repeated key."""

    prefix: str
    devices: int = 10
    messages: int = 40
    values: int = 50
    period_s: float = 1.0
    first_seq: int = 0
    start: datetime = field(
        default_factory=lambda: (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    )

    @property
    def readings(self) -> int:
        return self.devices * self.messages * len(CHANNELS) * self.values

    def device(self, d: int) -> str:
        return f"fault-dev-{d:03d}"

    def payloads(self) -> list[tuple[str, bytes]]:
        out = []
        span = timedelta(seconds=self.values * self.period_s)
        for seq in range(self.first_seq, self.first_seq + self.messages):  # interleaved by device
            for d in range(self.devices):
                code = self.device(d)
                t0 = self.start + seq * span
                channels = [
                    Channel(
                        sensor=f"{code}.{suffix}",
                        quantity=quantity,
                        unit=unit,
                        substance=substance,
                        t0=t0,
                        period_s=self.period_s,
                        values=[
                            lo + (hi - lo) * ((i * 7919 + seq * 104729 + d) % 1000) / 1000
                            for i in range(self.values)
                        ],
                    )
                    for suffix, quantity, unit, substance, lo, hi in CHANNELS
                ]
                message = ReadingsMessage(device=code, seq=seq, channels=channels)
                topic = readings_topic(self.prefix, ENTERPRISE, code)
                out.append((topic, encode_readings(message)))
        return out

    async def register(self, url: str, schema: str) -> None:
        conn = await connect_async(url, schema, autocommit=True)
        async with conn:
            enterprise = await upsert_enterprise(conn, ENTERPRISE, "Fault test")
            for d in range(self.devices):
                device_id = await upsert_device(conn, enterprise, self.device(d))
                for suffix, quantity, unit, substance, _, _ in CHANNELS:
                    await upsert_sensor(
                        conn,
                        device_id,
                        f"{self.device(d)}.{suffix}",
                        quantity=quantity,
                        unit=unit,
                        substance=substance,
                    )


NO_MATCHING_SUBSCRIBERS = 0x10


class ReliablePublisher(threading.Thread):
    """Publishes every payload with QoS 1 until the broker has acknowledged each one, across
    disconnects (re-publishing what was in flight: duplicates are ingest's job), as the edge
    outbox must: a PUBACK with reason 0x10 "No matching subscribers" means the broker dropped
    the message (Mosquitto 2.0 after a restart, before ingest has subscribed again), so it is
    published again later."""

    def __init__(
        self,
        url: str,
        payloads: list[tuple[str, bytes]],
        *,
        rate_per_s: float | None = None,
        window: int = 100,
    ) -> None:
        super().__init__(daemon=True, name="reliable-publisher")
        self.endpoint = MqttEndpoint.parse(url)
        self.payloads = payloads
        self.rate_per_s = rate_per_s
        self.window = window
        self._acked_mids: dict[int, int] = {}  # mid → PUBACK reason code
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._reconnected = False
        self._halt = threading.Event()
        self.done = threading.Event()
        self.acknowledged = 0
        self.published = 0
        self.reconnects = 0
        self.unrouted = 0

    def _on_connect(self, *_: object) -> None:
        self._connected.set()

    def _on_disconnect(self, *_: object) -> None:
        with self._lock:
            self._reconnected = True
            self.reconnects += 1
        self._connected.clear()

    def _on_publish(self, _c: object, _u: object, mid: int, reason: object, *_: object) -> None:
        with self._lock:
            self._acked_mids[mid] = int(getattr(reason, "value", 0))

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        client.max_inflight_messages_set(self.window)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.reconnect_delay_set(0.1, 1.0)  # type: ignore[arg-type]  # paho takes float seconds
        client.connect_async(self.endpoint.host, self.endpoint.port)
        client.loop_start()
        todo = collections.deque(range(len(self.payloads)))
        pending: dict[int, int] = {}  # mid → payload index
        started = time.monotonic()
        try:
            while not self._halt.is_set():
                with self._lock:
                    for mid in self._acked_mids.keys() & pending.keys():
                        index = pending.pop(mid)
                        if self._acked_mids[mid] == NO_MATCHING_SUBSCRIBERS:
                            self.unrouted += 1
                            todo.append(index)
                        else:
                            self.acknowledged += 1
                    self._acked_mids.clear()
                    if self._reconnected:
                        todo.extendleft(pending.values())
                        pending.clear()
                        self._reconnected = False
                if not todo and not pending:
                    self.done.set()
                    return
                if not self._connected.wait(0.05) or not todo or len(pending) >= self.window:
                    time.sleep(0.002)
                    continue
                if self.rate_per_s is not None:
                    due = started + self.published / self.rate_per_s
                    if time.monotonic() < due:
                        time.sleep(max(0.0, min(0.01, due - time.monotonic())))
                        continue
                if not publish_next(client, self.payloads, todo, pending):
                    continue
                self.published += 1
        finally:
            client.loop_stop()
            with contextlib.suppress(Exception):
                client.disconnect()


def publish_next(
    client: paho.Client,
    payloads: list[tuple[str, bytes]],
    todo: collections.deque[int],
    pending: dict[int, int],
) -> bool:
    """Publish the first payload of ``todo`` with QoS 1 and note its packet id in ``pending``;
    False (and the payload back in front of ``todo``) when the client could not send it."""
    index = todo.popleft()
    topic, payload = payloads[index]
    info = client.publish(topic, payload, qos=1)
    if info.rc != paho.MQTT_ERR_SUCCESS:
        todo.appendleft(index)
        time.sleep(0.01)
        return False
    pending[info.mid] = index
    return True


@dataclass
class WorkerProcess:
    """``qorgau ingest`` in a subprocess, so that SIGKILL is a real crash."""

    database_url: str
    schema: str
    mqtt_url: str
    prefix: str
    client_id: str
    log_path: Path
    metrics_port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)  # further settings, over the ones above
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.process = spawn_ingest_worker(
            database_url=self.database_url,
            schema=self.schema,
            mqtt_url=self.mqtt_url,
            prefix=self.prefix,
            client_id=self.client_id,
            metrics_port=self.metrics_port,
            log_path=self.log_path,
            env={"QORGAU_INGEST_RETRY_MAX_S": "1", **self.env},
        )
        return self

    def health(self) -> dict[str, object] | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/health", timeout=2
            ) as response:
                body: dict[str, object] = json.loads(response.read())
                return body
        except OSError as exc:
            # 503 with a body is still an answer.
            if hasattr(exc, "read"):
                with contextlib.suppress(Exception):
                    return dict(json.loads(exc.read()))
            return None

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"worker exited: {self.log_path.read_text()[-2000:]}")
            health = self.health()
            if health is not None and health.get("broker_connected"):
                return
            time.sleep(0.1)
        raise AssertionError(f"worker not ready: {self.log_path.read_text()[-2000:]}")

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2
        ) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return 0.0

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout_s: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def stored(url: str, schema: str) -> tuple[int, int]:
    """(readings, distinct (sensor, time) keys); (-1, -1) while the database is away."""
    try:
        with connect(url, schema, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT (sensor_id, time)) FROM readings"
            ).fetchone()
    except (DatabaseUnavailableError, psycopg.OperationalError):
        return (-1, -1)
    assert row is not None
    return int(row[0]), int(row[1])


def stored_rows(url: str, schema: str) -> list[tuple[int, int, float]]:
    with connect(url, schema, autocommit=True) as conn:
        return [
            (int(s), int(t), float(v))
            for s, t, v in conn.execute(
                "SELECT sensor_id, (extract(epoch FROM time) * 1000000)::bigint, value "
                "FROM readings ORDER BY 1, 2, 3"
            )
        ]


COMMIT_QUERY = b"Q\x00\x00\x00\x0bCOMMIT\x00"  # the protocol message Query("COMMIT")


class CommitCutter:
    """A TCP proxy in front of PostgreSQL that, once armed, lets one COMMIT through and then
    cuts the connection before the answer comes back: a commit whose outcome the client cannot
    know, as when the network fails at the worst moment."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.armed = False
        self.cut = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CommitCutter:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        cutting = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                server_w.write(data)
                await server_w.drain()
                if self.armed and COMMIT_QUERY in data:
                    self.armed = False
                    self.cut += 1
                    cutting.set()
                    await asyncio.sleep(0.5)  # the server commits; its answer is not passed on
                    break

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if cutting.is_set():
                    continue
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (client_w, server_w):
            writer.close()
