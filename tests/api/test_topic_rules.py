"""Topics and payloads agree (issue 13): the API's alert stream takes an alert's enterprise from
its topic, so whoever may publish on one enterprise's alert topic cannot reach another
enterprise's people by naming it in the payload; and no device may take a code that service
topics use at its level."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import aiomqtt
import pytest

from api.alert_stream import AlertHub
from api.models_registry import DeviceCreate
from tests.api.conftest import Api, make_tenant
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import alerts_topic
from vocabulary.protocol.alerts import AlertMessage


def alert(enterprise: str, kind: str = "ceiling") -> AlertMessage:
    now = datetime.now(UTC)
    return AlertMessage(
        alert_id=str(uuid.uuid4()),
        transition="opened",
        state="open",
        kind=kind,
        severity="critical",
        enterprise=enterprise,
        device="dev-1",
        message="x",
        at=now,
        opened_at=now,
        sent_at=now,
    )


@pytest.mark.anyio
@pytest.mark.services
async def test_an_alert_naming_another_enterprise_than_its_topic_is_refused(
    mqtt_url: str, topic_prefix: str
) -> None:
    hub = AlertHub(mqtt_url, topic_prefix)
    stop = asyncio.Event()
    running = asyncio.create_task(hub.run(stop))
    queue = hub.subscribe()
    try:
        async with asyncio.timeout(10):
            await hub.connected.wait()
        genuine = alert("enta")
        sent = [
            # A forgery on enterprise A's topic, addressed to enterprise B's officer.
            (alerts_topic(topic_prefix, "enta", "ceiling"), alert("entb").payload()),
            # The right enterprise, but the topic's kind is not the payload's.
            (alerts_topic(topic_prefix, "enta", "trend"), alert("enta").payload()),
            (alerts_topic(topic_prefix, "enta", "ceiling"), b"[" * 1100 + b"]" * 1100),
            (alerts_topic(topic_prefix, "enta", "ceiling"), b"\xff\xfe not json"),
            (genuine.topic(topic_prefix), genuine.payload()),
        ]
        endpoint = MqttEndpoint.parse(mqtt_url)
        async with aiomqtt.Client(endpoint.host, endpoint.port) as client:
            for topic, payload in sent:
                await client.publish(topic, payload, qos=1)
        async with asyncio.timeout(10):
            received = await queue.get()
        assert received == genuine, "only the genuine alert passes (messages arrive in order)"
        assert queue.empty()
        assert hub.refused == 4
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)


@pytest.mark.anyio
@pytest.mark.services
async def test_the_api_refuses_a_device_named_after_a_service_topic(api: Api) -> None:
    tenant = await make_tenant(api, "entb", "Almaty")
    path = f"/api/v1/enterprises/{tenant.enterprise['id']}/devices"
    refused = await api.call("POST", path, api.tokens["admin"], json={"code": "alerts"})
    assert refused.status_code == 422
    assert "reserved for service topics" in refused.text
    accepted = await api.call("POST", path, api.tokens["admin"], json={"code": "alerts-1"})
    assert accepted.status_code == 201


@pytest.mark.parametrize("code", ["alerts", "ALERTS", "status", "readings"])
def test_the_registry_refuses_device_codes_of_service_topics(code: str) -> None:
    with pytest.raises(ValueError, match="reserved for service topics"):
        DeviceCreate(code=code)
    assert DeviceCreate(code=f"{code}-1").code == f"{code}-1"
