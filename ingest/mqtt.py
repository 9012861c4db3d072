"""The MQTT side of ingest: an aiomqtt client whose messages are acknowledged by us, after the
commit, instead of by the library on receipt, and read in batches.

aiomqtt 2.5 has no public manual acknowledgement yet (empicano/aiomqtt#345, PR #346); paho-mqtt 2,
which it wraps, has ``manual_ack``. This module is the only place that reaches into the wrapped
paho client (and into aiomqtt's disconnect future), so that the day aiomqtt ships the features,
one file changes.

Why the message path bypasses aiomqtt's (measured at 8 readings per message, docs/ingest.md): at
thousands of small messages a second the costs are per message and per system call, not per
byte. Stock, paho reads a packet with three or four ``recv`` calls and aiomqtt's reader takes one
packet per event-loop wake-up, wraps it in a second message object and hands it through an
``asyncio.Queue``; each acknowledgement is a packet of its own with a wake-up write and a
``send``. Here the socket is read 64 KiB at a time (``_BufferedSocket``), every packet in the
buffer is parsed in one wake-up, messages land in an ``Inbox`` as plain tuples taken in batches,
and a batch's acknowledgements go out as one write (``ack_many``).

Most of what stays is paho parsing each PUBLISH into a message object with an MQTT 5 properties
object and matching its topic against per-topic callbacks (we have none): half of a worker's CPU
at 8 readings per message. So the inbox parses QoS 0 and 1 PUBLISH packets itself
(``Inbox._publish``: topic, packet id, properties skipped, payload), in place of paho's handler
for that one packet type; ingest uses no PUBLISH property, and announces no Topic Alias Maximum,
so the broker sends no aliases. QoS 2 still goes through paho.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, NamedTuple

import aiomqtt
from paho.mqtt.client import PUBACK, MQTTv5
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

# The factory's home is vocabulary (every surface opens its connections with it); re-exported
# here (``as``) for the modules of ingest that import it from this one.
from vocabulary.mqtt_client import mqtt5_client as mqtt5_client
from vocabulary.mqtt_url import MqttEndpoint


def build_client(
    endpoint: MqttEndpoint,
    *,
    client_id: str,
    session_expiry_s: int,
    receive_maximum: int,
    will: aiomqtt.Will | None = None,
    clean_start: bool = False,
) -> aiomqtt.Client:
    """An MQTT 5 client with a persistent session (``clean_start`` off) and manual acks.

    Manual acks are switched on before connecting: a resumed session delivers its queued
    messages right after CONNACK, and those too must wait for the commit.
    """
    client = mqtt5_client(
        endpoint,
        client_id=client_id,
        session_expiry_s=session_expiry_s,
        receive_maximum=receive_maximum,
        will=will,
        clean_start=clean_start,
    )
    paho = _paho(client)
    paho.manual_ack_set(True)
    create_socket = paho._create_socket
    paho._create_socket = lambda: _BufferedSocket(create_socket())
    return client


def _paho(client: aiomqtt.Client) -> Any:
    return client._client  # see the module docstring


def ack(client: aiomqtt.Client, mid: int, qos: int) -> None:
    """Send PUBACK for a QoS 1 message (QoS 0 needs none). Call in receive order."""
    if qos > 0:
        _paho(client).ack(mid, qos)


_PUBACK = struct.Struct("!BBH")  # fixed header, remaining length 2, packet id (reason 0 implied)


def ack_many(client: aiomqtt.Client, mids: list[int]) -> None:
    """Send the PUBACKs of QoS 1 messages ``mids`` (in receive order) as one write.

    MQTT has no batch acknowledgement, but nothing requires one packet per ``send``: the PUBACKs
    are queued in paho as one outgoing buffer, so a batch costs one wake-up and one system call
    instead of a few per message."""
    if mids:
        packet = b"".join([_PUBACK.pack(PUBACK, 2, mid) for mid in mids])
        _paho(client)._packet_queue(PUBACK, packet, 0, 1)


class RawMessage(NamedTuple):
    """A received PUBLISH as ingest needs it: no per-message objects beyond paho's own."""

    topic: str
    payload: bytes
    mid: int
    qos: int


class Inbox:
    """Where a client's messages wait for the reader, taken a batch at a time.

    Installed in place of aiomqtt's message queue (``client.messages`` then yields nothing). Its
    size is bounded by the Receive Maximum the client announces: the broker sends no more QoS 1
    messages until some are acknowledged. (QoS 0 messages are not counted by the broker; Qorgau's
    devices publish readings with QoS 1.)"""

    def __init__(self, client: aiomqtt.Client) -> None:
        self._client = client
        self._messages: list[RawMessage] = []
        self._arrived = asyncio.Event()
        paho = _paho(client)
        paho.on_message = self._on_message
        if paho._protocol == MQTTv5:
            self._paho = paho
            self._paho_publish = paho._handle_publish
            paho._handle_publish = self._publish

    def _publish(self) -> MQTTErrorCode:
        """PUBLISH (MQTT 5) from paho's packet buffer into the inbox: topic, packet id,
        properties (skipped), payload."""
        packet = self._paho._in_packet
        qos = (packet["command"] & 0x06) >> 1
        if qos == 2:
            return self._paho_publish()  # type: ignore[no-any-return]
        data = packet["packet"]
        try:
            end = 2 + int.from_bytes(data[0:2], "big")
            topic = bytes(data[2:end]).decode("utf-8", "replace")
            mid = 0
            if qos:
                mid = int.from_bytes(data[end : end + 2], "big")
                end += 2
            length, shift = 0, 0
            while True:  # the properties' length, a variable byte integer
                byte = data[end]
                end += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
            end += length
            if end > len(data) or shift > 21:
                raise IndexError
        except IndexError:
            raise MalformedPacket("PUBLISH shorter than its headers say") from None
        self._messages.append(RawMessage(topic, bytes(data[end:]), mid, qos))
        self._arrived.set()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def __len__(self) -> int:
        return len(self._messages)

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # brokers refuse such topics; quarantined if one gets here
            topic = message._topic.decode("utf-8", "replace")
        payload = message.payload
        if not isinstance(payload, bytes):
            payload = bytes(payload)
        self._messages.append(RawMessage(topic, payload, message.mid, message.qos))
        self._arrived.set()

    async def take(self, most: int) -> list[RawMessage]:
        """Wait for at least one message and return up to ``most``, oldest first; raises
        ``aiomqtt.MqttError`` when the connection is lost."""
        disconnected: asyncio.Future[None] = self._client._disconnected
        while not self._messages:
            if disconnected.done():
                raise aiomqtt.MqttError("Disconnected during message iteration")
            self._arrived.clear()
            arrived = asyncio.ensure_future(self._arrived.wait())
            try:
                await asyncio.wait((arrived, disconnected), return_when=asyncio.FIRST_COMPLETED)
            finally:
                arrived.cancel()
        taken = self._messages[:most]
        del self._messages[:most]
        return taken


class _BufferedSocket:
    """A socket read 64 KiB at a time, handing paho the few bytes it asks for from memory.

    ``pending()`` reports the buffered bytes, so aiomqtt's reader keeps parsing packets until
    the buffer is empty (it does the same for TLS records): every packet that has arrived is
    handled in one wake-up of the event loop."""

    _CHUNK = 65536

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._data):
            data: bytes = self._sock.recv(max(size, self._CHUNK))
            if len(data) <= size:
                return data  # includes b"" (closed): paho sees the end as it would
            self._data, self._pos = data, 0
        end = self._pos + size
        chunk = self._data[self._pos : end]
        self._pos = end
        if end >= len(self._data):
            self._data, self._pos = b"", 0
        return chunk

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._data) - self._pos + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
