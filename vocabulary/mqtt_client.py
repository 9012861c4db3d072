"""The one way Qorgau's services open an MQTT 5 connection (ingest, the alert engine, the API's
alert stream and live view): credentials and TLS from the :class:`MqttEndpoint`, so that no
service forgets either.

Here, beside the URL it is built from, so that every surface opens its connections the same way
without importing another surface. Needs aiomqtt (the ``server`` extra); the edge agent, which
speaks paho directly, never imports this module.
"""

from __future__ import annotations

import ssl

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
    """An MQTT 5 client for ``endpoint``: its credentials, and TLS verified against the system's
    trust store for ``mqtts://``."""
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
