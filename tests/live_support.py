"""A running API over a real database and broker with one simulated workplace that has
readings for the last minutes, for the live API and browser tests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.settings import ApiSettings
from dashboards.reports import render as render_report
from firmware_sim.device import standard_device
from qorgau.demo import EmbeddedServer, prepare_api_access, register_device
from qorgau.localservices import free_port
from store.alerts import record_of, write_transitions
from store.connection import connect_async
from store.registry import enterprise_timezone, set_shift_schedule, workplace_by_codes
from tests.sim_support import store_readings
from tests.support import eventually
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import Channel, ReadingsMessage, encode_readings, readings_topic
from vocabulary.protocol.alerts import AlertMessage
from vocabulary.protocol.quantities import Quantity

ENTERPRISE = "lw-ent"
WORKPLACE = "face"
DEVICE = "lw-dev-1"
NOISE = f"{DEVICE}.noise"


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    server = EmbeddedServer(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            # Open event streams (a browser left on a live page) must not hold the shutdown.
            timeout_graceful_shutdown=2,
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, what="server start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@dataclass
class World:
    base: str
    app: FastAPI
    pg_url: str
    schema: str
    mqtt_url: str
    prefix: str
    admin: str
    officer: str
    workplace_id: int
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(10**12))

    async def publish(self, channels: list[Channel], device: str = DEVICE) -> None:
        endpoint = MqttEndpoint.parse(self.mqtt_url)
        message = ReadingsMessage(device=device, seq=next(self.seq), channels=channels)
        async with aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=f"pub-{uuid.uuid4().hex[:8]}",
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as client:
            topic = readings_topic(self.prefix, ENTERPRISE, device)
            await client.publish(topic, encode_readings(message), qos=1)

    async def watching(self) -> None:
        """Wait until the API is subscribed to the device's readings for a live viewer."""
        hub = self.app.state.readings_hub
        topic = readings_topic(self.prefix, ENTERPRISE, DEVICE)
        await eventually(
            lambda: hub.connected.is_set() and topic in hub.topics(),
            what="the API subscribed to the device's readings",
        )

    async def alert(self, *, severity: str = "high", kind: str = "projected_exposure") -> str:
        """An open alert of the workplace's noise sensor, as the engine would store it."""
        ident = str(uuid.uuid4())
        now = datetime.now(UTC)
        opened = AlertMessage(
            alert_id=ident,
            transition="opened",
            state="open",
            kind=kind,
            severity=severity,
            enterprise=ENTERPRISE,
            device=DEVICE,
            sensor=NOISE,
            workplace=WORKPLACE,
            quantity="noise_laeq",
            value=88.4,
            unit="dB(A)",
            threshold=85.0,
            threshold_unit="dB(A)",
            time_left_s=5400.0,
            message=f"at the current level sensor {NOISE} at workplace {WORKPLACE} ends the "
            "shift at LEX,8h 88.4 dB(A), over 85 dB(A)",
            at=now,
            opened_at=now,
            sent_at=now,
        )
        conn = await connect_async(self.pg_url, self.schema, autocommit=True)
        async with conn:
            await write_transitions(conn, [record_of(opened)])
        return ident


def noise(t0: datetime, values: list[float], sensor: str = NOISE) -> Channel:
    return Channel(
        sensor=sensor,
        quantity=Quantity.NOISE_LAEQ,
        unit="dB(A)",
        t0=t0,
        period_s=1.0,
        values=values,
    )


async def hold_the_window_in_one_shift(pg_url: str, schema: str, start: datetime) -> None:
    """Round-the-clock 8-h shifts, one of them starting at ``start``: the demo's shifts start
    at fixed hours, and a test run minutes after one of them would find the readings of the
    last minutes split over two shifts."""
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        found = await workplace_by_codes(conn, ENTERPRISE, WORKPLACE)
        assert found is not None
        enterprise_id, workplace_id = found
        zone = await enterprise_timezone(conn, enterprise_id)
        assert zone is not None
        first = start.astimezone(ZoneInfo(zone)).replace(second=0, microsecond=0)
        starts = sorted((first + timedelta(hours=8 * k)).time() for k in range(3))
        await set_shift_schedule(conn, workplace_id, starts, 8 * 3600)


@contextlib.asynccontextmanager
async def live_world(
    pg_url: str,
    mqtt_url: str,
    schema: str,
    prefix: str,
    *,
    minutes: float = 15.0,
    exposure_every_s: float = 10.0,
    **api_settings: Any,
) -> AsyncIterator[World]:
    now = datetime.now(UTC).replace(microsecond=0)
    device = standard_device(DEVICE, now - timedelta(minutes=minutes), seed=3)
    await register_device(
        pg_url,
        schema,
        device,
        enterprise=ENTERPRISE,
        enterprise_name="Live test mine",
        workplace=WORKPLACE,
        workplace_name="Longwall face",
    )
    access = await prepare_api_access(pg_url, schema, enterprise=ENTERPRISE, workplace=WORKPLACE)
    await hold_the_window_in_one_shift(pg_url, schema, now - timedelta(minutes=minutes + 30))
    await store_readings(pg_url, schema, [device], now)
    app = create_app(
        ApiSettings(
            database_url=pg_url,
            database_schema=schema,
            mqtt_url=mqtt_url,
            topic_prefix=prefix,
            api_live_exposure_s=exposure_every_s,
            api_sse_keepalive_s=1.0,
            **api_settings,
        ),
        render_report=render_report,
    )
    async with serve(app) as base:
        await eventually(lambda: app.state.alert_hub.connected.is_set(), what="alert hub")
        yield World(
            base,
            app,
            pg_url,
            schema,
            mqtt_url,
            prefix,
            access.admin_token,
            access.officer_token,
            access.workplace_id,
        )
