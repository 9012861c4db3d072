"""Tenant isolation over every route of the app, enumerated from ``app.routes`` so that a new
route cannot be forgotten: enterprise A's safety officer and an inspector of another region get
403 or 404 for enterprise B's objects, and never see them in lists."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from api.app import create_app
from api.settings import ApiSettings
from dashboards.reports import render as render_report
from qorgau.demo import EmbeddedServer
from qorgau.localservices import free_port
from store.auth import Role
from tests.api.conftest import Api, Tenant, make_tenant
from tests.support import eventually
from vocabulary.protocol.alerts import AlertMessage

pytestmark = [pytest.mark.anyio, pytest.mark.services]

# Routes that are open on purpose, or documentation (and the Swagger UI and ReDoc files it
# loads); the dashboard's page and files (it asks for a token and calls the API with it);
# Prometheus metrics (route templates and counts, no tenant's data: tests/api/test_metrics.py);
# the page's message catalogues (tests/api/test_localisation.py).
OPEN = {
    "/health",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/docs-assets",
    "/",
    "/static",
    "/metrics",
    "/i18n/index.json",
    "/i18n/{locale}.json",
}
# Path parameters that name no tenant's object (service-wide settings, admin only).
SERVICE_WIDE: dict[str, int | str] = {
    "subscriber_kind": "role",
    "subscriber": "inspector",
    "webhook_id": 1,
}
# The live alert stream never ends; with the hub off (as here) a caller who passes the role
# check gets 503. Its tenant filter is checked in test_alert_stream_is_filtered_by_tenant.
STREAM = "/api/v1/alerts/stream"
# The live readings stream (/workplaces/{id}/live) checks the tenant first, then answers 503
# here (its hub is off too): other tenants get 404 like on any route with an id.
SECRET = "tenant-b-secret"


def flat_routes(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """Every route with its full path, through included routers (FastAPI ≥ 0.16x keeps an
    included router as one entry of ``app.routes``)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from flat_routes(included.routes, prefix + getattr(context, "prefix", ""))
        else:
            yield prefix + getattr(route, "path", ""), route


def routes(api: Api) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path, route in flat_routes(api.app.routes):
        if path in OPEN:
            continue
        assert isinstance(route, APIRoute), f"{route!r} is not an API route: cover it here"
        found.extend((method, path) for method in sorted(route.methods or ()))
    assert len(found) >= 30
    return found


def example_body(api: Api, method: str, path: str) -> dict[str, Any] | None:
    operation = api.app.openapi()["paths"][path][method.lower()]
    body = operation.get("requestBody")
    if body is None:
        return None
    ref = body["content"]["application/json"]["schema"]["$ref"]
    schema = api.app.openapi()["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert schema.get("examples"), f"{ref} has no example"
    example: dict[str, Any] = dict(schema["examples"][0])
    if "code" in example:
        example["code"] = f"{example['code']}-x"
    return example


def fill(path: str, ids: dict[str, int | str]) -> str:
    ids = {**SERVICE_WIDE, **ids}
    params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
    for name in params:
        assert name in ids, f"path parameter {name!r} of {path}: teach this test its objects"
        path = path.replace("{" + name + "}", str(ids[name]))
    return path


@pytest.fixture
async def world(api: Api) -> tuple[Tenant, Tenant]:
    a = await make_tenant(api, "ent-a", "Almaty")
    b = await make_tenant(api, SECRET, "Karaganda")
    return a, b


async def snapshot(api: Api, b: Tenant) -> str:
    admin = api.tokens["admin"]
    parts = []
    for name, obj_id in b.ids().items():
        kind = name.removesuffix("_id")
        if kind in ("recipient", "route", "enterprise"):
            continue  # notification settings: below
        if kind == "alert":
            parts.append(await api.ok("GET", f"/api/v1/alerts/{obj_id}", admin))
            continue
        plural = "sites" if kind == "site" else f"{kind}s"
        parts.append(await api.ok("GET", f"/api/v1/{plural}/{obj_id}", admin))
    code = b.enterprise["code"]
    for listing in ("recipients", "routes"):
        found = await api.ok("GET", f"/api/v1/notifications/{listing}", admin)
        parts.append([item for item in found if item["enterprise"] == code])
    parts.append(await api.ok("GET", f"/api/v1/notifications/policies/{code}", admin))
    return json.dumps(parts, sort_keys=True)


async def test_every_route_isolates_tenants(api: Api, world: tuple[Tenant, Tenant]) -> None:
    a, b = world
    outsider = await api.token(Role.INSPECTOR, regions=("Mangystau",), name="outsider")
    scoring_a = await api.token(Role.SCORING, regions=("Almaty",), name="scoring almaty")
    callers = {"officer of A": a.officer, "inspector elsewhere": outsider, "scoring A": scoring_a}
    checked = 0
    for method, template in routes(api):
        body = example_body(api, method, template)
        path = fill(template, b.ids())
        for who, token in callers.items():
            response = await api.call(method, path, token, json=body)
            where = f"{method} {template} as {who}: {response.status_code} {response.text[:200]}"
            if template == STREAM:
                assert response.status_code in (403, 503), where
            elif "{" in template:
                assert response.status_code in (403, 404), where
            else:
                assert response.status_code in (200, 201, 403), where
                assert SECRET not in response.text, where
            checked += 1
        # The owner's side of the same request does reach the object (the ids are right).
        control = await api.call(method, path, api.tokens["admin"], json=body)
        if "webhook_id" not in template:  # no webhook exists to delete
            assert control.status_code not in (401, 403, 404), (method, template, control.text)
    assert checked >= 3 * 30


async def test_no_writes_leak_across_tenants(api: Api, world: tuple[Tenant, Tenant]) -> None:
    a, b = world
    outsider = await api.token(Role.INSPECTOR, regions=("Mangystau",))
    before = await snapshot(api, b)
    for method, template in routes(api):
        if method not in ("POST", "PATCH", "PUT", "DELETE"):
            continue
        body = example_body(api, method, template)
        path = fill(template, b.ids())
        for token in (a.officer, outsider):
            await api.call(method, path, token, json=body)
    assert await snapshot(api, b) == before


async def test_inspector_reads_only_their_jurisdiction(
    api: Api, world: tuple[Tenant, Tenant]
) -> None:
    a, b = world
    inspector = await api.token(Role.INSPECTOR, regions=("Almaty", "Astana"))
    listing = await api.ok("GET", "/api/v1/enterprises", inspector)
    assert [e["code"] for e in listing["items"]] == ["ent-a"]
    assert (
        await api.call("GET", f"/api/v1/workplaces/{a.workplace['id']}", inspector)
    ).status_code == 200
    assert (
        await api.call("GET", f"/api/v1/workplaces/{b.workplace['id']}", inspector)
    ).status_code == 404
    sensors = await api.ok("GET", "/api/v1/sensors", inspector)
    assert {s["enterprise"] for s in sensors["items"]} == {"ent-a"}
    # Read-only: the role may not write even inside its jurisdiction.
    response = await api.call(
        "PATCH", f"/api/v1/workplaces/{a.workplace['id']}", inspector, json={"headcount": 1}
    )
    assert response.status_code == 403


async def test_alert_stream_is_filtered_by_tenant(
    api: Api, world: tuple[Tenant, Tenant], mqtt_url: str
) -> None:
    a, b = world
    app = create_app(
        ApiSettings(
            database_url=api.pg_url,
            database_schema=api.schema,
            mqtt_url=mqtt_url,
            api_sse_keepalive_s=0.2,
        ),
        render_report=render_report,
    )
    port = free_port()
    server = EmbeddedServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    received: list[str] = []

    async def read() -> None:
        headers = {"Authorization": f"Bearer {a.officer}"}
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
            http.stream("GET", STREAM, headers=headers) as response,
        ):
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    received.append(json.loads(line[6:])["enterprise"])

    try:
        await eventually(lambda: server.started, what="API start")
        reader = asyncio.create_task(read())
        hub = app.state.alert_hub
        await eventually(lambda: bool(hub._subscribers), what="the stream to subscribe")
        now = datetime.now(UTC)
        for tenant in (b, a, b):
            hub.fan_out(
                AlertMessage(
                    alert_id=str(uuid.uuid4()),
                    transition="opened",
                    state="open",
                    kind="ceiling",
                    severity="critical",
                    enterprise=tenant.enterprise["code"],
                    device=tenant.device["code"],
                    message="x",
                    at=now,
                    opened_at=now,
                    sent_at=now,
                )
            )
        await eventually(lambda: len(received) >= 1, what="A's alert on A's stream")
        await asyncio.sleep(0.5)
        assert received == [a.enterprise["code"]]
        reader.cancel()
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
