"""TLS: with an ``mqtts://`` URL and a CA file the agent verifies the broker and publishes over
TLS; without the right CA it refuses to talk to the broker and keeps its data."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.agent import EdgeAgent
from edge.link import LinkState
from edge.settings import EdgeSettings
from firmware_sim.device import standard_device
from qorgau.broker import BrokerConfig, render_mosquitto_conf
from qorgau.localservices import free_port, mosquitto_binary, scratch_dir
from tests.edge.mqtt_support import Consumer, distinct_seqs

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]


@dataclass
class TlsBroker:
    plain_url: str
    tls_url: str
    ca_file: Path


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


@pytest.fixture
def tls_broker() -> Iterator[TlsBroker]:
    folder = scratch_dir("qorgau-test-tls-")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(folder, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=qorgau-test-ca")  # fmt: skip
    _openssl(folder, "req", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(folder, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2",
             "-extfile", "san.ext")  # fmt: skip
    plain, tls = free_port(), free_port()
    user = pwd.getpwnam("mosquitto") if os.geteuid() == 0 else None
    conf = render_mosquitto_conf(
        BrokerConfig(
            listeners=((plain, "127.0.0.1"),),
            persistence_dir=folder,
            log_file=folder / "mosquitto.log",
            run_as_user=user.pw_name if user else None,
        )
    )
    conf += (
        f"listener {tls} 127.0.0.1\ncafile {folder / 'ca.pem'}\n"
        f"certfile {folder / 'server.pem'}\nkeyfile {folder / 'server.key'}\n"
    )
    (folder / "mosquitto.conf").write_text(conf)
    if user is not None:
        for path in [folder, *folder.iterdir()]:
            os.chown(path, user.pw_uid, user.pw_gid)
    process = subprocess.Popen(
        [str(mosquitto_binary()), "-c", str(folder / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", tls), 0.2):
                break
            assert process.poll() is None, (folder / "mosquitto.log").read_text()
            assert time.monotonic() < deadline, "the TLS broker did not start"
            time.sleep(0.05)
        yield TlsBroker(f"mqtt://127.0.0.1:{plain}", f"mqtts://127.0.0.1:{tls}", folder / "ca.pem")
    finally:
        process.terminate()
        process.wait(15)
        shutil.rmtree(folder, ignore_errors=True)


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
