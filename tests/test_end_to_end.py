"""A reading travels from a simulated instrument through a real Mosquitto into a real PostgreSQL
and out of the API, and the count is exact."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.settings import ApiSettings
from dashboards.reports import render as render_report
from edge.agent import EdgeAgent
from edge.settings import EdgeSettings
from firmware_sim.device import standard_device
from ingest.service import IngestWorker
from ingest.settings import IngestSettings
from qorgau.demo import EmbeddedServer, register_device
from qorgau.localservices import free_port
from store.auth import Role, create_token
from store.connection import connect_async
from tests.support import assess_now, count_readings, eventually

pytestmark = [pytest.mark.anyio, pytest.mark.services]

SECONDS = 120


async def test_simulated_readings_arrive_exactly_once_at_the_api(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str, tmp_path: Path
) -> None:
    start = (datetime.now(UTC) - timedelta(minutes=30)).replace(microsecond=0)
    device = standard_device("e2e-dev", start, seed=7)
    await register_device(pg_url, schema, device, enterprise="e2e-ent")
    expected = SECONDS * len(device.channels())

    stop = asyncio.Event()
    worker = IngestWorker(
        IngestSettings(
            database_url=pg_url,
            database_schema=schema,
            mqtt_url=mqtt_url,
            topic_prefix=topic_prefix,
            ingest_client_id=f"ingest-{topic_prefix}",
        )
    )
    ingest_task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(worker.subscribed.wait(), 10)

    agent = EdgeAgent(
        EdgeSettings(
            mqtt_url=mqtt_url,
            topic_prefix=topic_prefix,
            enterprise="e2e-ent",
            edge_outbox_dir=tmp_path / "outbox",
        ),
        device,
    )
    for second in range(1, SECONDS + 1):
        agent.collect(start + timedelta(seconds=second))
    assert agent.outbox.pending() == SECONDS
    agent.start()
    await asyncio.to_thread(agent.stop, 30.0)

    await eventually(
        lambda: count_readings(pg_url, schema) == expected,
        what=f"{expected} readings in the database",
    )

    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        token, _ = await create_token(conn, name="e2e", role=Role.INSPECTOR, regions=["Karaganda"])
        admin, _ = await create_token(conn, name="e2e admin", role=Role.ADMIN)
    auth = {"Authorization": f"Bearer {token}"}

    port = free_port()
    server = EmbeddedServer(
        uvicorn.Config(
            create_app(
                ApiSettings(database_url=pg_url, database_schema=schema),
                render_report=render_report,
            ),
            host="127.0.0.1",
            port=port,
            log_config=None,
        )
    )
    api_task = asyncio.create_task(server.serve())
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=10, headers=auth
        ) as http:
            await eventually(lambda: server.started, what="API start")
            assert (
                await http.get("/api/v1/sensors", headers={"Authorization": ""})
            ).status_code == 401
            listing = (await http.get("/api/v1/sensors")).json()["items"]
            assert {s["code"] for s in listing} == {c.sensor for c in device.channels()}
            total = 0
            for sensor in listing:
                response = await http.get(
                    f"/api/v1/sensors/{sensor['id']}/readings",
                    params={
                        "from": start.isoformat(),
                        "to": (start + timedelta(seconds=SECONDS + 1)).isoformat(),
                    },
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["unit"] == sensor["unit"]
                assert body["count"] == SECONDS, sensor["code"]
                assert body["times"] == sorted(body["times"])
                total += body["count"]
            assert total == expected

            # ПР of the workplace: its shift moved to cover the readings, assessor inputs
            # entered over HTTP, В from the measured data, ПР read back.
            as_admin = {"Authorization": f"Bearer {admin}"}
            sensor = listing[0]
            wp_path = f"/api/v1/workplaces/{sensor['workplace_id']}"
            local = start.astimezone(ZoneInfo("Asia/Almaty"))
            patched = await http.patch(
                wp_path, json={"shift_starts": [local.strftime("%H:%M")]}, headers=as_admin
            )
            assert patched.status_code == 200, patched.text
            for name, value in {"T": 4, "Ob": 2, "SIZ": 3, "Z": 1}.items():
                entered = await http.post(
                    f"{wp_path}/indicators",
                    json={
                        "indicator": name,
                        "value": value,
                        "assessed_by": "e2e",
                        "assessed_on": local.date().isoformat(),
                    },
                    headers=as_admin,
                )
                assert entered.status_code == 201, entered.text
            # The assessment service (one pass here) stores the shift under the new schedule.
            assert await assess_now(pg_url, schema) >= 1
            risk = await http.get(
                f"{wp_path}/risk", params={"date": local.date().isoformat(), "shift": 1}
            )
            assert risk.status_code == 200, risk.text
            body = risk.json()
            assert 1 <= body["B"] <= 5
            assert body["B_source"]["insufficient_data"] is True  # two minutes of a shift
            expected_pr = 0.7 * (body["B"] + 4) / 2 + 0.2 * (2 + 3) / 2 + 0.1 * 1
            assert body["pr"] == pytest.approx(expected_pr, abs=1e-9)
    finally:
        server.should_exit = True
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(api_task, ingest_task), 30)
