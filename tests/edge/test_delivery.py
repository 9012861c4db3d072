"""Store-and-forward against a real Mosquitto: a broker outage, a killed agent and a full
outbox. Every reading that should arrive arrives once, in order; what is dropped is counted."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.agent import EdgeAgent
from edge.clock import ScaledClock
from edge.link import LinkState
from edge.settings import EdgeSettings
from firmware_sim.device import standard_device
from firmware_sim.scenario import load_scenario
from qorgau.localservices import LocalMosquitto
from tests.edge.mqtt_support import (
    Consumer,
    distinct_seqs,
    expected_samples,
    received_stream,
)

pytestmark = pytest.mark.services


@pytest.fixture
def consumers() -> Iterator[list[Consumer]]:
    made: list[Consumer] = []
    yield made
    for consumer in made:
        consumer.close()


def settings(url: str, prefix: str, tmp_path: Path, **extra: object) -> EdgeSettings:
    values: dict[str, object] = {
        "mqtt_url": url,
        "topic_prefix": prefix,
        "enterprise": "ent-1",
        "edge_outbox_dir": tmp_path / "outbox",
        "edge_batch_interval_s": 0.05,
        "edge_reconnect_max_s": 0.5,
        "edge_outbox_sync": "normal",
    }
    values.update(extra)
    return EdgeSettings(**values)  # type: ignore[arg-type]


def past_start(hours: float = 2.0) -> datetime:
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(second=0, microsecond=0)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])  # 3.1.1: QORGAU_EDGE_MQTT_PROTOCOL
def test_broker_stopped_and_restarted_every_reading_arrives_in_order_once(
    broker_factory: Callable[..., LocalMosquitto],
    topic_prefix: str,
    tmp_path: Path,
    consumers: list[Consumer],
    protocol: str,
) -> None:
    broker = broker_factory()
    consumer = Consumer(broker.url, [f"{topic_prefix}/v1/+/+/readings"], client_id="c-restart")
    consumers.append(consumer)
    start = past_start()
    end = start + timedelta(minutes=10)
    agent = EdgeAgent(
        settings(
            broker.url,
            topic_prefix,
            tmp_path,
            edge_flush_timeout_s=60.0,
            edge_mqtt_protocol=protocol,
        ),
        standard_device("dev-r", start, seed=5),
        clock=ScaledClock(start, speed=60.0),  # ten simulated minutes in ten seconds
    )
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), kwargs={"until": end})
    runner.start()
    try:
        consumer.wait_for(lambda c: len(c.payloads()) >= 10, what="the first messages")
        if protocol == "3.1.1":  # no Receive Maximum: the agent's own window applies
            assert agent.link.receive_maximum is None
        broker.stop()
        time.sleep(2.0)  # the agent keeps collecting into its outbox meanwhile
        assert agent.link.state is LinkState.DOWN
        held = agent.stats.collected_messages - agent.stats.acknowledged
        assert held > 10
        broker.start()
        runner.join(120)
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert agent.stats.connections >= 2
    expected = expected_samples(standard_device("dev-r", start, seed=5).read(end))
    consumer.wait_for(
        lambda c: len(distinct_seqs(c)) == agent.stats.collected_messages,
        what="every message after the restart",
    )
    stream = received_stream(consumer.payloads())
    assert stream.seqs == sorted(stream.seqs)
    assert stream.seqs == list(range(stream.seqs[0], stream.seqs[0] + len(stream.seqs)))
    assert stream.samples() == expected


def test_after_a_broker_restart_messages_nobody_took_are_sent_again(
    broker_factory: Callable[..., LocalMosquitto],
    topic_prefix: str,
    tmp_path: Path,
    consumers: list[Consumer],
) -> None:
    """Mosquitto 2.0 restores ingest's session but not its shared subscription: until ingest
    subscribes again, a publish gets PUBACK 0x10 and is dropped. The agent keeps such messages
    and sends them again, so the consumer, back only seconds later, still gets every one."""
    broker = broker_factory()
    consumer = Consumer(
        broker.url,
        [f"$share/ingest/{topic_prefix}/v1/+/+/readings"],
        client_id="c-shared",
        reconnect_delay_s=4,  # comes back well after the agent
    )
    consumers.append(consumer)
    start = past_start()
    agent = EdgeAgent(settings(broker.url, topic_prefix, tmp_path), standard_device("dev-s", start))
    agent.start()
    for second in range(1, 21):
        agent.collect(start + timedelta(seconds=second))
    assert agent.flush(30)
    broker.stop()
    broker.start()
    for second in range(21, 41):
        agent.collect(start + timedelta(seconds=second))
    assert agent.flush(60)
    agent.stop(5)
    assert agent.stats.unrouted > 0, "the broker never answered 0x10; nothing was tested"
    consumer.wait_for(lambda c: len(distinct_seqs(c)) == 40, what="all 40 messages")
    stream = received_stream(consumer.payloads())
    expected = expected_samples(standard_device("dev-s", start).read(start + timedelta(seconds=40)))
    assert stream.samples() == expected


def sim_command(
    prefix: str, outbox: Path, url: str, *args: str
) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        "QORGAU_MQTT_URL": url,
        "QORGAU_TOPIC_PREFIX": prefix,
        "QORGAU_EDGE_OUTBOX_DIR": str(outbox),
        "QORGAU_EDGE_BATCH_INTERVAL_S": "0.05",
        "QORGAU_EDGE_RECONNECT_MAX_S": "0.5",
        "QORGAU_LOG_LEVEL": "warning",
    }
    return [sys.executable, "-m", "qorgau.cli", "sim", *args], env


def test_sim_killed_mid_stream_and_restarted_every_reading_arrives_in_order_once(
    mqtt_url: str, topic_prefix: str, tmp_path: Path, consumers: list[Consumer]
) -> None:
    scenario = load_scenario("mine")
    device = "mine-01-disp-1"
    consumer = Consumer(
        mqtt_url,
        [f"{topic_prefix}/v1/+/+/readings", f"{topic_prefix}/v1/+/+/status"],
        client_id=f"c-{topic_prefix}",
    )
    consumers.append(consumer)
    start = past_start(3.0)
    end = start + timedelta(minutes=40)
    cmd, env = sim_command(
        topic_prefix,
        tmp_path / "outbox",
        mqtt_url,
        "--scenario",
        "mine",
        "--device",
        device,
        "--speed",
        "300",
        "--start",
        start.isoformat(),
        "--duration",
        "40m",
    )
    with subprocess.Popen(cmd, env=env) as first:
        try:
            consumer.wait_for(lambda c: len(c.payloads()) >= 15, what="the first messages")
        finally:
            first.send_signal(signal.SIGKILL)  # no flush, no goodbye
            first.wait()
    assert first.returncode == -signal.SIGKILL
    consumer.wait_for(
        lambda c: any(not s.online and s.reason == "connection lost" for s in c.statuses()),
        what="the last will",
    )
    before_restart = len(distinct_seqs(consumer))
    with subprocess.Popen(cmd, env=env) as second:
        assert second.wait(120) == 0
    consumer.wait_for(
        lambda c: any(not s.online and s.reason == "shutdown" for s in c.statuses()),
        what="the shutdown status",
    )
    stream = received_stream(consumer.payloads())
    assert len(stream.seqs) > before_restart
    assert stream.seqs == sorted(stream.seqs)
    assert stream.seqs == list(range(stream.seqs[0], stream.seqs[0] + len(stream.seqs)))
    assert stream.samples() == expected_samples(scenario.build(device, start=start).read(end))
    final = [s for s in consumer.statuses() if s.reason == "shutdown"][-1]
    assert final.outbox is not None
    assert final.outbox.pending_messages == 0
    assert final.outbox.dropped_messages == 0


def test_a_full_outbox_drops_oldest_first_and_reports_the_exact_count(
    broker_factory: Callable[..., LocalMosquitto],
    topic_prefix: str,
    tmp_path: Path,
    consumers: list[Consumer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = broker_factory()
    consumer = Consumer(
        broker.url,
        [f"{topic_prefix}/v1/+/+/readings", f"{topic_prefix}/v1/+/+/status"],
        client_id="c-cap",
    )
    consumers.append(consumer)
    broker.stop()  # a long outage: the outbox overflows its 64 KiB cap
    start = past_start()
    device = standard_device("dev-cap", start, seed=9)
    channels = len(device.channels())
    agent = EdgeAgent(
        settings(broker.url, topic_prefix, tmp_path, edge_outbox_max_bytes=64 * 1024), device
    )
    collected: list[int] = []
    with caplog.at_level(logging.WARNING, logger="edge.agent"):
        for second in range(1, 4001):
            collected += agent.collect(start + timedelta(seconds=second))
    counters = agent.outbox.counters()
    assert counters.dropped_messages > 0
    assert counters.dropped_readings == counters.dropped_messages * channels
    assert "dropped the oldest" in caplog.text
    assert agent.outbox.used_bytes() <= 64 * 1024

    broker.start()
    assert agent.flush(60)
    status_mid = agent._publish_status()
    assert status_mid is not None
    agent.stop(10)
    consumer.wait_for(
        lambda c: len(distinct_seqs(c)) == len(collected) - counters.dropped_messages,
        what="what the outbox kept",
    )
    stream = received_stream(consumer.payloads())
    lost = collected[: counters.dropped_messages]
    assert stream.seqs == collected[counters.dropped_messages :]  # exactly the oldest are gone
    last = start + timedelta(seconds=4000)
    expected = expected_samples(standard_device("dev-cap", start, seed=9).read(last))
    missing = set(expected) - set(stream.samples())
    assert len(missing) == counters.dropped_readings
    assert max(t for _, t in missing) < min(t for _, t in stream.samples())
    assert len(lost) == counters.dropped_messages
    reported = [s for s in consumer.statuses() if s.outbox is not None]
    assert reported[-1].outbox is not None
    assert reported[-1].outbox.dropped_messages == counters.dropped_messages
    assert reported[-1].outbox.dropped_readings == counters.dropped_readings


def test_nothing_is_published_while_disconnected_and_nothing_twice_after(
    broker_factory: Callable[..., LocalMosquitto],
    topic_prefix: str,
    tmp_path: Path,
    consumers: list[Consumer],
) -> None:
    """The agent hands paho no message without a connection (paho would keep it and send it
    again on the next one); after the outage the outbox alone replays, each message once."""
    broker = broker_factory()
    consumer = Consumer(broker.url, [f"{topic_prefix}/v1/+/+/readings"], client_id="c-q")
    consumers.append(consumer)
    start = past_start()
    agent = EdgeAgent(settings(broker.url, topic_prefix, tmp_path), standard_device("dev-q", start))
    agent.start()
    for second in range(1, 51):
        agent.collect(start + timedelta(seconds=second))
        agent.step(0.01)
    assert agent.flush(30)
    assert agent.stats.published == 50
    broker.stop()
    deadline = time.monotonic() + 30
    while agent.link.state is not LinkState.DOWN and time.monotonic() < deadline:
        agent.step(0.05)
    assert agent.link.state is LinkState.DOWN
    for second in range(51, 101):
        agent.collect(start + timedelta(seconds=second))
        agent.pump()
    assert agent.stats.published == 50
    assert agent.outbox.pending() == 50
    broker.start()
    assert agent.flush(30)
    agent.stop(5)
    assert agent.stats.published == 100
    consumer.wait_for(lambda c: len(distinct_seqs(c)) == 100, what="all 100 messages")
    stream = received_stream(consumer.payloads())
    assert stream.seqs == sorted(stream.seqs)


def test_edge_agent_killed_and_restarted_catches_up_and_stops_cleanly_on_sigterm(
    mqtt_url: str, topic_prefix: str, tmp_path: Path, consumers: list[Consumer]
) -> None:
    """`qorgau edge` in real time: SIGKILL, a pause, a restart (the simulated instrument's
    logger hands over what it measured meanwhile), then SIGTERM: one unbroken 1 Hz series."""
    device = "mine-01-disp-1"
    consumer = Consumer(
        mqtt_url,
        [f"{topic_prefix}/v1/+/+/readings", f"{topic_prefix}/v1/+/+/status"],
        client_id=f"c-{topic_prefix}",
    )
    consumers.append(consumer)
    cmd, env = sim_command(topic_prefix, tmp_path / "outbox", mqtt_url)
    cmd[cmd.index("sim")] = "edge"
    cmd += ["--scenario", "mine", "--device", device]
    env["QORGAU_EDGE_BATCH_INTERVAL_S"] = "0.2"
    with subprocess.Popen(cmd, env=env) as first:
        try:
            consumer.wait_for(lambda c: len(c.payloads()) >= 5, what="the first messages")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
    consumer.wait_for(
        lambda c: any(s.reason == "connection lost" for s in c.statuses()), what="the last will"
    )
    time.sleep(2.0)  # the instrument keeps measuring while its agent is down
    with subprocess.Popen(cmd, env=env) as second:
        try:
            seen = len(distinct_seqs(consumer))
            consumer.wait_for(lambda c: len(distinct_seqs(c)) >= seen + 5, what="new messages")
        finally:
            second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    consumer.wait_for(
        lambda c: any(s.reason == "shutdown" for s in c.statuses()), what="the shutdown status"
    )
    statuses = consumer.statuses()
    assert sum(1 for s in statuses if s.online) >= 2  # announced online by each run
    final = [s for s in statuses if s.reason == "shutdown"][-1]
    assert final.outbox is not None
    assert final.outbox.pending_messages == 0
    stream = received_stream(consumer.payloads())
    assert stream.seqs == list(range(stream.seqs[0], stream.seqs[0] + len(stream.seqs)))
    got = stream.samples()
    times = sorted({t for _, t in got})
    first_t, last_t = times[0], times[-1]
    assert last_t - first_t > timedelta(seconds=3)
    expected = expected_samples(
        load_scenario("mine").build(device, start=first_t).read(last_t + timedelta(seconds=1))
    )
    assert got == expected  # every second from the first to the last, the kill included


def test_transmission_faults_reach_the_wire_and_only_the_wire(
    mqtt_url: str, topic_prefix: str, tmp_path: Path, consumers: list[Consumer]
) -> None:
    """Duplicate sends and malformed payloads, injected between outbox and broker: the
    subscriber sees exactly the planned duplicates and garbage, and every other message
    intact; the outbox still drains (each copy is acknowledged)."""
    from firmware_sim.faults import MessageFaults
    from vocabulary.protocol import ProtocolError, decode_readings

    consumer = Consumer(
        mqtt_url, [f"{topic_prefix}/v1/+/+/readings"], client_id=f"c-{topic_prefix}"
    )
    consumers.append(consumer)
    faults = MessageFaults(seed=4, duplicate_share=0.2, malformed_share=0.1)
    start = past_start()
    agent = EdgeAgent(
        settings(mqtt_url, topic_prefix, tmp_path),
        standard_device("dev-f", start),
        payload_filter=faults,
    )
    seqs = [s for second in range(1, 101) for s in agent.collect(start + timedelta(seconds=second))]
    planned = {seq: faults(seq, b"x") for seq in seqs}
    corrupted = {seq for seq, out in planned.items() if out != [b"x"] and len(out) == 1}
    doubled = {seq for seq, out in planned.items() if len(out) == 2}
    assert corrupted
    assert doubled
    assert agent.flush(30)
    agent.stop(5)
    total = len(seqs) + len(doubled)
    consumer.wait_for(lambda c: len(c.payloads()) >= total, what="every copy")
    good, bad = [], 0
    for payload in consumer.payloads():
        try:
            good.append(decode_readings(payload).seq)
        except ProtocolError:
            bad += 1
    assert bad == len(corrupted)
    assert sorted(good) == sorted([s for s in seqs if s not in corrupted] + sorted(doubled))


def test_backfill_publishes_the_period_once_even_when_run_twice(
    mqtt_url: str, topic_prefix: str, tmp_path: Path, consumers: list[Consumer]
) -> None:
    device = "mine-01-lhd-1"
    topics = [f"{topic_prefix}/v1/+/+/readings"]
    consumer = Consumer(mqtt_url, topics, client_id=f"c-{topic_prefix}")
    consumers.append(consumer)
    start = past_start(5.0)
    cmd, env = sim_command(
        topic_prefix,
        tmp_path / "outbox",
        mqtt_url,
        "--scenario",
        "mine",
        "--device",
        device,
        "--backfill",
        "--start",
        start.isoformat(),
        "--duration",
        "2h",
    )
    assert subprocess.run(cmd, env=env, check=False, capture_output=True).returncode == 0
    # 2 h in 60 s messages: 120 of them.
    consumer.wait_for(lambda c: len(distinct_seqs(c)) == 120, what="the backfill")
    assert subprocess.run(cmd, env=env, check=False, capture_output=True).returncode == 0
    time.sleep(1.0)
    stream = received_stream(consumer.payloads())
    assert len(stream.seqs) == 120  # the second run found nothing left to do
    scenario = load_scenario("mine")
    expected = scenario.build(device, start=start).read(start + timedelta(hours=2))
    assert stream.samples() == expected_samples(expected)


def test_the_window_respects_the_brokers_receive_maximum(
    broker_factory: Callable[..., LocalMosquitto],
    topic_prefix: str,
    tmp_path: Path,
    consumers: list[Consumer],
) -> None:
    """paho ignores the Receive Maximum in CONNACK; the agent keeps below it itself."""
    broker = broker_factory(config_overrides={"max_inflight_messages": 5})
    consumer = Consumer(broker.url, [f"{topic_prefix}/v1/+/+/readings"], client_id="c-rm")
    consumers.append(consumer)
    start = past_start()
    agent = EdgeAgent(settings(broker.url, topic_prefix, tmp_path), standard_device("dev-m", start))
    for second in range(1, 201):
        agent.collect(start + timedelta(seconds=second))
    agent.start()
    widest = 0
    deadline = time.monotonic() + 60
    while not agent.outbox.is_empty() and time.monotonic() < deadline:
        agent.step(0.01)
        widest = max(widest, len(agent._inflight))
    assert agent.link.receive_maximum == 5
    assert 0 < widest <= 4  # one slot stays free for the status message
    assert agent.stats.connections == 1  # never disconnected for exceeding it
    agent.stop(5)
    consumer.wait_for(lambda c: len(distinct_seqs(c)) == 200, what="all 200 messages")
