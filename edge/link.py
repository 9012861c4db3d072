"""The agent's connection to the broker: every paho call and callback lives in this module.

No network thread: the agent's own loop calls ``poll()``, so paho's callbacks run in the
agent's thread and the agent needs no locks. Each connection attempt gets a fresh paho client.
That is deliberate: paho keeps its unacknowledged messages across ``reconnect()`` and sends
them again after the next CONNACK, ahead of anything published later; the outbox already holds
those messages and replays them itself, oldest first, so a reused client would send each of
them twice and interleave the copies with the replay. A fresh client has nothing to resend.
"""

from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vocabulary.errors import QorgauError
from vocabulary.mqtt_url import MqttEndpoint

log = logging.getLogger(__name__)

# PUBACK reason codes at or above this are failures (MQTT 5, 3.4.2.1).
FAILURE = 0x80
NO_MATCHING_SUBSCRIBERS = 0x10


class LinkError(QorgauError):
    """A connection attempt failed before it reached the broker."""


class LinkState(Enum):
    DOWN = "down"
    CONNECTING = "connecting"  # TCP (and TLS) up, CONNECT sent, waiting for CONNACK
    UP = "up"


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    retain: bool = True


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str | None = None
    password: str | None = None


@dataclass(slots=True)
class Ack:
    mid: int
    reason: int  # MQTT 5 PUBACK reason code
    reason_name: str


@dataclass
class BrokerLink:
    endpoint: MqttEndpoint
    client_id: str
    will: Will
    credentials: Credentials = field(default_factory=Credentials)
    ca_file: Path | None = None
    keepalive_s: int = 30
    connack_timeout_s: float = 10.0
    # "5", or "3.1.1" for brokers without MQTT 5 (RabbitMQ before 3.13): no Receive Maximum
    # from the broker (the agent's own window applies) and no PUBACK reason codes (a message
    # nobody subscribed to is acknowledged all the same; see docs/edge.md).
    protocol: str = "5"

    state: LinkState = LinkState.DOWN
    receive_maximum: int | None = None
    last_error: str | None = None
    _client: paho.Client | None = None
    _acks: list[Ack] = field(default_factory=list)
    _connect_started: float = 0.0
    # Set by callbacks, acted on in ``poll()`` once paho's loop has returned: closing sockets
    # from inside a callback would pull them from under the loop that called it.
    _failed: str | None = None

    # ------------------------------------------------------------------ connection

    def open(self) -> None:
        """Start a connection attempt; ``poll()`` completes it. Raises ``LinkError`` when the
        broker cannot be reached at all."""
        self._abandon()
        v5 = self.protocol == "5"
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            # 3.1.1's clean session: as with Session Expiry 0 below, the outbox is the session.
            clean_session=None if v5 else True,
        )
        # The agent keeps its own window; paho must never queue on its side.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.connect_timeout = self.connack_timeout_s
        if self.credentials.username is not None:
            client.username_pw_set(self.credentials.username, self.credentials.password)
        context: _TrackingContext | None = None
        if self.endpoint.tls:
            context = _TrackingContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies cert and host name
            try:
                if self.ca_file is not None:
                    context.load_verify_locations(cafile=str(self.ca_file))
                else:
                    context.load_default_certs()
            except (OSError, ssl.SSLError) as exc:
                self.last_error = f"CA file {self.ca_file}: {exc}"
                raise LinkError(self.last_error) from exc
            client.tls_set_context(context)
        client.will_set(self.will.topic, self.will.payload, qos=1, retain=self.will.retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        options: dict[str, Any] = {}
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 0  # the outbox is the session
            options = {"clean_start": True, "properties": properties}
        self.receive_maximum = None
        try:
            client.connect(
                self.endpoint.host, self.endpoint.port, keepalive=self.keepalive_s, **options
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            if context is not None and context.last_socket is not None:
                context.last_socket.close()
            _close_sockets(client)
            self.last_error = str(exc) or type(exc).__name__
            raise LinkError(f"cannot reach {self.endpoint.redacted()}: {self.last_error}") from exc
        self._client = client
        self.state = LinkState.CONNECTING
        self._connect_started = time.monotonic()

    def poll(self, timeout_s: float) -> None:
        """Move bytes both ways (waiting up to ``timeout_s`` for something to arrive) and run
        the callbacks; without a connection, just wait."""
        client = self._client
        if client is None:
            time.sleep(timeout_s)
            return
        rc = client.loop(timeout=timeout_s)
        if self._failed is not None:
            self._lost(self._failed)
        elif rc != paho.MQTT_ERR_SUCCESS:
            self._lost(paho.error_string(rc))
        elif (
            self.state is LinkState.CONNECTING
            and time.monotonic() - self._connect_started > self.connack_timeout_s
        ):
            self._lost(f"no CONNACK within {self.connack_timeout_s:g} s")

    def close(self, timeout_s: float = 2.0) -> None:
        """Disconnect cleanly (the broker discards the will)."""
        client = self._client
        if client is None:
            return
        if self.state is LinkState.UP:
            client.disconnect()
            deadline = time.monotonic() + timeout_s
            while client.socket() is not None and time.monotonic() < deadline:
                if client.loop(timeout=0.05) != paho.MQTT_ERR_SUCCESS:
                    break
        self._abandon()

    def _abandon(self) -> None:
        if self._client is not None:
            _close_sockets(self._client)
            self._client = None
        self._failed = None
        self.state = LinkState.DOWN

    def _lost(self, why: str) -> None:
        self.last_error = why
        self._abandon()

    # ------------------------------------------------------------------ publishing

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Send with QoS 1 on the current connection; returns the packet id to match the ack."""
        if self._client is None or self.state is not LinkState.UP:
            raise LinkError("not connected")
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            # The socket died under us: paho would keep the message for a later connection,
            # which is exactly what this module avoids; the outbox still has it.
            self._lost(paho.error_string(info.rc))
            raise LinkError(f"publish failed: {paho.error_string(info.rc)}")
        return int(info.mid)

    def take_acks(self) -> list[Ack]:
        acks, self._acks = self._acks, []
        return acks

    # ------------------------------------------------------------------ paho callbacks

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if client is not self._client:
            return
        if reason.is_failure:
            # Bad credentials, banned, server busy: the agent retries later.
            self._failed = f"broker refused the connection: {reason}"
            return
        self.receive_maximum = getattr(properties, "ReceiveMaximum", None)
        self.last_error = None
        self.state = LinkState.UP

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if client is not self._client:
            return
        if self._failed is None:
            self._failed = f"disconnected: {reason}"

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        if client is not self._client:
            return
        code = int(getattr(reason, "value", 0))
        self._acks.append(Ack(mid, code, str(reason)))


class _TrackingContext(ssl.SSLContext):
    """Remembers the socket it wrapped last: when the TLS handshake fails, paho drops that
    socket without closing it, and only we can."""

    last_socket: ssl.SSLSocket | None = None

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        sock = super().wrap_socket(*args, **kwargs)
        self.last_socket = sock
        return sock


def _close_sockets(client: paho.Client) -> None:
    # paho closes its socket and wake-up socket pair only in this private helper (also run by
    # its __del__); calling it now releases them at once instead of at garbage collection.
    client._reset_sockets()
