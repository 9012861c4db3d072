"""A test subscriber with a persistent MQTT 5 session, and checks of what it received."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vocabulary.driver import SampleBlock
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import DecodedMessage, DeviceStatus, decode_readings, decode_status


class Consumer:
    """Subscribes with QoS 1 and a session that outlives a broker restart (clean_start off,
    session expiry set), records every message in arrival order, reconnects by itself."""

    def __init__(
        self,
        url: str,
        topic_filters: list[str],
        *,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        reconnect_delay_s: int = 1,
    ) -> None:
        self.endpoint = MqttEndpoint.parse(url)
        self.topic_filters = topic_filters
        self.messages: list[tuple[str, bytes, bool]] = []  # topic, payload, retained
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(min_delay=reconnect_delay_s, max_delay=reconnect_delay_s)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect(
            self.endpoint.host, self.endpoint.port, clean_start=False, properties=props
        )
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise AssertionError("test consumer could not subscribe")

    def _on_connect(self, client: paho.Client, *args: Any) -> None:
        client.subscribe([(f, 1) for f in self.topic_filters])

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, codes: Any, properties: Any
    ) -> None:
        if all(not c.is_failure for c in codes):
            self.subscribed.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def payloads(self, suffix: str = "/readings") -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def statuses(self) -> list[DeviceStatus]:
        return [decode_status(p) for p in self.payloads("/status")]

    def wait_for(
        self, check: Callable[[Consumer], bool], timeout_s: float = 30.0, what: str = "messages"
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not check(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)


def distinct_seqs(consumer: Consumer) -> set[int]:
    return {decode_readings(p).seq for p in consumer.payloads()}


@dataclass
class Stream:
    """Readings messages as received: in first-arrival order, redeliveries set aside."""

    messages: list[DecodedMessage]
    redeliveries: int

    @property
    def seqs(self) -> list[int]:
        return [m.seq for m in self.messages]

    def samples(self) -> dict[tuple[str, datetime], float]:
        out: dict[tuple[str, datetime], float] = {}
        for message in self.messages:
            for channel in message.channels:
                for t, v in zip(channel.times(), channel.values, strict=True):
                    key = (channel.sensor, t)
                    assert key not in out, f"reading {key} arrived in two messages"
                    out[key] = v
        return out


def received_stream(payloads: list[bytes]) -> Stream:
    """Dedupe by seq as ingest does, insisting that a repeated seq is the same message."""
    first: dict[int, bytes] = {}
    order: list[DecodedMessage] = []
    redeliveries = 0
    for payload in payloads:
        message = decode_readings(payload)
        if message.seq in first:
            assert first[message.seq] == payload, f"seq {message.seq} reused for other data"
            redeliveries += 1
            continue
        first[message.seq] = payload
        order.append(message)
    return Stream(order, redeliveries)


def expected_samples(blocks: list[SampleBlock]) -> dict[tuple[str, datetime], float]:
    out: dict[tuple[str, datetime], float] = {}
    for block in blocks:
        for i, value in enumerate(block.values):
            out[(block.spec.sensor, block.t0 + timedelta(seconds=i * block.spec.period_s))] = value
    return out
