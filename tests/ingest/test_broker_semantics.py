"""What Mosquitto (2.0.11 here) does with our settings, measured with bare paho clients: the
facts that ingest's ack-after-commit design relies on, pinned so that a broker upgrade that
changes them fails here first."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from qorgau.localservices import LocalMosquitto
from tests.support import wait_until

pytestmark = [pytest.mark.services]


@dataclass
class Subscriber:
    """A persistent-session MQTT 5 client that acknowledges nothing unless told to."""

    client_id: str
    port: int
    receive_maximum: int | None = None
    auto_ack: bool = False
    received: list[tuple[int, bool]] = field(default_factory=list)  # (payload number, dup)
    connack: Properties | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5,
            manual_ack=not self.auto_ack,
        )
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.append((int(msg.payload), bool(msg.dup)))

    def _on_connect(
        self, _c: paho.Client, _u: object, _f: object, _rc: object, props: Properties | None
    ) -> None:
        self.connack = props

    def connect(self) -> Subscriber:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        if self.receive_maximum is not None:
            props.ReceiveMaximum = self.receive_maximum
        self.client.connect("127.0.0.1", self.port, clean_start=False, properties=props)
        self.client.loop_start()
        wait_until(lambda: self.connack is not None or self.client.is_connected(), "CONNACK")
        return self

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(5)

    def die(self) -> None:
        """Lose the connection without DISCONNECT, as a killed process does."""
        sock = self.client.socket()
        assert sock is not None
        self.client.loop_stop()
        sock.close()

    def payloads(self) -> set[int]:
        with self._lock:
            return {p for p, _ in self.received}

    def count(self) -> int:
        with self._lock:
            return len(self.received)


def publish(port: int, topic: str, numbers: range) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(topic, str(n), qos=1) for n in numbers]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def settle(condition: Callable[[], bool] | None = None) -> None:
    """Let the broker deliver (what is not delivered after this is held back, not late)."""
    if condition is not None:
        wait_until(condition, "delivery")
    time.sleep(0.5)


def test_receive_maximum_replaces_max_inflight_messages(
    broker_factory: Callable[..., LocalMosquitto],
) -> None:
    broker = broker_factory(config_overrides={"max_inflight_messages": 20})
    counts = {}
    for rm in (None, 5, 100, 400):
        sub = Subscriber(f"rm-{rm}", broker.port, receive_maximum=rm).connect()
        sub.subscribe("sem/rm")
        publish(broker.port, "sem/rm", range(300))
        settle()
        counts[rm] = sub.count()
        if rm is None:
            # The broker's own Receive Maximum toward this client's publishes, too.
            assert sub.connack is not None
            assert sub.connack.ReceiveMaximum == 20  # type: ignore[attr-defined]  # set per packet
        sub.client.disconnect()
        sub.client.loop_stop()
    # Unacknowledged messages the broker sends before waiting for PUBACKs:
    assert counts == {None: 20, 5: 5, 100: 100, 400: 300}


def test_a_dead_shared_subscriber_keeps_its_messages_for_its_client_id(
    broker_factory: Callable[..., LocalMosquitto],
) -> None:
    broker = broker_factory()
    topic, share = "sem/shared", "$share/g/sem/shared"
    a = Subscriber("member-a", broker.port, receive_maximum=100).connect()
    b = Subscriber("member-b", broker.port, receive_maximum=100, auto_ack=True).connect()
    a.subscribe(share)
    b.subscribe(share)

    publish(broker.port, topic, range(0, 20))
    settle(lambda: a.count() + b.count() == 20)
    in_flight_at_a = a.payloads()
    assert in_flight_at_a, "round robin gives A a share"
    assert in_flight_at_a.isdisjoint(b.payloads())

    a.die()  # A never acknowledged: its messages are in flight
    time.sleep(0.5)
    before = b.count()
    publish(broker.port, topic, range(100, 120))
    settle(lambda: b.count() > before)
    b_total = b.payloads()
    # B is not given A's unacknowledged messages, nor all the new ones: A's share is queued
    # for A while it is away.
    assert in_flight_at_a.isdisjoint(b_total)
    new_to_b = {p for p in b_total if p >= 100}
    assert 0 < len(new_to_b) < 20

    # A returns under the same client id: its in-flight messages come back (marked DUP), then
    # the share queued while it was away. Nothing is lost.
    a2 = Subscriber("member-a", broker.port, receive_maximum=100, auto_ack=True).connect()
    expected_at_a = in_flight_at_a | (set(range(100, 120)) - new_to_b)
    settle(lambda: a2.payloads() >= expected_at_a)
    assert a2.payloads() == expected_at_a
    redelivered = {p for p, dup in a2.received if dup}
    assert redelivered == in_flight_at_a
    assert a2.payloads() | b.payloads() == set(range(20)) | set(range(100, 120))


def test_an_offline_sessions_queue_survives_a_broker_restart(
    broker_factory: Callable[..., LocalMosquitto],
) -> None:
    broker = broker_factory()
    a = Subscriber("member-a", broker.port, receive_maximum=50).connect()
    a.subscribe("$share/g/sem/restart")
    publish(broker.port, "sem/restart", range(10))
    settle(lambda: a.count() == 10)
    a.die()
    publish(broker.port, "sem/restart", range(10, 30))
    broker.stop()  # SIGTERM: Mosquitto writes its persistence file
    broker.start()
    a2 = Subscriber("member-a", broker.port, receive_maximum=50, auto_ack=True).connect()
    settle(lambda: a2.count() >= 30)
    assert a2.payloads() == set(range(30))


def test_a_restart_forgets_shared_subscriptions_and_says_so_in_the_puback(
    broker_factory: Callable[..., LocalMosquitto],
) -> None:
    """Mosquitto 2.0.11 restores sessions and their queued messages from its persistence file,
    but not their shared subscriptions: until a worker subscribes again, a reading published
    to the restarted broker reaches nobody, and the PUBACK reason 0x10 "No matching subscribers"
    is the publisher's only sign of it. Ingest subscribes again on every connection; the edge
    outbox must keep and resend messages acknowledged with 0x10."""
    broker = broker_factory()
    a = Subscriber("member-a", broker.port, receive_maximum=50, auto_ack=True).connect()
    a.subscribe("$share/g/sem/forget")
    broker.stop()
    a.client.loop_stop()
    broker.start()
    a2 = Subscriber("member-a", broker.port, receive_maximum=50, auto_ack=True).connect()
    reasons: list[int] = []
    publisher = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    publisher.on_publish = lambda _c, _u, _m, rc, _p: reasons.append(rc.value)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    try:
        publisher.publish("sem/forget", b"1", qos=1).wait_for_publish(5)
        settle()
        assert reasons == [0x10]
        assert a2.count() == 0, "the restored session lost its shared subscription"
        a2.subscribe("$share/g/sem/forget")
        publisher.publish("sem/forget", b"2", qos=1).wait_for_publish(5)
        settle(lambda: a2.count() == 1)
        assert reasons == [0x10, 0x00]
        assert a2.payloads() == {2}
    finally:
        publisher.disconnect()
        publisher.loop_stop()
