"""One truth per shift: readings through a real Mosquitto and ingest into PostgreSQL, the
assessment service, and every surface (the API's exposure, history, ПР and export, the report
model, the Grafana view) shows the same class, В and metrics for every shift: a night shift across
a clock change, a shift with too little data, and a shift recomputed after late readings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

import aiomqtt
import pytest

from analytics import load_norms
from analytics.alerts import load_alert_norms
from api.settings import ApiSettings
from application.reports import shift_report
from application.schedule import Schedule, Shift, shift
from ingest.service import IngestWorker
from ingest.settings import IngestSettings
from store import catalog
from store.auth import Role, create_token
from store.catalog import Scope
from store.connection import connect_async
from tests.api.conftest import in_process
from tests.support import assess_now, eventually, rows, scalar
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import Channel, ReadingsMessage, encode_readings, readings_topic

pytestmark = [pytest.mark.anyio, pytest.mark.services]

# Clocks in New York go back from 02:00 EDT to 01:00 EST on 2026-11-01: the night shift that
# starts at 19:00 on 31 October lasts its 12 h and ends at 06:00 local time.
ZONE = "America/New_York"
SCHEDULE = Schedule.of([time(7, 0), time(19, 0)], 12 * 3600, ZONE)
NIGHT = shift(SCHEDULE, date(2026, 10, 31), 2)
DAY = shift(SCHEDULE, date(2026, 11, 1), 1)
SHORT = shift(SCHEDULE, date(2026, 11, 1), 2)  # two hours measured: not enough data
ENTERPRISE = "truth-ent"
DEVICE = "truth-dev"
PERIOD_S = 10.0
PER_MESSAGE = 360  # one hour at 10 s


@dataclass
class Plan:
    s: Shift
    noise_db: float
    co_mg_m3: float
    hours: float


PLANS = [Plan(NIGHT, 91.0, 12.0, 12.0), Plan(DAY, 84.0, 30.0, 12.0), Plan(SHORT, 99.0, 5.0, 2.0)]


def messages(plan: Plan, first_seq: int, level_db: float | None = None) -> list[ReadingsMessage]:
    """The plan's readings, an hour to a message, at 10 s (noise) and 30 s (CO)."""
    found = []
    for hour in range(int(plan.hours)):
        t0 = plan.s.start + timedelta(hours=hour)
        noise = level_db if level_db is not None else plan.noise_db
        found.append(
            ReadingsMessage(
                device=DEVICE,
                seq=first_seq + hour,
                channels=[
                    Channel(
                        sensor=f"{DEVICE}.noise",
                        quantity="noise_laeq",
                        unit="dB(A)",
                        t0=t0,
                        period_s=PERIOD_S,
                        values=[noise + 0.1 * (i % 3) for i in range(PER_MESSAGE)],
                    ),
                    Channel(
                        sensor=f"{DEVICE}.co",
                        quantity="gas",
                        unit="mg/m3",
                        substance="CO",
                        t0=t0,
                        period_s=3 * PERIOD_S,
                        values=[plan.co_mg_m3] * (PER_MESSAGE // 3),
                    ),
                ],
            )
        )
    return found


@dataclass
class Stack:
    http: Any
    officer: str
    admin: str
    workplace: dict[str, Any]
    pg_url: str
    schema: str
    mqtt_url: str
    prefix: str

    async def publish(self, batch: list[ReadingsMessage]) -> None:
        endpoint = MqttEndpoint.parse(self.mqtt_url)
        async with aiomqtt.Client(endpoint.host, endpoint.port) as client:
            for m in batch:
                topic = readings_topic(self.prefix, ENTERPRISE, DEVICE)
                await client.publish(topic, encode_readings(m), qos=1)

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.http.get(
            path, params=params, headers={"Authorization": f"Bearer {self.officer}"}
        )
        assert response.status_code == 200, (path, response.text)
        return response.json()


@pytest.fixture
async def stack(pg_url: str, mqtt_url: str, schema: str, topic_prefix: str) -> AsyncIterator[Stack]:
    settings = ApiSettings(
        database_url=pg_url, database_schema=schema, api_alert_stream=False, api_live_stream=False
    )
    async with in_process(settings) as (_, http):
        async with await connect_async(pg_url, schema, autocommit=True) as conn:
            admin, _ = await create_token(conn, name="admin", role=Role.ADMIN)
        auth = {"Authorization": f"Bearer {admin}"}

        async def post(path: str, body: dict[str, Any], token: dict[str, str]) -> Any:
            response = await http.post(path, json=body, headers=token)
            assert response.status_code == 201, (path, response.text)
            return response.json()

        enterprise = await post(
            "/api/v1/enterprises",
            {
                "code": ENTERPRISE,
                "name": "Truth LLP",
                "region": "Karaganda",
                "timezone": ZONE,
                "activity_risk_class": 14,
            },
            auth,
        )
        eid = enterprise["id"]
        async with await connect_async(pg_url, schema, autocommit=True) as conn:
            officer, _ = await create_token(
                conn, name="officer", role=Role.SAFETY_OFFICER, enterprise_id=eid
            )
        mine = {"Authorization": f"Bearer {officer}"}
        workplace = await post(
            f"/api/v1/enterprises/{eid}/workplaces",
            {
                "code": "kiln",
                "name": "Kiln",
                "headcount": 6,
                "shift_starts": ["07:00", "19:00"],
                "shift_duration_s": 43200,
            },
            mine,
        )
        device = await post(
            f"/api/v1/enterprises/{eid}/devices",
            {"code": DEVICE, "workplace_id": workplace["id"]},
            mine,
        )
        for code, fields in (
            ("noise", {"quantity": "noise_laeq", "unit": "dB(A)"}),
            ("co", {"quantity": "gas", "unit": "mg/m3", "substance": "CO"}),
        ):
            await post(
                f"/api/v1/devices/{device['id']}/sensors",
                {"code": f"{DEVICE}.{code}", **fields},
                mine,
            )
        for name, value in {"T": 3, "Ob": 2, "SIZ": 2, "Z": 1}.items():
            await post(
                f"/api/v1/workplaces/{workplace['id']}/indicators",
                {
                    "indicator": name,
                    "value": value,
                    "assessed_by": "OSH engineer",
                    "assessed_on": "2026-10-01",
                },
                mine,
            )
        yield Stack(http, officer, admin, workplace, pg_url, schema, mqtt_url, topic_prefix)


async def surfaces(stack: Stack, s: Shift) -> dict[str, tuple[Any, ...]]:
    """(class, В, continuous В, LEX,8h, TWA, not enough data) of shift ``s`` on every surface."""
    wid = stack.workplace["id"]
    base = f"/api/v1/workplaces/{wid}"
    params = {"date": s.day.isoformat(), "shift": s.number}
    exposure = await stack.get(f"{base}/exposure", **params)
    history = await stack.get(
        f"{base}/exposure/history", **{"from": s.day.isoformat(), "to": s.day.isoformat()}
    )
    (summary,) = [x for x in history["shifts"] if x["shift"] == s.number]
    risk = await stack.get(f"{base}/risk", **params)
    by_sensor = {x["sensor"]: x["metrics"] for x in exposure["sensors"]}
    lex = by_sensor[f"{DEVICE}.noise"]["lex8h_db"]
    twa = by_sensor[f"{DEVICE}.co"]["twa8h_mg_m3"]
    # The history's charts draw the per-sensor metrics it carries: they must be the same.
    in_history = {x["sensor"]: x["metrics"] for x in summary["sensors"]}
    found: dict[str, tuple[Any, ...]] = {
        "exposure": (
            exposure["working_class"],
            exposure["B"],
            exposure["B_continuous"],
            lex,
            twa,
            exposure["not_enough_data"],
        ),
        "history": (
            summary["working_class"],
            summary["B"],
            summary["B_continuous"],
            in_history[f"{DEVICE}.noise"]["lex8h_db"],
            in_history[f"{DEVICE}.co"]["twa8h_mg_m3"],
            summary["not_enough_data"],
        ),
        "risk": (
            risk["B_source"]["working_class"],
            risk["B"],
            risk["B_source"]["B_continuous"],
            lex,
            twa,
            risk["B_source"]["insufficient_data"],
        ),
    }
    async with await connect_async(stack.pg_url, stack.schema, autocommit=True) as conn:
        (w,) = await catalog.workplaces_of(conn, Scope(), ids=[wid])
        enterprise = await catalog.require(conn, "enterprise", w["enterprise_id"], Scope())
        report = await shift_report(
            conn,
            load_norms("default"),
            load_alert_norms("default"),
            w,
            enterprise,
            s,
            late_s=45 * 86_400.0,
        )
    metrics = {x.sensor: x.metrics for x in report.sensors}
    found["report"] = (
        report.working_class,
        report.b,
        report.b_continuous,
        metrics[f"{DEVICE}.noise"]["lex8h_db"],
        metrics[f"{DEVICE}.co"]["twa8h_mg_m3"],
        report.insufficient_data,
    )
    grafana = dict(
        rows(
            stack.pg_url,
            stack.schema,
            "SELECT sensor, coalesce(lex8h_db, twa8h_mg_m3) FROM shift_assessment_sensors "
            "WHERE workplace_id = %s AND shift_start = %s",
            [wid, s.start],
        )
    )
    head = rows(
        stack.pg_url,
        stack.schema,
        "SELECT working_class, b, b_continuous, insufficient_data FROM shift_assessments "
        "WHERE workplace_id = %s AND shift_start = %s",
        [wid, s.start],
    )[0]
    found["grafana"] = (
        head[0],
        head[1],
        round(head[2], 6),
        grafana[f"{DEVICE}.noise"],
        grafana[f"{DEVICE}.co"],
        head[3],
    )
    return found


def agree(found: dict[str, tuple[Any, ...]]) -> tuple[Any, ...]:
    values = set(found.values())
    assert len(values) == 1, found
    return values.pop()


async def test_every_surface_shows_the_same_shift(stack: Stack) -> None:
    assert NIGHT.end - NIGHT.start == timedelta(hours=12)
    assert NIGHT.end.astimezone(DAY.start.tzinfo).hour == 11  # 06:00 EST = 11:00 UTC
    # ingest accepts readings this old here (the DST change is more than 28 days back).
    stop = asyncio.Event()
    worker = IngestWorker(
        IngestSettings(
            database_url=stack.pg_url,
            database_schema=stack.schema,
            mqtt_url=stack.mqtt_url,
            topic_prefix=stack.prefix,
            ingest_client_id=f"truth-{stack.prefix}",
            ingest_max_past_s=45 * 86_400.0,
            db_dedupe_horizon="60 days",
        )
    )
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.subscribed.wait(), 15)
        seq = 0
        batch: list[ReadingsMessage] = []
        for plan in PLANS:
            batch += messages(plan, seq)
            seq += 100
        await stack.publish(batch)
        expected = sum(len(c.values) for m in batch for c in m.channels)
        await eventually(
            lambda: scalar(stack.pg_url, stack.schema, "SELECT count(*) FROM readings") == expected,
            what=f"{expected} readings stored",
        )
        assert await assess_now(stack.pg_url, stack.schema) == len(PLANS)
        first = {plan.s: agree(await surfaces(stack, plan.s)) for plan in PLANS}
        night, day, short = (first[p.s] for p in PLANS)
        assert night[:2] == ("3.2", 3)  # 91 dB(A) over the whole 12-h shift
        assert night[5] is False
        assert day[5] is False
        assert short[5] is True, "two hours of a 12-h shift are not enough data"
        assert night[3] > day[3]

        # Late readings: a louder hour arrives for the day shift, long after it ended. Its
        # stored assessment is recomputed, and every surface moves with it.
        await stack.publish(messages(Plan(DAY, 84.0, 30.0, 1.0), 10_000, level_db=104.0))
        await eventually(
            lambda: scalar(stack.pg_url, stack.schema, "SELECT count(*) FROM readings") > expected,
            what="the late readings stored",
        )
        assert await assess_now(stack.pg_url, stack.schema) == 1, "only the day shift changes"
        later = agree(await surfaces(stack, DAY))
        assert later[3] > day[3], "the late hour raised LEX,8h"
        for plan in (PLANS[0], PLANS[2]):
            assert agree(await surfaces(stack, plan.s)) == first[plan.s]

        # The export's row is the worst shift of the period, as /risk of the period says.
        period = {"from": NIGHT.day.isoformat(), "to": SHORT.day.isoformat()}
        export = await stack.get("/api/v1/export/workplaces", **period)
        (row,) = export["rows"]
        risk = await stack.get(f"/api/v1/workplaces/{stack.workplace['id']}/risk", **period)
        assert (row["b"], row["b_class"], row["b_date"], row["b_shift"]) == (
            risk["B"],
            risk["B_source"]["working_class"],
            risk["B_source"]["date"],
            risk["B_source"]["shift"],
        )
        assert row["b_not_enough_data"] is False, "a shift with enough data sets В"
        assert row["pr"] == round(risk["pr"], 6)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
