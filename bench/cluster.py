"""Ingest through a 3-node RabbitMQ cluster while the queue's leader is killed, against one
Mosquitto.

    python bench/cluster.py --json

Starts its own PostgreSQL and a 3-node RabbitMQ cluster on loopback (Debian's packages;
``qorgau.localservices``, ``qorgau.localrabbitmq``; removed afterwards). ``--workers`` ``qorgau
ingest`` processes (``QORGAU_BROKER=rabbitmq``) read the 3-replica quorum queue they declare;
``--publishers`` simulated devices publish ``--messages`` readings messages (QoS 1, MQTT 3.1.1 to
the MQTT plugin, each starting on its own node, moving to the next node and resending what was in
flight when theirs dies). Once ``--kill-at`` of the stream is acknowledged, the node leading the
queue is killed (SIGKILL). Then:

- ``published_acknowledged``: messages the brokers acknowledged (all of them, after resends);
- ``stored``, ``lost``, ``duplicated``: readings rows, readings of acknowledged messages
  missing, rows beyond one per (sensor, time) (goals: 0 and 0);
- ``redelivered_messages``: copies the workers received and skipped by (device, seq);
- ``out_of_order_commits``: messages committed before the previous ``seq`` of their device
  (competing consumers split a device's stream; ingest does not depend on its order);
- ``messages_per_s``: acknowledged messages over the time from the first publish to the last
  commit, through the failover;
- ``mosquitto_messages_per_s``: the same stream and workers on one Mosquitto (MQTT 5 shared
  subscription, Qorgau's shipped broker configuration), nothing killed.

Figures only, never pass/fail: the machine decides (and a shared machine lowers them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

# bench/edge.py and bench/api.py are named like packages this file imports: keep this folder
# off the import path when run as a script, and the repository's root on it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench.stack import machine  # noqa: E402
from qorgau.localrabbitmq import LocalRabbitCluster, rabbitmq_installed  # noqa: E402
from qorgau.localservices import LocalMosquitto, LocalPostgres, scratch_dir  # noqa: E402
from store.migrate import upgrade  # noqa: E402
from tests.ingest.cluster_harness import (  # noqa: E402
    FailoverPublisher,
    commits_out_of_order,
    exactly_once,
)
from tests.ingest.harness import CHANNELS, WorkerProcess, Workload  # noqa: E402


class WorkloadShape(NamedTuple):
    """How many devices, messages per device and readings per channel a run sends."""

    devices: int
    messages: int
    values: int


def say(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def run_stream(
    *,
    pg_url: str,
    folder: Path,
    workload_args: WorkloadShape,
    mqtt_urls: list[str],
    worker_env: list[dict[str, str]],
    kill: Any = None,
    ready: Any = None,
    kill_at: float = 0.25,
    publishers: int = 3,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """One run in a fresh schema: ``ready`` is called once the workers are, ``kill`` once
    ``kill_at`` of the stream is acknowledged (it returns what it killed)."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    upgrade(pg_url, schema, timescale="auto")
    workload = Workload(
        prefix=prefix,
        devices=workload_args.devices,
        messages=workload_args.messages,
        values=workload_args.values,
    )
    asyncio.run(workload.register(pg_url, schema))
    payloads = workload.payloads()
    workers = [
        WorkerProcess(
            pg_url,
            schema,
            mqtt_urls[0],
            prefix,
            f"bench-w{i}",
            folder / f"{schema}-w{i}.log",
            env=env,
        ).start()
        for i, env in enumerate(worker_env)
    ]
    killed = None
    try:
        for worker in workers:
            worker.wait_ready(120)
        if ready is not None:
            ready()
        parts = [payloads[i::publishers] for i in range(publishers)]
        pubs = [
            FailoverPublisher(
                mqtt_urls[i % len(mqtt_urls) :] + mqtt_urls[: i % len(mqtt_urls)],
                part,
                name=f"publisher-{i}",
            )
            for i, part in enumerate(parts)
        ]
        for pub in pubs:
            pub.start()
        deadline = time.monotonic() + timeout_s
        if kill is not None:
            while sum(len(p.acknowledged) for p in pubs) < kill_at * len(payloads):
                if time.monotonic() > deadline:
                    raise RuntimeError("the stream stalled before the kill")
                time.sleep(0.05)
            killed = kill()
            say(f"  killed {killed} at {sum(len(p.acknowledged) for p in pubs)} acknowledged")
        for pub in pubs:
            pub.done.wait(max(1.0, deadline - time.monotonic()))
        published_at = max((p.last_ack for p in pubs if p.last_ack is not None), default=0.0)
        acknowledged = sum(len(p.acknowledged) for p in pubs)
        expected = workload.readings * acknowledged // len(payloads)
        complete_at = None
        while time.monotonic() < deadline:
            counts = exactly_once(pg_url, schema, expected)
            if counts["lost"] <= 0:
                complete_at = time.monotonic()
                break
            time.sleep(0.1)
        time.sleep(1.0)  # late redeliveries would show as duplicated rows
        counts = exactly_once(pg_url, schema, expected)
        redelivered = sum(
            w.metric("qorgau_ingest_duplicate_messages_total") for w in workers if w.health()
        )
        first = min(p.first_publish for p in pubs if p.first_publish is not None)
        elapsed = (complete_at or time.monotonic()) - first
        return {
            "messages": len(payloads),
            "published_acknowledged": acknowledged,
            "readings_expected": expected,
            **counts,
            "redelivered_messages": int(redelivered),
            "out_of_order_commits": commits_out_of_order(pg_url, schema),
            "publisher_failovers": sum(p.failovers for p in pubs),
            "seconds": round(elapsed, 2),
            "publish_seconds": round(published_at - first, 2),
            "messages_per_s": round(acknowledged / elapsed, 1),
            "killed": killed,
        }
    finally:
        for worker in workers:
            worker.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--messages", type=int, default=30_000, help="messages per run")
    parser.add_argument("--devices", type=int, default=100, help="simulated devices")
    parser.add_argument("--values", type=int, default=2, help="samples per channel per message")
    parser.add_argument("--workers", type=int, default=2, help="qorgau ingest processes")
    parser.add_argument(
        "--publishers", type=int, default=3, help="MQTT publishers, each starting on its own node"
    )
    parser.add_argument("--prefetch", type=int, default=500, help="consumer prefetch per worker")
    parser.add_argument(
        "--kill-at",
        type=float,
        default=0.25,
        help="kill the queue leader once this share is acknowledged",
    )
    parser.add_argument("--no-mosquitto", action="store_true", help="skip the Mosquitto run")
    args = parser.parse_args()
    if not rabbitmq_installed():
        sys.exit("RabbitMQ not found: apt-get install rabbitmq-server (scripts/bootstrap --test)")
    workload_args = WorkloadShape(
        devices=args.devices, messages=max(1, args.messages // args.devices), values=args.values
    )
    load_before = os.getloadavg()[0]
    folder = scratch_dir("qorgau-bench-cluster-")
    pg = LocalPostgres(folder / "pg", durable=True)
    cluster = LocalRabbitCluster(folder / "rabbitmq", size=3)
    result: dict[str, Any] = {}
    try:
        pg.start()
        say("starting a 3-node RabbitMQ cluster…")
        started = time.monotonic()
        cluster.start()
        result["cluster_start_s"] = round(time.monotonic() - started, 1)
        say(f"  {result['cluster_start_s']} s")
        queue = "bench-ingest"
        amqp = cluster.amqp_urls
        env = [
            {
                "QORGAU_BROKER": "rabbitmq",
                "QORGAU_AMQP_URL": ",".join(amqp[i % 3 :] + amqp[: i % 3]),
                "QORGAU_INGEST_SHARE_GROUP": queue,
                "QORGAU_INGEST_RECEIVE_MAXIMUM": str(args.prefetch),
            }
            for i in range(args.workers)
        ]

        def kill_leader() -> str:
            # Asked before the stream starts (rabbitmqctl takes a second or two): a leader
            # changes only when its node fails.
            leader = leaders[0]
            cluster.kill(leader)
            return str(leader.name)

        say(f"RabbitMQ: {args.messages} messages, leader killed at {args.kill_at:.0%}…")
        leaders: list[Any] = []

        def find_leader() -> None:
            leaders.append(cluster.queue_leader(queue))
            if leaders[0] is None:
                raise RuntimeError(f"queue {queue} has no leader")

        rabbit = run_stream(
            pg_url=pg.url,
            folder=folder,
            workload_args=workload_args,
            mqtt_urls=cluster.mqtt_urls,
            worker_env=env,
            kill=kill_leader,
            ready=find_leader,
            kill_at=args.kill_at,
            publishers=args.publishers,
        )
        say(
            f"  {rabbit['messages_per_s']:,.0f} msg/s, lost {rabbit['lost']}, "
            f"duplicated {rabbit['duplicated']}"
        )
        cluster.stop()
        result.update(
            nodes=len(cluster.nodes),
            leader_killed=rabbit.pop("killed") is not None,
            **rabbit,
            rabbitmq=_rabbitmq_version(),
        )
        if not args.no_mosquitto:
            broker = LocalMosquitto(folder / "mqtt")
            broker.start()
            try:
                say("Mosquitto: the same stream, one node…")
                mosq = run_stream(
                    pg_url=pg.url,
                    folder=folder,
                    workload_args=workload_args,
                    mqtt_urls=[broker.url],
                    worker_env=[{"QORGAU_INGEST_RECEIVE_MAXIMUM": str(args.prefetch)}]
                    * args.workers,
                    publishers=args.publishers,
                )
            finally:
                broker.stop()
            say(f"  {mosq['messages_per_s']:,.0f} msg/s")
            result["mosquitto_messages_per_s"] = mosq["messages_per_s"]
            result["mosquitto_lost"] = mosq["lost"]
            result["mosquitto_duplicated"] = mosq["duplicated"]
            result["mosquitto_out_of_order_commits"] = mosq["out_of_order_commits"]
    finally:
        cluster.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)
    result.update(
        workers=args.workers,
        publishers=args.publishers,
        prefetch=args.prefetch,
        readings_per_message=len(CHANNELS) * args.values,
        machine=machine(fsync=True),
        load_average_before=round(load_before, 2),
        load_average_after=round(os.getloadavg()[0], 2),
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")


def _rabbitmq_version() -> str:
    from qorgau.localrabbitmq import RABBITMQ_BIN

    # The package's folder names the version: /usr/lib/rabbitmq/lib/rabbitmq_server-3.10.8
    found = sorted((RABBITMQ_BIN.parent / "lib").glob("rabbitmq_server-*"))
    return found[-1].name.split("-", 1)[1] if found else "unknown"


if __name__ == "__main__":
    main()
