"""TLS: with an ``mqtts://`` URL and a CA file the agent verifies the broker and publishes over
TLS; without the right CA it refuses to talk to the broker and keeps its data."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.agent import EdgeAgent
from edge.link import LinkState
from edge.settings import EdgeSettings
from firmware_sim.device import standard_device
from tests.edge.mqtt_support import Consumer, distinct_seqs
from tests.tls_support import TlsBroker, needs_openssl

pytestmark = [
    pytest.mark.services,
    needs_openssl,
]


def make_agent(url: str, ca_file: Path | None, prefix: str, tmp_path: Path) -> EdgeAgent:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    agent = EdgeAgent(
        EdgeSettings(
            mqtt_url=url,
            mqtt_ca_file=ca_file,
            topic_prefix=prefix,
            enterprise="ent-tls",
            edge_outbox_dir=tmp_path / "outbox",
            edge_outbox_sync="normal",
            edge_reconnect_max_s=0.5,
        ),
        standard_device("dev-tls", start),
    )
    for second in range(1, 6):
        agent.collect(start + timedelta(seconds=second))
    return agent


def test_the_agent_publishes_over_verified_tls(
    tls_broker: TlsBroker, topic_prefix: str, tmp_path: Path
) -> None:
    consumer = Consumer(tls_broker.plain_url, [f"{topic_prefix}/v1/#"], client_id="tls-c")
    try:
        agent = make_agent(tls_broker.tls_url, tls_broker.ca_file, topic_prefix, tmp_path)
        assert agent.flush(20)
        agent.stop(5)
        consumer.wait_for(lambda c: len(distinct_seqs(c)) == 5, what="messages sent over TLS")
    finally:
        consumer.close()


def test_a_broker_the_ca_does_not_vouch_for_gets_nothing(
    tls_broker: TlsBroker, topic_prefix: str, tmp_path: Path
) -> None:
    agent = make_agent(tls_broker.tls_url, None, topic_prefix, tmp_path)  # system trust store
    agent.start()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        agent.step(0.05)
    assert agent.link.state is LinkState.DOWN
    assert "certificate" in (agent.link.last_error or "").lower()
    assert agent.outbox.pending() == 5
    agent.stop(0)
