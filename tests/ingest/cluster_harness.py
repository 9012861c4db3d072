"""Tools for the RabbitMQ cluster tests and ``bench/cluster.py``: a publisher that moves to the
next node when its node dies (as a device behind a load balancer would), and the counts that
prove each acknowledged reading was stored exactly once."""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from qorgau.localrabbitmq import LocalRabbitCluster
from store.connection import connect
from tests.ingest.harness import publish_next, stored
from tests.support import wait_until
from vocabulary.mqtt_url import MqttEndpoint


class FailoverPublisher(threading.Thread):
    """Publishes every payload with QoS 1 (MQTT 3.1.1: RabbitMQ 3.10's plugin) until the broker
    has acknowledged each one. On a lost connection, or a node that does not answer within
    ``connect_timeout_s``, it connects to the next URL and publishes again what was in flight,
    as the edge outbox does: the copies are ingest's to absorb."""

    def __init__(
        self,
        urls: list[str],
        payloads: list[tuple[str, bytes]],
        *,
        window: int = 200,
        connect_timeout_s: float = 3.0,
        name: str = "failover-publisher",
    ) -> None:
        super().__init__(daemon=True, name=name)
        self.endpoints = [MqttEndpoint.parse(url) for url in urls]
        self.payloads = payloads
        self.window = window
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._acked_mids: list[int] = []
        self._current: paho.Client | None = None
        self._connected = threading.Event()
        self._lost = threading.Event()
        self._halt = threading.Event()
        self.done = threading.Event()
        self.acknowledged: set[int] = set()  # indices into payloads
        self.published = 0
        self.failovers = 0
        self.first_publish: float | None = None
        self.last_ack: float | None = None

    def stop(self) -> None:
        self._halt.set()

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        if client is self._current:
            self._connected.set()

    def _on_disconnect(self, client: paho.Client, *_: Any) -> None:
        if client is self._current:
            self._lost.set()

    def _client(self, index: int) -> paho.Client:
        endpoint = self.endpoints[index % len(self.endpoints)]
        client = paho.Client(
            CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311, clean_session=True
        )
        if endpoint.username is not None:
            client.username_pw_set(endpoint.username, endpoint.password)
        client.max_inflight_messages_set(self.window)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.reconnect_delay_set(0.2, 0.5)  # type: ignore[arg-type]  # paho takes float seconds
        with self._lock:
            self._current = client
            self._acked_mids.clear()
        self._connected.clear()
        self._lost.clear()
        client.connect_async(endpoint.host, endpoint.port, keepalive=10)
        client.loop_start()
        return client

    def _on_publish(self, client: object, _u: object, mid: int, *_: object) -> None:
        with self._lock:
            # Packet ids start again on every connection: a late ack of the old one is not
            # this one's (dropping it costs one more copy, never a loss).
            if client is self._current:
                self._acked_mids.append(mid)

    def run(self) -> None:
        node = 0
        client = self._client(node)
        connecting_since = time.monotonic()
        todo = collections.deque(range(len(self.payloads)))
        pending: dict[int, int] = {}  # mid → payload index
        try:
            while not self._halt.is_set():
                with self._lock:
                    acked, self._acked_mids = self._acked_mids, []
                for mid in acked:
                    index = pending.pop(mid, None)
                    if index is not None:
                        self.acknowledged.add(index)
                        self.last_ack = time.monotonic()
                stuck = (
                    not self._connected.is_set()
                    and time.monotonic() - connecting_since > self.connect_timeout_s
                )
                if self._lost.is_set() or stuck:
                    # The node is gone (or never answered): the next one; resend what was
                    # in flight, since its acknowledgement can no longer come.
                    client.loop_stop()
                    with contextlib.suppress(Exception):
                        client.disconnect()
                    todo.extendleft(i for i in pending.values() if i not in self.acknowledged)
                    pending.clear()
                    node += 1
                    self.failovers += 1
                    client = self._client(node)
                    connecting_since = time.monotonic()
                    continue
                if not todo and not pending:
                    self.done.set()
                    return
                if not self._connected.is_set() or not todo or len(pending) >= self.window:
                    time.sleep(0.002)
                    continue
                if not publish_next(client, self.payloads, todo, pending):
                    continue
                self.published += 1
                if self.first_publish is None:
                    self.first_publish = time.monotonic()
        finally:
            client.loop_stop()
            with contextlib.suppress(Exception):
                client.disconnect()


def exactly_once(url: str, schema: str, expected_readings: int) -> dict[str, int]:
    """``stored`` (rows), ``lost`` (readings expected but absent) and ``duplicated`` (rows
    beyond one per (sensor, time)): every reading has its own key in the workload."""
    rows, distinct = stored(url, schema)
    return {
        "stored": rows,
        "lost": expected_readings - distinct,
        "duplicated": rows - distinct,
    }


def commits_out_of_order(url: str, schema: str) -> int:
    """Messages committed in an earlier transaction than the message before them in their
    device's ``seq`` order: how often competing consumers reorder a device's stream."""
    with connect(url, schema, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE received_at < before) FROM ("
            " SELECT received_at, lag(received_at) OVER (PARTITION BY device_id ORDER BY seq)"
            " AS before FROM ingested_messages) AS ordered"
        ).fetchone()
    return int(row[0]) if row else 0


def restore_nodes(cluster: LocalRabbitCluster) -> None:
    """Start again any node a test killed (a test of another module may have), and wait until
    every node runs in the cluster."""
    for node in cluster.nodes:
        if not node.running:
            cluster.start_node(node)
    wait_until(
        lambda: len(cluster.running_nodes()) == len(cluster.nodes),
        "every node back in the cluster",
        timeout_s=120,
    )
