"""``/metrics``: requests counted by route template and status, the time to the response's
headers, and the broker links, in Prometheus' text format."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.settings import ApiSettings
from tests.api.conftest import Api, in_process
from tests.support import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.services]


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_requests_are_counted_by_route_template_and_status(api: Api) -> None:
    admin = api.tokens["admin"]
    created = await api.ok(
        "POST", "/api/v1/enterprises", admin, json={"code": "m-1", "name": "M LLP"}
    )
    for _ in range(2):
        await api.ok("GET", f"/api/v1/enterprises/{created['id']}", admin)
    assert (await api.call("GET", "/api/v1/enterprises/999999", admin)).status_code == 404
    assert (await api.call("GET", "/api/v1/enterprises/1", None)).status_code == 401
    assert (await api.call("GET", "/no/such/page", None)).status_code == 404

    text = (await api.http.get("/metrics")).text
    counted = samples(text, "qorgau_api_requests_total")
    route = "/api/v1/enterprises/{enterprise_id}"
    assert counted[(("method", "GET"), ("route", route), ("status", "200"))] == 2
    assert counted[(("method", "GET"), ("route", route), ("status", "404"))] == 1
    assert counted[(("method", "GET"), ("route", route), ("status", "401"))] == 1
    assert counted[(("method", "POST"), ("route", "/api/v1/enterprises"), ("status", "201"))] == 1
    assert counted[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    # Concrete ids never become labels: the number of series stays bounded.
    templates = set(api.app.openapi()["paths"]) | {"unmatched"}
    assert {dict(labels)["route"] for labels in counted} <= templates

    timed = samples(text, "qorgau_api_response_start_seconds_count")
    assert timed[(("method", "GET"), ("route", route))] == 4
    assert samples(text, "qorgau_api_requests_in_progress")[()] == 1  # this very scrape


async def test_metrics_can_be_switched_off(pg_url: str, schema: str) -> None:
    settings = ApiSettings(
        database_url=pg_url,
        database_schema=schema,
        api_alert_stream=False,
        api_live_stream=False,
        api_metrics=False,
    )
    async with in_process(settings) as (_, http):
        assert (await http.get("/metrics")).status_code == 404


async def test_the_alert_link_to_the_broker_is_reported(
    pg_url: str, schema: str, mqtt_url: str
) -> None:
    settings = ApiSettings(
        database_url=pg_url,
        database_schema=schema,
        mqtt_url=mqtt_url,
        api_alert_stream=True,
        api_live_stream=False,
    )
    async with in_process(settings) as (_, http):

        async def connected() -> bool:
            text = (await http.get("/metrics")).text
            return samples(text, "qorgau_api_broker_connected").get((("link", "alerts"),)) == 1

        await eventually(connected, what="the alert link reported as connected")
        text = (await http.get("/metrics")).text
        assert samples(text, "qorgau_api_stream_clients")[(("stream", "alerts"),)] == 0
