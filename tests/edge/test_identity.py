"""Device identity: per-device passwords and an ACL that confines each device to its own topic,
checked against a real Mosquitto; and the `qorgau devices` command that writes them."""

from __future__ import annotations

import base64
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.agent import EdgeAgent
from edge.link import LinkState
from edge.settings import EdgeSettings
from firmware_sim.device import standard_device
from qorgau.brokerauth import (
    mosquitto_password_hash,
    remove_acl_block,
    remove_password,
    set_acl_block,
    set_password,
    verify_mosquitto_password,
)
from qorgau.cli import main
from qorgau.localservices import LocalMosquitto, scratch_dir
from tests.edge.mqtt_support import Consumer, distinct_seqs

HAVE_TOOL = shutil.which("mosquitto_passwd") is not None


# --------------------------------------------------------------------------- files, no broker


def test_our_hash_matches_the_mosquitto_format() -> None:
    hashed = mosquitto_password_hash("s3cret", salt=b"0123456789ab")
    _, scheme, iterations, salt, key = hashed.split("$")
    assert (scheme, iterations) == ("7", "101")
    assert base64.b64decode(salt) == b"0123456789ab"
    assert len(base64.b64decode(key)) == 64
    assert verify_mosquitto_password("s3cret", hashed)
    assert not verify_mosquitto_password("s3cret!", hashed)


@pytest.mark.skipif(not HAVE_TOOL, reason="mosquitto_passwd is not installed")
def test_we_verify_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    assert set_password(path, "dev-1", "pw-one") == "mosquitto_passwd"
    user, hashed = path.read_text().strip().split(":", 1)
    assert user == "dev-1"
    assert verify_mosquitto_password("pw-one", hashed)


def test_password_and_acl_files_are_edited_in_place(tmp_path: Path) -> None:
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    set_password(passwd, "a", "1", tool=None)
    set_password(passwd, "b", "2", tool=None)
    set_password(passwd, "a", "3", tool=None)
    users = dict(line.split(":", 1) for line in passwd.read_text().splitlines())
    assert set(users) == {"a", "b"}
    assert verify_mosquitto_password("3", users["a"])
    assert remove_password(passwd, "a")
    assert not remove_password(passwd, "a")

    set_acl_block(acl, "device e/a", "a", [("write", "q/v1/e/a/#")])
    set_acl_block(acl, "device e/b", "b", [("write", "q/v1/e/b/#")])
    set_acl_block(acl, "device e/a", "a", [("write", "q/v1/e2/a/#")])
    text = acl.read_text()
    assert text.count("user a\n") == 1
    assert "topic write q/v1/e2/a/#" in text
    assert "q/v1/e/a/#" not in text
    assert remove_acl_block(acl, "device e/b")
    assert "user b" not in acl.read_text()


def test_user_names_that_would_break_the_files_are_refused(tmp_path: Path) -> None:
    from qorgau.brokerauth import BrokerAuthError

    with pytest.raises(BrokerAuthError, match="cannot be a broker user"):
        set_password(tmp_path / "p", "a:b", "x", tool=None)


# --------------------------------------------------------------------------- real broker


@pytest.fixture
def auth_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    # Not tmp_path: the broker reads these files as its own user, who cannot enter it.
    folder = scratch_dir("qorgau-test-auth-")
    files = {"passwd": folder / "passwd", "acl": folder / "acl"}
    monkeypatch.setenv("QORGAU_BROKER_PASSWORD_FILE", str(files["passwd"]))
    monkeypatch.setenv("QORGAU_BROKER_ACL_FILE", str(files["acl"]))
    yield files
    shutil.rmtree(folder, ignore_errors=True)


def devices(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["devices", *args]) == 0
    return capsys.readouterr().out


def password_in(out: str) -> str:
    line = next(line for line in out.splitlines() if "shown once" in line)
    return line.rsplit(" ", 1)[1]


@pytest.fixture
def secured(
    auth_env: dict[str, Path],
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    broker_factory: Callable[..., LocalMosquitto],
) -> dict[str, Any]:
    """A broker with two devices (one hashed by mosquitto_passwd, one by us) and a reader."""
    monkeypatch.setenv("QORGAU_TOPIC_PREFIX", topic_prefix)
    out_a = devices(capsys, "add", "--enterprise", "ent-a", "--device", "dev-a", "--no-db")
    out_b = devices(
        capsys, "add", "--enterprise", "ent-a", "--device", "dev-b", "--no-db", "--no-tool"
    )
    out_r = devices(capsys, "add-service", "--user", "reader", "--role", "reader")
    broker = broker_factory(password_file=auth_env["passwd"], acl_file=auth_env["acl"])
    return {
        "broker": broker,
        "dev-a": password_in(out_a),
        "dev-b": password_in(out_b),
        "reader": password_in(out_r),
        "out": out_a,
    }


def agent_for(
    broker: LocalMosquitto, prefix: str, tmp_path: Path, device: str, user: str, password: str
) -> EdgeAgent:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    host = broker.url.removeprefix("mqtt://")
    return EdgeAgent(
        EdgeSettings(
            mqtt_url=f"mqtt://{user}:{password}@{host}",
            topic_prefix=prefix,
            enterprise="ent-a",
            edge_outbox_dir=tmp_path / f"outbox-{device}",
            edge_outbox_sync="normal",
            edge_reconnect_max_s=0.5,
        ),
        standard_device(device, start),
    )


def fill(agent: EdgeAgent, messages: int) -> None:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    for second in range(1, messages + 1):
        agent.collect(base + timedelta(seconds=second))


@pytest.mark.services
def test_devices_add_prints_the_password_once_and_asks_for_a_reload(
    secured: dict[str, Any],
) -> None:
    out = secured["out"]
    assert "write" in out
    assert "/v1/ent-a/dev-a/readings" in out
    assert "/v1/ent-a/dev-a/status" in out
    assert "/v1/ent-a/dev-a/#" not in out
    assert "HUP" in out


@pytest.mark.services
@pytest.mark.parametrize("device", ["dev-a", "dev-b"])  # mosquitto_passwd hash, our hash
def test_a_device_with_its_password_publishes_under_its_own_topic(
    secured: dict[str, Any], topic_prefix: str, tmp_path: Path, device: str
) -> None:
    broker = secured["broker"]
    consumer = Consumer(
        broker.url,
        [f"{topic_prefix}/v1/#"],
        client_id=f"r-{device}",
        username="reader",
        password=secured["reader"],
    )
    try:
        agent = agent_for(broker, topic_prefix, tmp_path, device, device, secured[device])
        fill(agent, 20)
        assert agent.flush(30)
        agent.stop(5)
        consumer.wait_for(lambda c: len(distinct_seqs(c)) == 20, what="the device's messages")
    finally:
        consumer.close()


@pytest.mark.services
def test_publishing_under_another_devices_topic_is_refused_and_nothing_arrives(
    secured: dict[str, Any], topic_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = secured["broker"]
    consumer = Consumer(
        broker.url,
        [f"{topic_prefix}/v1/#"],
        client_id="r-spoof",
        username="reader",
        password=secured["reader"],
    )
    try:
        # A raw client: MQTT 5 PUBACK with reason 0x87 Not authorized.
        reasons: list[int] = []
        acked = threading.Event()
        raw = paho.Client(CallbackAPIVersion.VERSION2, client_id="spoofer", protocol=paho.MQTTv5)
        raw.username_pw_set("dev-a", secured["dev-a"])

        def on_publish(
            client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any
        ) -> None:
            reasons.append(int(reason.value))
            acked.set()

        raw.on_publish = on_publish
        host, port = broker.url.removeprefix("mqtt://").split(":")
        raw.connect(host, int(port))
        raw.loop_start()
        try:
            raw.publish(f"{topic_prefix}/v1/ent-a/dev-b/readings", b"{}", qos=1)
            assert acked.wait(10)
        finally:
            raw.disconnect()
            raw.loop_stop()
        assert reasons == [0x87]

        # The agent: dev-a's credentials, dev-b's topic. It keeps every refused message.
        agent = agent_for(broker, topic_prefix, tmp_path, "dev-b", "dev-a", secured["dev-a"])
        fill(agent, 10)
        with caplog.at_level(logging.ERROR, logger="edge.agent"):
            agent.start()
            deadline = time.monotonic() + 10
            while agent.stats.refusals == 0 and time.monotonic() < deadline:
                agent.step(0.05)
        assert agent.stats.refusals >= 1
        assert "Not authorized" in caplog.text
        assert agent.outbox.pending() == 10
        agent.stop(0)
        time.sleep(0.5)  # anything the broker let through would have arrived by now
        assert consumer.payloads() == []
        assert not [t for t, _, _ in consumer.messages if "/dev-b/" in t]
    finally:
        consumer.close()


def publish_as(broker: LocalMosquitto, user: str, password: str, topic: str) -> int:
    """The broker's MQTT 5 PUBACK reason code for one QoS 1 publish (0x87: not authorized;
    0x10: accepted, nobody subscribed; 0: accepted)."""
    reasons: list[int] = []
    acked = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"p-{user}", protocol=paho.MQTTv5)
    client.username_pw_set(user, password)

    def on_publish(
        client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        reasons.append(int(reason.value))
        acked.set()

    client.on_publish = on_publish
    host, port = broker.url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.loop_start()
    try:
        client.publish(topic, b'{"online": true}', qos=1)
        assert acked.wait(10)
    finally:
        client.disconnect()
        client.loop_stop()
    return reasons[0]


@pytest.mark.services
def test_a_device_may_publish_its_readings_and_status_and_nothing_else(
    secured: dict[str, Any], topic_prefix: str
) -> None:
    broker, password = secured["broker"], secured["dev-a"]
    base = f"{topic_prefix}/v1/ent-a"
    for allowed in (f"{base}/dev-a/readings", f"{base}/dev-a/status"):
        assert publish_as(broker, "dev-a", password, allowed) in (0, 0x10), allowed
    for refused in (
        f"{base}/alerts/threshold",  # another enterprise's officer would read it
        f"{base}/dev-a/commands",  # a service topic to come under the device's code
        f"{base}/dev-a/readings/x",
        f"{topic_prefix}/v1/ent-b/dev-a/readings",
    ):
        assert publish_as(broker, "dev-a", password, refused) == 0x87, refused


@pytest.mark.parametrize("code", ["alerts", "Status", "readings", "config"])
def test_device_codes_of_service_topics_are_refused(
    code: str, auth_env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["devices", "add", "--enterprise", "entb", "--device", code, "--no-db"]
    assert main(args) == 1
    assert "reserved for service topics" in capsys.readouterr().err
    assert not auth_env["passwd"].exists(), "no broker user for a refused code"


@pytest.mark.services
def test_wrong_password_is_refused_and_the_agent_keeps_its_data(
    secured: dict[str, Any], topic_prefix: str, tmp_path: Path
) -> None:
    agent = agent_for(secured["broker"], topic_prefix, tmp_path, "dev-a", "dev-a", "wrong")
    fill(agent, 5)
    agent.start()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        agent.step(0.05)
    assert agent.link.state is not LinkState.UP
    assert "refused" in (agent.link.last_error or "") or agent.stats.connections == 0
    assert agent.outbox.pending() == 5
    agent.stop(0)


@pytest.mark.services
def test_a_device_added_later_works_after_a_reload(
    secured: dict[str, Any],
    topic_prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = devices(capsys, "add", "--enterprise", "ent-a", "--device", "dev-c", "--no-db")
    broker = secured["broker"]
    broker.reload()
    time.sleep(0.5)
    consumer = Consumer(
        broker.url,
        [f"{topic_prefix}/v1/#"],
        client_id="r-late",
        username="reader",
        password=secured["reader"],
    )
    try:
        agent = agent_for(broker, topic_prefix, tmp_path, "dev-c", "dev-c", password_in(out))
        fill(agent, 3)
        assert agent.flush(20)
        agent.stop(5)
        consumer.wait_for(lambda c: len(distinct_seqs(c)) == 3, what="the new device's messages")
    finally:
        consumer.close()


@pytest.mark.services
def test_an_ingest_account_reads_every_device_through_a_shared_subscription(
    secured: dict[str, Any], topic_prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = devices(capsys, "add-service", "--user", "qorgau-ingest", "--role", "ingest")
    broker = secured["broker"]
    broker.reload()
    time.sleep(0.5)
    consumer = Consumer(
        broker.url,
        [f"$share/ingest/{topic_prefix}/v1/+/+/readings"],
        client_id="ingest-1",
        username="qorgau-ingest",
        password=password_in(out),
    )
    try:
        agent = agent_for(broker, topic_prefix, tmp_path, "dev-a", "dev-a", secured["dev-a"])
        fill(agent, 4)
        assert agent.flush(20)
        agent.stop(5)
        consumer.wait_for(lambda c: len(distinct_seqs(c)) == 4, what="readings via the share")
    finally:
        consumer.close()


@pytest.mark.services
def test_devices_add_registers_the_device_in_the_database(
    pg_url: str,
    schema: str,
    auth_env: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("QORGAU_DATABASE_URL", pg_url)
    monkeypatch.setenv("QORGAU_DATABASE_SCHEMA", schema)
    saved = auth_env["acl"].parent / "pw"
    out = devices(
        capsys,
        "add",
        "--enterprise",
        "ent-db",
        "--device",
        "dev-db",
        "--workplace",
        "wp-1",
        "--save-password",
        str(saved),
    )
    assert "shown once" not in out
    assert saved.stat().st_mode & 0o777 == 0o600
    devices(capsys, "add-scenario", "--scenario", "mine", "--no-broker")
    with psycopg.connect(pg_url, options=f"-c search_path={schema}") as conn:
        row = conn.execute(
            "SELECT e.code, w.code FROM devices d JOIN enterprises e ON e.id = d.enterprise_id "
            "JOIN workplaces w ON w.id = d.workplace_id WHERE d.code = 'dev-db'"
        ).fetchone()
        assert row == ("ent-db", "wp-1")
        sensors = conn.execute(
            "SELECT count(*) FROM sensors s JOIN devices d ON d.id = s.device_id "
            "WHERE d.code = 'mine-01-hd-1'"
        ).fetchone()
        assert sensors == (6,)


def test_the_acl_example_is_what_the_commands_write(
    auth_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QORGAU_TOPIC_PREFIX", "qorgau")
    devices(capsys, "add-service", "--user", "qorgau-ingest", "--role", "ingest", "--no-tool")
    devices(capsys, "add-service", "--user", "grafana", "--role", "reader", "--no-tool")
    devices(
        capsys,
        "add",
        "--enterprise",
        "mine-01",
        "--device",
        "mine-01-lw-1",
        "--workplace",
        "longwall",
        "--no-db",
        "--no-tool",
    )
    example = Path(__file__).parents[2] / "deploy" / "mosquitto" / "acl.example"
    rules = [line for line in example.read_text().splitlines() if not line.startswith("#")]
    written = [
        line for line in auth_env["acl"].read_text().splitlines() if not line.startswith("#")
    ]
    assert [r for r in rules if r] == [w for w in written if w]


def test_the_password_can_come_from_stdin(
    auth_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("chosen-by-operator\n"))
    out = devices(
        capsys,
        "add",
        "--enterprise",
        "e",
        "--device",
        "d-stdin",
        "--no-db",
        "--password-stdin",
        "--no-tool",
    )
    assert "chosen-by-operator" not in out
    user, hashed = auth_env["passwd"].read_text().strip().split(":", 1)
    assert user == "d-stdin"
    assert verify_mosquitto_password("chosen-by-operator", hashed)


def test_the_shipped_broker_config_requires_the_files_qorgau_devices_writes() -> None:
    from qorgau.broker import DEPLOY_BROKER, DEPLOY_CONF_PATH
    from qorgau.commands.devices import DevicesSettings

    shipped = (Path(__file__).parents[2] / DEPLOY_CONF_PATH).read_text().splitlines()
    defaults = DevicesSettings()
    assert "allow_anonymous false" in shipped
    assert f"password_file {defaults.broker_password_file}" in shipped
    assert f"acl_file {defaults.broker_acl_file}" in shipped
    assert Path(str(DEPLOY_BROKER.password_file)) == defaults.broker_password_file
