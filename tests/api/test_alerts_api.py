"""The alerts API against the running engine: listing and filtering, acknowledge and resolve
(with the audit trail and the engine learning of it), the live SSE stream fed from MQTT with
per-role preferences, and signed webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, Request

from analytics.alerts.lifecycle import ACKNOWLEDGED
from api.app import create_app
from api.settings import ApiSettings
from dashboards.reports import render as render_report
from ingest.alerting.webhooks import SIGNATURE_HEADER, verify
from qorgau.demo import EmbeddedServer
from qorgau.localservices import free_port
from store.auth import Role, create_token
from store.connection import connect_async
from tests.api.conftest import Api, make_tenant
from tests.ingest.test_alerting import DEV, Rig, gas, register, rig
from tests.support import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.services]

SECRET = "a-long-shared-webhook-secret"


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    server = EmbeddedServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, what="server start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def read_sse(http: httpx.AsyncClient, url: str, into: list[dict[str, Any]]) -> None:
    async with http.stream("GET", url) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                into.append(json.loads(line[6:]))


async def leak(r: Rig, start: datetime, seconds: int = 120) -> None:
    values = np.full(seconds, 30.0)  # far above the 20 mg/m³ ceiling: pre-exceedance and ceiling
    for i in range(0, seconds, 10):
        await r.publish([gas(f"{DEV}.h2s", start + timedelta(seconds=i), values[i : i + 10])])


async def test_list_acknowledge_resolve_stream_preferences_and_webhooks(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    await register(pg_url, schema, [(f"{DEV}.h2s", "gas", "mg/m3", "H2S")])
    hooked: list[tuple[bytes, str]] = []
    receiver = FastAPI()

    @receiver.post("/hook")
    async def hook(request: Request) -> dict[str, str]:
        hooked.append((await request.body(), request.headers[SIGNATURE_HEADER]))
        return {"ok": "yes"}

    api = create_app(
        ApiSettings(
            database_url=pg_url,
            database_schema=schema,
            mqtt_url=mqtt_url,
            topic_prefix=topic_prefix,
            api_sse_keepalive_s=0.5,
        ),
        render_report=render_report,
    )
    start = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        admin, _ = await create_token(conn, name="alerts test", role=Role.ADMIN)
    async with (
        serve(receiver) as hook_base,
        serve(api) as base,
        httpx.AsyncClient(
            base_url=base, timeout=10, headers={"Authorization": f"Bearer {admin}"}
        ) as http,
    ):
        put = await http.put(
            "/api/v1/alerts/preferences/role/inspector",
            json={"min_severity": "critical", "kinds": ["ceiling"]},
        )
        assert put.status_code == 200, put.text
        # The inspectors' webhook: no filter of its own, the role's preferences apply.
        created = await http.post(
            "/api/v1/alerts/webhooks",
            json={
                "url": f"{hook_base}/hook",
                "secret": SECRET,
                "subscriber_kind": "role",
                "subscriber": "inspector",
            },
        )
        assert created.status_code == 201, created.text
        assert "secret" not in created.json()
        (listed_hook,) = (await http.get("/api/v1/alerts/webhooks")).json()
        assert listed_hook["min_severity"] == "critical"
        assert listed_hook["kinds"] == ["ceiling"]
        hub = api.state.alert_hub
        await eventually(hub.connected.is_set, what="API on MQTT")
        streams_before = hub.subscriber_count()

        everything: list[dict[str, Any]] = []
        inspector: list[dict[str, Any]] = []
        streams = [
            asyncio.create_task(read_sse(http, "/api/v1/alerts/stream", everything)),
            asyncio.create_task(
                read_sse(
                    http,
                    "/api/v1/alerts/stream?subscriber=inspector&subscriber_kind=role",
                    inspector,
                )
            ),
        ]
        await eventually(
            lambda: hub.subscriber_count() == streams_before + 2, what="both streams subscribed"
        )
        async with rig(pg_url, mqtt_url, schema, topic_prefix, with_ingest=False) as r:
            await eventually(lambda: bool(r.engine.webhooks.hooks), what="webhooks loaded")
            await leak(r, start)
            await eventually(
                lambda: {e["kind"] for e in everything} >= {"ceiling", "pre_exceedance"},
                what="both alerts on the stream",
            )
            ceiling = next(e for e in everything if e["kind"] == "ceiling")
            ident = ceiling["alert_id"]

            async def listed() -> bool:
                body = (await http.get("/api/v1/alerts", params={"state": "active"})).json()
                return ident in {a["alert_id"] for a in body["items"]}

            await eventually(listed, what="the ceiling alert listed")
            unack = (await http.get("/api/v1/alerts", params={"unacknowledged": "true"})).json()
            assert {a["kind"] for a in unack["items"]} == {"ceiling", "pre_exceedance"}
            only = (
                await http.get(
                    "/api/v1/alerts", params={"kind": "ceiling", "min_severity": "critical"}
                )
            ).json()
            assert [a["alert_id"] for a in only["items"]] == [ident]

            ack = await http.post(
                f"/api/v1/alerts/{ident}/acknowledge",
                json={"by": "aigerim", "comment": "gas at the face", "action": "evacuated it"},
            )
            assert ack.status_code == 200, ack.text
            assert ack.json()["state"] == "acknowledged"
            assert ack.json()["acknowledged_by"] == "aigerim"
            again = await http.post(f"/api/v1/alerts/{ident}/acknowledge", json={"by": "x"})
            assert again.status_code == 409

            def engine_knows() -> bool:
                state = next(iter(r.engine.states.values()))
                slot, k = state.cells.by_id[ident]
                return int(state.cells.status[slot, k]) == ACKNOWLEDGED

            await eventually(engine_knows, what="the engine to learn of the acknowledgement")
            done = await http.post(f"/api/v1/alerts/{ident}/resolve", json={"by": "aigerim"})
            assert done.status_code == 200, done.text
            assert done.json()["state"] == "resolved"
            await eventually(
                lambda: ident not in next(iter(r.engine.states.values())).cells.by_id,
                what="the engine to drop the resolved alert",
            )
            await eventually(lambda: len(hooked) >= 1, what="the webhook delivery")
        detail = (await http.get(f"/api/v1/alerts/{ident}")).json()
        assert [h["transition"] for h in detail["history"] if h["transition"] != "escalated"] == [
            "opened",
            "acknowledged",
            "resolved",
        ]
        assert [h["source"] for h in detail["history"]][-2:] == ["api", "api"]
        await eventually(
            lambda: (
                [e["transition"] for e in inspector if e["alert_id"] == ident]
                == ["opened", "acknowledged", "resolved"]
            ),
            what="the person's transitions on the stream",
        )
        for task in streams:
            task.cancel()
    # The inspector role asked for critical ceilings only.
    assert {e["kind"] for e in inspector} == {"ceiling"}
    assert {e["kind"] for e in everything} >= {"ceiling", "pre_exceedance"}
    body, header = hooked[0]
    assert verify(SECRET, header, body, now=time.time())
    assert not verify("another-secret-entirely", header, body, now=time.time())
    assert {json.loads(b)["kind"] for b, _ in hooked} == {"ceiling"}


async def test_an_alert_id_must_be_a_uuid(api: Api) -> None:
    """A malformed id is refused by validation, naming the parameter; a well-formed one that
    names no alert is 404; any spelling of a uuid finds the alert under its canonical id."""
    tenant = await make_tenant(api, "kz-uuid", "KZ-ABA")
    admin = api.tokens["admin"]
    for method, path, body in [
        ("GET", "/api/v1/alerts/not-a-uuid", None),
        ("POST", "/api/v1/alerts/not-a-uuid/acknowledge", {"by": "aigerim"}),
        ("POST", "/api/v1/alerts/not-a-uuid/resolve", {"by": "aigerim"}),
    ]:
        refused = await api.call(method, path, admin, json=body)
        assert refused.status_code == 422, (path, refused.text)
        assert refused.json()["errors"][0]["loc"] == ["path", "alert_id"]
        assert "alert_id" in refused.json()["detail"]
    unknown = str(uuid.uuid4())
    missing = await api.call("GET", f"/api/v1/alerts/{unknown}", admin)
    assert missing.status_code == 404
    assert unknown in missing.json()["detail"]
    gone = await api.call("POST", f"/api/v1/alerts/{unknown}/resolve", admin, json={"by": "a"})
    assert gone.status_code == 404
    spelled = tenant.alert_id.upper().replace("-", "")
    found = await api.ok("GET", f"/api/v1/alerts/{spelled}", admin)
    assert found["alert_id"] == tenant.alert_id
    acknowledged = await api.ok(
        "POST",
        f"/api/v1/alerts/{spelled}/acknowledge",
        admin,
        json={"by": "aigerim", "action": "checked the sensor"},  # needed for a critical alert
    )
    assert acknowledged["alert_id"] == tenant.alert_id
    assert acknowledged["state"] == "acknowledged"
