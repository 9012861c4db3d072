"""The services' MQTT connections (ingest, alert engine, the API's alert stream and live view)
all come from ``vocabulary.mqtt_client.mqtt5_client``: with an ``mqtts://`` URL they verify the
broker against the system's trust store (``SSL_CERT_FILE`` here) and refuse one they cannot
verify."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from api.alert_stream import AlertHub
from tests.tls_support import TlsBroker, needs_openssl
from vocabulary.mqtt_client import mqtt5_client
from vocabulary.mqtt_url import MqttEndpoint

pytestmark = [pytest.mark.anyio, pytest.mark.services, needs_openssl]


async def test_a_service_client_talks_tls_to_a_broker_it_trusts(
    tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_broker.ca_file))
    endpoint = MqttEndpoint.parse(tls_broker.tls_url)
    async with mqtt5_client(endpoint, client_id="tls-service") as client:
        await client.subscribe("tls/echo", qos=1)
        await client.publish("tls/echo", b"over tls", qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(client.messages))
    assert message.payload == b"over tls"


# paho leaves the refused socket for the garbage collector to close (a ResourceWarning that is
# not ours); the point here is that no connection is made.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_service_client_refuses_a_broker_it_cannot_verify(
    tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # the throwaway CA is not trusted
    endpoint = MqttEndpoint.parse(tls_broker.tls_url)
    with pytest.raises(aiomqtt.MqttError):
        async with mqtt5_client(endpoint, client_id="tls-untrusted"):
            pass


async def test_the_api_alert_stream_connects_over_tls(
    tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_broker.ca_file))
    hub = AlertHub(tls_broker.tls_url, "tlsprefix")
    stop = asyncio.Event()
    running = asyncio.create_task(hub.run(stop))
    try:
        async with asyncio.timeout(15):
            await hub.connected.wait()
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
    assert not hub.connected.is_set()
