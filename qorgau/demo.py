"""``qorgau demo``: the whole pipeline on one machine with embedded defaults.

PostgreSQL and Mosquitto come from ``QORGAU_DATABASE_URL`` / ``QORGAU_MQTT_URL`` when set, else
they are started privately (data under ``.qorgau/demo``) on free ports. Then: schema, a demo
enterprise with one workplace and device, ingest, the alert engine, the API, and the simulated
device at 1 Hz.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import uvicorn

from analytics import load_norms
from api.app import create_app
from api.settings import ApiSettings
from application.assessment_service import AssessmentService
from application.schedule import Schedule, shifts_between, today
from application.settings import AssessmentSettings
from dashboards.reports import render as render_report
from edge.agent import EdgeAgent
from edge.settings import EdgeSettings
from firmware_sim.device import standard_device
from ingest.alerting.service import AlertService
from ingest.alerting.settings import AlertsSettings
from ingest.service import IngestWorker
from ingest.settings import IngestSettings
from qorgau.envfile import DEFAULT_ENV_FILE, ENV_FILE_VARIABLE, export_lines, write_env_file
from qorgau.localservices import LocalMosquitto, LocalPostgres, free_port
from store.assessments import add_indicator, current_indicators
from store.auth import Role, create_token
from store.connection import connect_async
from store.migrate import upgrade_from_settings
from store.registry import (
    enterprise_timezone,
    set_shift_schedule,
    upsert_device_channels,
    upsert_enterprise,
    upsert_workplace,
    workplace_by_codes,
)
from vocabulary.driver import Driver

log = logging.getLogger(__name__)

DEMO_ENTERPRISE = "demo"
DEMO_WORKPLACE = "wp-1"
DEMO_DEVICE = "demo-dev-1"
# Karaganda (latitude, longitude), so that the demo's enterprise is a point on the map.
DEMO_POSITION = (49.80, 73.10)
DEMO_SHIFT_STARTS = [time(0, 0), time(8, 0), time(16, 0)]


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside our event loop: the demo owns the signals, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@dataclass
class DemoServices:
    """Where the demo's database and broker are, and the processes it started for them."""

    database_url: str
    mqtt_url: str
    started: list[LocalPostgres | LocalMosquitto] = field(default_factory=list)

    def stop(self) -> None:
        for service in reversed(self.started):
            service.stop()


def start_services(data_dir: Path) -> DemoServices:
    database_url = os.environ.get("QORGAU_DATABASE_URL")
    mqtt_url = os.environ.get("QORGAU_MQTT_URL")
    started: list[LocalPostgres | LocalMosquitto] = []
    try:
        if not database_url:
            pg = LocalPostgres(data_dir / "postgres")
            pg.start()
            started.append(pg)
            database_url = pg.url
            log.info("started PostgreSQL on 127.0.0.1:%d (data in %s)", pg.port, pg.data_dir)
        if not mqtt_url:
            broker = LocalMosquitto(data_dir / "mosquitto")
            broker.start()
            started.append(broker)
            mqtt_url = broker.url
            log.info("started Mosquitto on 127.0.0.1:%d", broker.port)
    except BaseException:
        for service in reversed(started):
            service.stop()
        raise
    return DemoServices(database_url=database_url, mqtt_url=mqtt_url, started=started)


async def register_device(
    database_url: str,
    schema: str,
    device: Driver,
    *,
    enterprise: str = DEMO_ENTERPRISE,
    enterprise_name: str = "Demo mine",
    workplace: str = DEMO_WORKPLACE,
    workplace_name: str = "Longwall face",
) -> None:
    """Register an enterprise, a workplace and ``device`` with its channels as sensors."""
    conn = await connect_async(database_url, schema, autocommit=True)
    async with conn:
        enterprise_id = await upsert_enterprise(
            conn, enterprise, enterprise_name, "Karaganda", DEMO_POSITION
        )
        workplace_id = await upsert_workplace(
            conn, enterprise_id, workplace, workplace_name, profession="Miner", headcount=12
        )
        await upsert_device_channels(
            conn,
            enterprise_id,
            device,
            name="Simulated multi-gas and noise station",
            workplace_id=workplace_id,
        )


@dataclass(frozen=True)
class DemoAccess:
    """Fresh API tokens for the demo and the ids to try them on."""

    admin_token: str
    officer_token: str
    workplace_id: int
    shift_day: str
    shift_number: int


async def prepare_api_access(
    database_url: str,
    schema: str,
    *,
    enterprise: str = DEMO_ENTERPRISE,
    workplace: str = DEMO_WORKPLACE,
) -> DemoAccess:
    """Mint an admin and a safety-officer token (only their hashes are stored, so each run gets
    new ones) and, once, example assessor inputs so that ПР can be read straight away."""
    conn = await connect_async(database_url, schema, autocommit=True)
    async with conn:
        found = await workplace_by_codes(conn, enterprise, workplace)
        assert found is not None, "register the demo device first"
        enterprise_id, workplace_id = found
        # Round-the-clock shifts, so that the shift in progress always has the live readings.
        await set_shift_schedule(conn, workplace_id, DEMO_SHIFT_STARTS, 28800)
        zone = await enterprise_timezone(conn, enterprise_id)
        assert zone is not None
        now = datetime.now(UTC)
        schedule = Schedule.of(DEMO_SHIFT_STARTS, 28800, zone)
        day = today(schedule, now)
        current = next(
            s
            for s in shifts_between(schedule, day - timedelta(days=1), day)
            if s.start <= now < s.end
        )
        admin, _ = await create_token(conn, name="demo admin", role=Role.ADMIN)
        officer, _ = await create_token(
            conn, name="demo safety officer", role=Role.SAFETY_OFFICER, enterprise_id=enterprise_id
        )
        if not (await current_indicators(conn, [workplace_id])).get(workplace_id):
            for name, value in (("T", 3), ("Ob", 2), ("SIZ", 2), ("Z", 1)):
                await add_indicator(
                    conn,
                    workplace_id,
                    indicator=name,
                    value=value,
                    assessed_by="demo data",
                    assessed_on=day,
                    evidence="invented for the demo",
                    entered_by=None,
                )
    return DemoAccess(admin, officer, workplace_id, current.day.isoformat(), current.number)


async def run_demo(stop: asyncio.Event, data_dir: Path, api_port: int | None = None) -> None:
    services = start_services(data_dir)
    try:
        os.environ.setdefault("QORGAU_DATABASE_URL", services.database_url)
        common: dict[str, Any] = {
            "database_url": services.database_url,
            "mqtt_url": services.mqtt_url,
        }
        ingest_settings = IngestSettings(**common, ingest_client_id="qorgau-demo-ingest")
        api_settings = ApiSettings(
            database_url=services.database_url,
            mqtt_url=services.mqtt_url,
            api_port=api_port if api_port is not None else _api_port(),
        )
        result = await asyncio.to_thread(upgrade_from_settings, ingest_settings)
        log.info("schema ready (backend %s)", result.backend)
        device = standard_device(DEMO_DEVICE, datetime.now(UTC))
        await register_device(services.database_url, ingest_settings.database_schema, device)
        access = await prepare_api_access(services.database_url, ingest_settings.database_schema)

        worker = IngestWorker(ingest_settings)
        ingest_task = asyncio.create_task(worker.run(stop), name="ingest")
        alerts = AlertService(AlertsSettings(**common, alerts_client_id="qorgau-demo-alerts"))
        alerts_task = asyncio.create_task(alerts.run(stop), name="alerts")
        assessment_settings = AssessmentSettings(database_url=services.database_url)
        assessments = AssessmentService(
            assessment_settings, load_norms(assessment_settings.norms_profile)
        )
        assessments_task = asyncio.create_task(assessments.run(stop), name="assessments")
        server = EmbeddedServer(
            uvicorn.Config(
                create_app(api_settings, render_report=render_report),
                host=api_settings.api_host,
                port=api_settings.api_port,
                log_config=None,
            )
        )
        api_task = asyncio.create_task(server.serve(), name="api")

        # The simulated device starts once ingest's shared subscription exists: Mosquitto
        # answers 0x10 (no subscribers) before that and the agent would back off needlessly.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.subscribed.wait(), 15)
        edge_settings = EdgeSettings(
            mqtt_url=services.mqtt_url,
            enterprise=DEMO_ENTERPRISE,
            edge_outbox_dir=data_dir / "edge",
        )
        edge_stop = threading.Event()
        agent = EdgeAgent(edge_settings, device)
        edge_thread = threading.Thread(target=agent.run, args=(edge_stop,), name="edge")
        edge_thread.start()

        base = f"http://{api_settings.api_host}:{api_settings.api_port}"
        wp = f"{base}/api/v1/workplaces/{access.workplace_id}"
        env_file = data_dir / DEFAULT_ENV_FILE.name
        connection = {
            "QORGAU_DATABASE_URL": services.database_url,
            "QORGAU_MQTT_URL": services.mqtt_url,
        }
        write_env_file(env_file, connection)
        found_by_default = env_file.resolve() == DEFAULT_ENV_FILE.resolve()
        paste = export_lines(
            connection if found_by_default else {ENV_FILE_VARIABLE: str(env_file), **connection}
        )
        print(
            f"\nQorgau demo is running.\n"
            f"  dashboard:  {base}/  (sign in with a token below)\n"
            f"  workplace:  {base}/#/workplace/{access.workplace_id}  (live charts)\n"
            f"  API:        {base}/docs  (Authorize with a token below)\n"
            f"  sensors:    {base}/api/v1/sensors\n"
            f"  readings:   {base}/api/v1/sensors/1/readings\n"
            f"  exposure:   {wp}/exposure?date={access.shift_day}&shift={access.shift_number}\n"
            f"  risk (ПР):  {wp}/risk\n"
            f"  map:        {base}/api/v1/map\n"
            f"  alerts:     {base}/api/v1/alerts?state=active\n"
            f"  live:       {base}/api/v1/alerts/stream\n"
            f"  admin token:          {access.admin_token}\n"
            f"  safety officer token: {access.officer_token}  (enterprise {DEMO_ENTERPRISE})\n"
            f'  e.g. curl -H "Authorization: Bearer {access.officer_token}" {wp}/risk\n'
            f"  database:   {services.database_url}\n"
            f"  broker:     {services.mqtt_url}\n"
            f"Other qorgau commands run in this folder find the database and broker in {env_file}"
            f"{'' if found_by_default else f' (with {ENV_FILE_VARIABLE} set)'}; "
            f"elsewhere paste:\n    " + "\n    ".join(paste) + "\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            env_file.unlink(missing_ok=True)
        log.info("stopping: edge agent, ingest, alert engine, assessment service, API")
        edge_stop.set()
        await asyncio.to_thread(edge_thread.join, 15)
        server.should_exit = True
        await asyncio.gather(
            ingest_task, alerts_task, assessments_task, api_task, return_exceptions=True
        )
    finally:
        services.stop()
        log.info("demo stopped")


def _api_port() -> int:
    configured = os.environ.get("QORGAU_API_PORT")
    return int(configured) if configured else 8000 if _port_free(8000) else free_port()


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
