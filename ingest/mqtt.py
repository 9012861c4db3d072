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

Then paho still read each packet with three or four calls into that buffer, a dictionary of
state and a handler, and parsed each PUBLISH into a message object with an MQTT 5 properties
object, matched against per-topic callbacks (we have none): half of a worker's CPU at 8 readings
per message. So the inbox reads the socket itself (``Inbox._read``, in place of paho's
``_packet_read``): one ``recv`` takes what has arrived, QoS 0 and 1 PUBLISH packets are parsed
in place (topic, packet id, properties skipped, payload) straight into the inbox, and every other
packet (CONNACK, SUBACK, PUBACK of our own publishes, PINGRESP, DISCONNECT, QoS 2) goes to paho's
own handler exactly as paho would pass it. Ingest uses no PUBLISH property, and announces no
Topic Alias Maximum, so the broker sends no aliases.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, NamedTuple

import aiomqtt
from paho.mqtt.client import MQTT_LOG_DEBUG, MQTT_LOG_ERR, PUBACK, PUBLISH, MQTTv5, time_func
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

# The factory's home is vocabulary (every surface opens its connections with it); re-exported
# here (``as``) for the modules of ingest that import it from this one.
from vocabulary.mqtt_client import mqtt5_client
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
    #: The PUBLISH properties as sent (their length first, as paho's ``Properties.unpack``
    #: reads them); empty when there are none, as in the messages devices send.
    properties: bytes = b""


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
        self._rest = b""  # the start of a packet whose end has not arrived yet
        self._need = 0  # bytes still missing for it
        self._sock: Any = None  # the socket ``_rest`` came from
        paho = _paho(client)
        paho.on_message = self._on_message
        if paho._protocol == MQTTv5:
            self._paho = paho
            self._paho_publish = paho._handle_publish
            paho._handle_publish = self._publish
            paho._packet_read = self._read

    def _read(self) -> MQTTErrorCode:
        """paho's ``_packet_read`` for every packet that has arrived, in one call.

        paho reads one packet a call with three or four ``recv`` calls, a dictionary of state and
        a handler per packet. Here one ``recv`` takes what the socket holds (64 KiB, or the rest
        of a long packet), QoS 0 and 1 PUBLISH packets go straight into the inbox
        (``_publish_at``), and any other packet is handed to paho's own handler as paho would
        (its ``_in_packet``, then ``_packet_handle``). A packet cut by the end of a read waits in
        ``_rest`` for the next."""
        paho = self._paho
        if paho._sock is not self._sock:  # a new connection: nothing left from the old one
            self._sock, self._rest, self._need = paho._sock, b"", 0
        try:
            data: bytes = paho._sock_recv(min(max(_READ_BYTES, self._need), _MAX_READ_BYTES))
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as err:  # TimeoutError included
            paho._easy_log(MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if not data:
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        buf = self._rest + data if self._rest else data
        size, pos, rc = len(buf), 0, MQTTErrorCode.MQTT_ERR_SUCCESS
        messages = self._messages
        before = len(messages)
        self._need = 0
        try:
            while pos < size:
                header = _fixed_header(buf, pos, size)
                if header is None:
                    break
                start, end = header
                if end > size:
                    self._need = end - size
                    break
                command = buf[pos]
                pos = end
                if command & 0xF0 == PUBLISH and command & 0x06 != 0x04:
                    messages.append(_publish_at(buf, command, start, end))
                    continue
                rc = self._handle(command, buf[start:end])
                if rc or paho._sock is None:
                    break
        except MalformedPacket as exc:
            paho._easy_log(MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._rest = buf[pos:] if pos < size else b""
        if len(messages) > before:
            self._arrived.set()
        with paho._msgtime_mutex:
            paho._last_bytes_received = time_func()
        # AGAIN: paho's loop_read returns without another ``recv`` that would only find the
        # socket empty; the event loop calls again when more has arrived.
        return rc or MQTTErrorCode.MQTT_ERR_AGAIN

    def _handle(self, command: int, body: bytes) -> MQTTErrorCode:
        """A packet other than a QoS 0 or 1 PUBLISH, through paho's own handler."""
        paho = self._paho
        paho._in_packet = {
            "command": command,
            "have_remaining": 1,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": len(body),
            "packet": bytearray(body),
            "to_process": 0,
            "pos": 0,
        }
        try:
            return paho._packet_handle()  # type: ignore[no-any-return]
        finally:
            paho._in_packet = {
                "command": 0,
                "have_remaining": 0,
                "remaining_count": [],
                "remaining_mult": 1,
                "remaining_length": 0,
                "packet": bytearray(b""),
                "to_process": 0,
                "pos": 0,
            }

    def _publish(self) -> MQTTErrorCode:
        """PUBLISH (MQTT 5) from paho's packet buffer into the inbox (QoS 2 to paho)."""
        packet = self._paho._in_packet
        command = packet["command"]
        if (command & 0x06) >> 1 == 2:
            return self._paho_publish()  # type: ignore[no-any-return]
        data = bytes(packet["packet"])
        self._messages.append(_publish_at(data, command, 0, len(data)))
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


_READ_BYTES = 65536
# A long packet is read in pieces of at most this (paho asks for the whole remaining length at
# once, which a broker could set to 256 MiB).
_MAX_READ_BYTES = 1 << 20


def _fixed_header(buf: bytes, pos: int, size: int) -> tuple[int, int] | None:
    """Where the packet at ``pos`` has its body: (start, end); None while its remaining
    length has not fully arrived."""
    length, shift, at = 0, 0, pos + 1
    while True:
        if at >= size:
            return None
        byte = buf[at]
        at += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return at, at + length
        shift += 7
        if shift > 21:
            raise MalformedPacket("remaining length longer than four bytes")


def _publish_at(buf: bytes, command: int, start: int, end: int) -> RawMessage:
    """A QoS 0 or 1 PUBLISH (MQTT 5) whose body is ``buf[start:end]``: topic, packet id,
    properties (kept as bytes, unparsed), payload."""
    qos = (command & 0x06) >> 1
    try:
        at = start + 2 + int.from_bytes(buf[start : start + 2], "big")
        if at > end:
            raise IndexError
        topic = buf[start + 2 : at].decode("utf-8", "replace")
        mid = 0
        if qos:
            mid = int.from_bytes(buf[at : at + 2], "big")
            at += 2
        length, shift, properties_at = 0, 0, at
        while True:  # the properties' length, a variable byte integer
            if at >= end:
                raise IndexError
            byte = buf[at]
            at += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        at += length
        if at > end or shift > 21:
            raise IndexError
    except IndexError:
        raise MalformedPacket("PUBLISH shorter than its headers say") from None
    return RawMessage(topic, buf[at:end], mid, qos, buf[properties_at:at] if length else b"")


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
