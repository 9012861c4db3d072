"""The inbox's own packet reader (``ingest.mqtt.Inbox``) against a scripted socket: whatever way
the stream is cut into reads, every QoS 0/1 PUBLISH reaches the inbox once, in order, with its
topic, payload and packet id, and every other packet reaches paho's handler as paho would pass
it. (The real broker paths are covered by the other ingest tests.)"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from paho.mqtt.client import PINGRESP, PUBACK, PUBLISH, SUBACK
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

from ingest import mqtt
from vocabulary.mqtt_url import MqttEndpoint

pytestmark = pytest.mark.anyio


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: str, payload: bytes, mid: int, qos: int = 1, properties: bytes = b"") -> bytes:
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name
    if qos:
        body += struct.pack("!H", mid)
    body += _varint(len(properties)) + properties + payload
    return bytes([PUBLISH | (qos << 1)]) + _varint(len(body)) + body


def packet(command: int, body: bytes) -> bytes:
    return bytes([command]) + _varint(len(body)) + body


class ScriptedSocket:
    """Returns the stream in the given pieces, one per ``recv``, then would block."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def recv(self, size: int) -> bytes:
        if not self.pieces:
            raise BlockingIOError
        piece = self.pieces.pop(0)
        assert len(piece) <= size
        return piece

    def pending(self) -> int:
        return 0

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


def inbox_reading(pieces: list[bytes]) -> tuple[mqtt.Inbox, list[tuple[int, bytes]], Any]:
    client = mqtt.build_client(
        MqttEndpoint.parse("mqtt://127.0.0.1:1"),
        client_id="t",
        session_expiry_s=0,
        receive_maximum=10,
    )
    inbox = mqtt.Inbox(client)
    paho: Any = client._client
    handled: list[tuple[int, bytes]] = []

    def handle() -> MQTTErrorCode:
        packet = paho._in_packet
        assert packet["remaining_length"] == len(packet["packet"])
        handled.append((packet["command"], bytes(packet["packet"])))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    paho._packet_handle = handle
    paho._sock = ScriptedSocket(pieces)
    return inbox, handled, paho


def read_all(paho: Any) -> None:
    while paho._sock.pieces:
        assert paho._packet_read() in (MQTTErrorCode.MQTT_ERR_AGAIN, MQTTErrorCode.MQTT_ERR_SUCCESS)


STREAM = [
    publish("p/v1/e/d1/readings", b'{"v":1}', 1),
    packet(PUBACK, struct.pack("!HB", 7, 0)),
    publish("p/v1/e/d2/readings", b"x" * 300, 2, properties=b"\x01\x01"),  # a property, kept
    packet(PINGRESP, b""),
    publish("p/v1/e/d3/readings", b"", 0, qos=0),
    publish("p/v1/e/d4/readings", b"y" * 70000, 65535),  # longer than one read
    packet(SUBACK, struct.pack("!HBB", 3, 0, 1)),
    publish("p/v1/e/d5/readings", b"last", 3),
]
EXPECTED = [
    mqtt.RawMessage("p/v1/e/d1/readings", b'{"v":1}', 1, 1),
    mqtt.RawMessage("p/v1/e/d2/readings", b"x" * 300, 2, 1, properties=b"\x02\x01\x01"),
    mqtt.RawMessage("p/v1/e/d3/readings", b"", 0, 0),
    mqtt.RawMessage("p/v1/e/d4/readings", b"y" * 70000, 65535, 1),
    mqtt.RawMessage("p/v1/e/d5/readings", b"last", 3, 1),
]
OTHERS = [
    (PUBACK, struct.pack("!HB", 7, 0)),
    (PINGRESP, b""),
    (SUBACK, struct.pack("!HBB", 3, 0, 1)),
]


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 7, 64, 301, 4096, 65536])
async def test_every_packet_once_in_order_however_the_stream_is_cut(cut: int) -> None:
    stream = b"".join(STREAM)
    inbox, handled, paho = inbox_reading([stream[i : i + cut] for i in range(0, len(stream), cut)])
    read_all(paho)
    assert inbox._messages == EXPECTED
    assert handled == OTHERS


async def test_qos_2_goes_to_paho() -> None:
    qos2 = publish("p/v1/e/d1/readings", b"z", 9, qos=2)
    inbox, handled, paho = inbox_reading([qos2])
    read_all(paho)
    assert inbox._messages == []
    assert handled == [(qos2[0], qos2[2:])]


async def test_a_closed_connection_and_a_malformed_packet_are_reported_as_paho_does() -> None:
    _, _, paho = inbox_reading([b""])
    assert paho._packet_read() == MQTTErrorCode.MQTT_ERR_CONN_LOST
    # A PUBLISH whose topic length runs past its end.
    bad = bytes([PUBLISH | 2]) + _varint(4) + struct.pack("!H", 200) + b"ab"
    inbox, _, paho = inbox_reading([bad])
    assert paho._packet_read() == MQTTErrorCode.MQTT_ERR_PROTOCOL
    assert inbox._messages == []
    with pytest.raises(MalformedPacket):
        mqtt._fixed_header(b"\x30\xff\xff\xff\xff\x01", 0, 6)
