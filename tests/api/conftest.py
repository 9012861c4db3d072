"""An API on a fresh schema, driven in-process through ASGI, and a world of two tenants."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.settings import ApiSettings
from dashboards.reports import render as render_report
from store.alerts import record_of, write_transitions
from store.auth import Role, create_token
from store.connection import connect_async
from tests.support import assess_now
from vocabulary.protocol.alerts import AlertMessage


@dataclass
class Api:
    app: FastAPI
    http: httpx.AsyncClient
    pg_url: str
    schema: str
    tokens: dict[str, str] = field(default_factory=dict)

    async def token(
        self,
        role: Role,
        *,
        enterprise_id: int | None = None,
        regions: tuple[str, ...] = (),
        name: str | None = None,
    ) -> str:
        conn = await connect_async(self.pg_url, self.schema, autocommit=True)
        async with conn:
            token, _ = await create_token(
                conn,
                name=name or role.value,
                role=role,
                enterprise_id=enterprise_id,
                regions=regions,
            )
        return token

    async def call(
        self, method: str, path: str, token: str | None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def assess(self) -> int:
        """Let the assessment service store the shifts of what was written since."""
        return await assess_now(self.pg_url, self.schema)

    async def ok(self, method: str, path: str, token: str, **kwargs: Any) -> Any:
        response = await self.call(method, path, token, **kwargs)
        assert response.status_code in (200, 201), (method, path, response.text)
        return response.json()


@contextlib.asynccontextmanager
async def in_process(settings: ApiSettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app of ``settings`` started (its lifespan run) and a client that calls it through
    ASGI, without a server."""
    app = create_app(settings, render_report=render_report)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://qorgau.test", timeout=60
        ) as http,
    ):
        yield app, http


@pytest.fixture
async def api(pg_url: str, schema: str) -> AsyncIterator[Api]:
    settings = ApiSettings(
        database_url=pg_url, database_schema=schema, api_alert_stream=False, api_live_stream=False
    )
    async with in_process(settings) as (app, http):
        client = Api(app, http, pg_url, schema)
        client.tokens["admin"] = await client.token(Role.ADMIN)
        yield client


@dataclass
class Tenant:
    enterprise: dict[str, Any]
    site: dict[str, Any]
    workplace: dict[str, Any]
    device: dict[str, Any]
    sensor: dict[str, Any]
    officer: str
    alert_id: str
    recipient_id: int
    route_id: int

    def ids(self) -> dict[str, int | str]:
        """Path parameter values that name this tenant's objects."""
        return {
            "enterprise_id": self.enterprise["id"],
            "site_id": self.site["id"],
            "workplace_id": self.workplace["id"],
            "device_id": self.device["id"],
            "sensor_id": self.sensor["id"],
            "alert_id": self.alert_id,
            "recipient_id": self.recipient_id,
            "route_id": self.route_id,
            "enterprise": self.enterprise["code"],
        }


async def make_tenant(api: Api, code: str, region: str, risk_class: int | None = 14) -> Tenant:
    admin = api.tokens["admin"]
    enterprise = await api.ok(
        "POST",
        "/api/v1/enterprises",
        admin,
        json={
            "code": code,
            "name": f"{code} LLP",
            "region": region,
            "activity_code": "41.20",
            "activity_risk_class": risk_class,
        },
    )
    eid = enterprise["id"]
    officer = await api.token(Role.SAFETY_OFFICER, enterprise_id=eid, name=f"officer {code}")
    site = await api.ok(
        "POST",
        f"/api/v1/enterprises/{eid}/sites",
        officer,
        json={"code": f"{code}-site", "name": "Site"},
    )
    workplace = await api.ok(
        "POST",
        f"/api/v1/enterprises/{eid}/workplaces",
        officer,
        json={"code": f"{code}-wp", "name": "Face", "site_id": site["id"], "headcount": 10},
    )
    device = await api.ok(
        "POST",
        f"/api/v1/enterprises/{eid}/devices",
        officer,
        json={"code": f"{code}-dev", "workplace_id": workplace["id"]},
    )
    sensor = await api.ok(
        "POST",
        f"/api/v1/devices/{device['id']}/sensors",
        officer,
        json={"code": f"{code}-dev.noise", "quantity": "noise_laeq", "unit": "dB(A)"},
    )
    alert_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    opened = AlertMessage(
        alert_id=alert_id,
        transition="opened",
        state="open",
        kind="ceiling",
        severity="critical",
        enterprise=code,
        device=device["code"],
        sensor=sensor["code"],
        sensor_id=sensor["id"],
        message=f"test alert of {code}",
        at=now,
        opened_at=now,
        sent_at=now,
    )
    conn = await connect_async(api.pg_url, api.schema, autocommit=True)
    async with conn:
        await write_transitions(conn, [record_of(opened)])
    recipient = await api.ok(
        "POST",
        "/api/v1/notifications/recipients",
        officer,
        json={
            "enterprise": code,
            "name": f"officer of {code}",
            "channels": [{"channel": "email", "address": f"hse@{code}.kz"}],
        },
    )
    route = await api.ok(
        "POST",
        "/api/v1/notifications/routes",
        officer,
        json={"enterprise": code, "recipient_id": recipient["id"], "min_severity": "high"},
    )
    await api.ok("PUT", f"/api/v1/notifications/policies/{code}", officer, json={})
    return Tenant(
        enterprise, site, workplace, device, sensor, officer, alert_id, recipient["id"], route["id"]
    )
