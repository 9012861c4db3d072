"""The MQTT side of ingest: an aiomqtt client whose messages are acknowledged by us, after the
commit, instead of by the library on receipt.

aiomqtt 2.5 has no public manual acknowledgement yet (empicano/aiomqtt#345, PR #346); paho-mqtt 2,
which it wraps, has ``manual_ack``. This module is the only place that reaches into the wrapped
paho client, so that the day aiomqtt ships the feature, one file changes.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vocabulary.mqtt_url import MqttEndpoint


def mqtt5_client(
    endpoint: MqttEndpoint,
    *,
    client_id: str,
    session_expiry_s: int | None = None,
    receive_maximum: int | None = None,
    will: aiomqtt.Will | None = None,
    clean_start: bool = True,
) -> aiomqtt.Client:
    """The one way our services open an MQTT 5 connection: credentials and TLS (``mqtts://``)
    from the endpoint, so that no service forgets either."""
    properties = None
    if session_expiry_s is not None or receive_maximum is not None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if session_expiry_s is not None:
            properties.SessionExpiryInterval = session_expiry_s
        if receive_maximum is not None:
            properties.ReceiveMaximum = receive_maximum
    return aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        username=endpoint.username,
        password=endpoint.password,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=clean_start,
        properties=properties,
        tls_context=ssl.create_default_context() if endpoint.tls else None,
        keepalive=30,
        will=will,
    )


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
    _paho(client).manual_ack_set(True)
    return client


def _paho(client: aiomqtt.Client) -> Any:
    return client._client  # see the module docstring


def ack(client: aiomqtt.Client, mid: int, qos: int) -> None:
    """Send PUBACK for a QoS 1 message (QoS 0 needs none). Call in receive order."""
    if qos > 0:
        _paho(client).ack(mid, qos)
