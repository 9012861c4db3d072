"""Edge agent benchmark: outbox write rate, replay rate after an outage, bytes per reading.

    .venv/bin/python -m bench.edge [--json] [--messages N] [--replay N]

Messages are what the agent writes for an 8-channel device at 1 Hz with a 1 s batch interval
(8 readings each), with simulated values, so compression sees realistic data. The replay is
measured against a real local Mosquitto with a subscriber attached, from the moment the agent
connects until the broker has acknowledged the whole backlog. Figures only; nothing passes or
fails on them.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.agent import EdgeAgent, build_message
from edge.outbox import DEFAULT_MAX_BYTES, WAL_LIMIT_BYTES, Outbox, Synchronous
from edge.settings import EdgeSettings
from firmware_sim.device import SimulatedDevice
from firmware_sim.instruments import (
    DustMonitor,
    GasSensor,
    HandArmVibration,
    SoundLevelMeter,
    WholeBodyVibration,
)
from qorgau.localservices import LocalMosquitto, scratch_dir
from vocabulary.driver import SampleBlock
from vocabulary.protocol import encode_readings

CHANNELS = 8
START = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def eight_channels(code: str, start: datetime) -> SimulatedDevice:
    return SimulatedDevice(
        code,
        [
            SoundLevelMeter(impulse_rate_per_h=4.0),
            GasSensor(substance="CO", baseline=3.0, leak_rate_per_h=0.5, leak_peak=20.0),
            GasSensor(substance="H2S", baseline=0.3, noise=0.1),
            GasSensor(substance="NO2", baseline=0.1, noise=0.05),
            DustMonitor(substance="silica_10_70", work_gm=2.0),
            HandArmVibration(a_hv=8.0),
            WholeBodyVibration(axes=("z",)),
        ],
        start=start,
    )


def one_second_batches(count: int) -> list[list[SampleBlock]]:
    device = eight_channels("bench-dev-01", START)
    return [device.read(START + timedelta(seconds=s)) for s in range(1, count + 1)]


def bench_writes(batches: list[list[SampleBlock]], sync: Synchronous) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="qorgau-bench-outbox-"))
    try:
        with Outbox(folder / "d.sqlite3", synchronous=sync) as box:
            started = time.perf_counter()
            for i, blocks in enumerate(batches):
                sent_at = START + timedelta(seconds=i + 1)
                box.append(
                    lambda seq, b=blocks, t=sent_at: encode_readings(  # type: ignore[misc]
                        build_message("bench-dev-01", seq, b, t)
                    ),
                    readings=CHANNELS,
                )
            elapsed = time.perf_counter() - started
            used = box.used_bytes()
        return {
            "messages_per_s": len(batches) / elapsed,
            "readings_per_s": len(batches) * CHANNELS / elapsed,
            "bytes_per_reading": used / (len(batches) * CHANNELS),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Counter:
    """A subscriber that counts what the broker delivers (a stand-in for ingest)."""

    def __init__(self, url: str, topic: str) -> None:
        self.count = 0
        self.ready = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-counter", protocol=paho.MQTTv5
        )
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = self._on_message
        host, port = url.removeprefix("mqtt://").split(":")
        self.client.connect(host, int(port))
        self.client.loop_start()
        self.ready.wait(10)

    def _on_message(self, *args: Any) -> None:
        self.count += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def bench_replay(batches: list[list[SampleBlock]], window: int) -> dict[str, float]:
    folder = scratch_dir("qorgau-bench-mqtt-")
    broker = LocalMosquitto(folder / "broker")
    broker.start()
    counter = Counter(broker.url, "bench/v1/+/+/readings")
    try:
        replay_device = _ReplayDriver(batches)
        agent = EdgeAgent(
            EdgeSettings(
                mqtt_url=broker.url,
                topic_prefix="bench",
                enterprise="bench",
                edge_outbox_dir=folder / "outbox",
                edge_max_inflight=window,
                edge_outbox_sync="full",
            ),
            replay_device,
        )
        # The outage: everything collected while the broker is unreachable.
        for i in range(len(batches)):
            agent.collect(START + timedelta(seconds=i + 1))
        backlog = agent.outbox.pending()
        started = time.perf_counter()
        agent.start()
        ok = agent.flush(600)
        elapsed = time.perf_counter() - started
        agent.stop(5)
        deadline = time.monotonic() + 30
        while counter.count < backlog and time.monotonic() < deadline:
            time.sleep(0.01)
        return {
            "messages": backlog,
            "complete": float(ok),
            "messages_per_s": backlog / elapsed,
            "readings_per_s": backlog * CHANNELS / elapsed,
            "delivered_to_subscriber": counter.count,
        }
    finally:
        counter.close()
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


class _ReplayDriver:
    """Hands the pre-generated batches over one per ``read``."""

    def __init__(self, batches: list[list[SampleBlock]]) -> None:
        self._batches = iter(batches)
        self._channels = [b.spec for b in batches[0]]

    @property
    def device(self) -> str:
        return "bench-dev-01"

    def channels(self) -> list[Any]:
        return list(self._channels)

    def read(self, until: datetime) -> list[SampleBlock]:
        return next(self._batches, [])


def timed(what: str, run: Callable[[], dict[str, float]]) -> dict[str, float]:
    print(f"  {what} …", file=sys.stderr, flush=True)
    return run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--messages", type=int, default=7200, help="messages written [7200 = 2 h]")
    parser.add_argument("--replay", type=int, default=10000, help="backlog replayed [10000]")
    parser.add_argument("--window", type=int, default=100, help="in-flight window [100]")
    args = parser.parse_args(argv)

    batches = one_second_batches(max(args.messages, args.replay))
    full = timed(
        "outbox writes, synchronous=full", lambda: bench_writes(batches[: args.messages], "full")
    )
    normal = timed(
        "outbox writes, synchronous=normal",
        lambda: bench_writes(batches[: args.messages], "normal"),
    )
    replay = timed("replay to Mosquitto", lambda: bench_replay(batches[: args.replay], args.window))
    bpr = full["bytes_per_reading"]
    hours = (DEFAULT_MAX_BYTES - WAL_LIMIT_BYTES) / (bpr * CHANNELS * 3600)
    result = {
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "device": "8 channels at 1 Hz, one message per second (8 readings)",
        "outbox_write_full": {k: round(v, 1) for k, v in full.items()},
        "outbox_write_normal": {k: round(v, 1) for k, v in normal.items()},
        "replay_after_outage": {k: round(v, 1) for k, v in replay.items()},
        "bytes_per_reading": round(bpr, 2),
        "default_cap_bytes": DEFAULT_MAX_BYTES,
        "hours_under_default_cap_8ch_1hz": round(hours, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"device: {result['device']}")
    print(
        f"outbox writes (synchronous=full):   {full['messages_per_s']:8.0f} messages/s  "
        f"{full['readings_per_s']:9.0f} readings/s"
    )
    print(
        f"outbox writes (synchronous=normal): {normal['messages_per_s']:8.0f} messages/s  "
        f"{normal['readings_per_s']:9.0f} readings/s"
    )
    print(
        f"replay of {replay['messages']:.0f} messages after an outage: "
        f"{replay['messages_per_s']:.0f} messages/s ({replay['readings_per_s']:.0f} readings/s)"
    )
    print(f"bytes on disk per reading: {bpr:.1f}")
    print(
        f"default cap {DEFAULT_MAX_BYTES / 2**20:.0f} MiB holds {hours:.0f} h "
        f"({hours / 24:.1f} days) of 8 channels at 1 Hz"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
