"""Worked ПР cases through the HTTP API: measured readings and assessors' inputs in, ПР, level,
tariff, PPE and guarantees out (DOMAIN.md §3–§4)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from analytics import SensorSeries, assess_workplace, load_norms
from store.auth import Role
from store.connection import connect_async
from store.readings import ReadingBlock, ensure_partitions
from tests.api.conftest import Api, Tenant, make_tenant
from tests.support import write_as_ingest

pytestmark = [pytest.mark.anyio, pytest.mark.services]

DAY = date(2026, 11, 10)
# 08:00 in Asia/Almaty (UTC+5), the default shift start.
SHIFT_START = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
PERIOD_S = 10.0


async def write_shift(
    api: Api, sensor_id: int, level_db: float, *, hours: float = 8.0, days_later: int = 0
) -> None:
    """A constant level through the shift, one sample every 10 s (written with ingest's COPY)."""
    n = int(hours * 3600 / PERIOD_S)
    start = SHIFT_START + timedelta(days=days_later)
    rows = [(start + timedelta(seconds=i * PERIOD_S), sensor_id, level_db) for i in range(n)]
    conn = await connect_async(api.pg_url, api.schema, autocommit=True)
    async with conn:
        await ensure_partitions(conn, rows[0][0], rows[-1][0])
        async with conn.transaction():
            await write_as_ingest(conn, ReadingBlock.from_rows(rows))
    await api.assess()


async def enter_indicators(api: Api, tenant: Tenant, **values: int) -> None:
    for name, value in values.items():
        await api.ok(
            "POST",
            f"/api/v1/workplaces/{tenant.workplace['id']}/indicators",
            tenant.officer,
            json={
                "indicator": name,
                "value": value,
                "assessed_by": "OSH engineer",
                "assessed_on": "2026-11-01",
                "evidence": "checklist 1",
            },
        )


async def risk(api: Api, tenant: Tenant, **params: Any) -> dict[str, Any]:
    return await api.ok(  # type: ignore[no-any-return]
        "GET", f"/api/v1/workplaces/{tenant.workplace['id']}/risk", tenant.officer, params=params
    )


async def test_domain_worked_case_pr_3_05_level_3(api: Api) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty")
    await write_shift(api, tenant.sensor["id"], 90.0)
    exposure = await api.ok(
        "GET",
        f"/api/v1/workplaces/{tenant.workplace['id']}/exposure",
        tenant.officer,
        params={"date": DAY.isoformat(), "shift": 1},
    )
    assert exposure["working_class"] == "3.2"
    assert exposure["B"] == 3
    # 90 dB(A) is halfway through the 3.2 band (85, 95]: continuous В 3.5.
    assert exposure["B_continuous"] == pytest.approx(3.5, abs=1e-6)
    (noise,) = exposure["sensors"]
    assert noise["metrics"]["lex8h_db"] == pytest.approx(90.0, abs=1e-6)
    assert noise["metrics"]["coverage"] == pytest.approx(1.0, abs=1e-3)
    assert exposure["deciding_factors"] == ["noise"]

    missing = await api.call(
        "GET",
        f"/api/v1/workplaces/{tenant.workplace['id']}/risk",
        tenant.officer,
        params={"date": DAY.isoformat()},
    )
    assert missing.status_code == 409
    assert "T, Ob, SIZ, Z" in missing.json()["detail"]

    await enter_indicators(api, tenant, T=4, Ob=2, SIZ=3, Z=1)
    body = await risk(api, tenant, date=DAY.isoformat(), shift=1)
    assert body["B"] == 3
    assert body["pr"] == pytest.approx(3.05, abs=1e-9)
    assert body["level"] == 3
    assert body["level_name"] == "moderate"
    assert body["level_names"]["ru"] == "Средний"  # as the seed's slide names level 3
    assert body["level_names"]["en"] == body["level_name"]
    assert body["protection_class"] == "C"
    assert body["B_source"]["deciding_factors"] == ["noise"]
    contributions = {c["indicator"]: c["contribution"] for c in body["contributions"]}
    assert contributions == pytest.approx(
        {"В": 1.05, "Т": 1.4, "Об": 0.2, "СИЗ": 0.3, "З": 0.1}, abs=1e-9
    )
    assert body["ppe"] == [
        {
            "factor": "noise",
            "ppe_group": "noise",
            "working_class": "3.2",
            "level": 3,
            "recommendation": "anti-noise earmuffs",
        }
    ]
    assert "milk or equivalent food products" in body["social_guarantees"]
    # Class 14 (residential construction, 1.55 %) at level 3: × 1.3.
    assert body["tariff"]["tariff_pct"] == pytest.approx(2.015, abs=1e-9)

    # Over a period, В is that of the worst shift; the quiet days around it don't lower it.
    period = await risk(api, tenant, **{"from": "2026-11-08", "to": "2026-11-12"})
    assert period["pr"] == pytest.approx(3.05, abs=1e-9)
    assert period["B_source"]["date"] == DAY.isoformat()


async def test_tariff_level_4_gives_2_17_pct(api: Api) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty", risk_class=14)
    await write_shift(api, tenant.sensor["id"], 110.0)  # class 3.4 → В 5
    await enter_indicators(api, tenant, T=5, Ob=3, SIZ=3, Z=1)  # ПР 4.2
    body = await risk(api, tenant, date=DAY.isoformat())
    assert body["B"] == 5
    assert body["pr"] == pytest.approx(4.2, abs=1e-9)
    assert body["level"] == 4
    reference = body["tariff"].pop("base_rate_reference")
    assert "class 14" in reference
    assert "[seed]" in reference
    assert body["tariff"] == {
        "base_rate_pct": 1.55,
        "coefficient": 1.4,
        "tariff_pct": pytest.approx(2.17, abs=1e-9),
        "activity_risk_class": 14,
        "base_rate_source": "norms",
        "base_rate_is_default": False,  # class 14 is the seed's own example
    }
    enterprise = await api.ok(
        "GET",
        f"/api/v1/enterprises/{tenant.enterprise['id']}/risk",
        tenant.officer,
        params={"from": DAY.isoformat(), "to": DAY.isoformat()},
    )
    assert enterprise["level"] == 4
    assert enterprise["tariff"]["tariff_pct"] == pytest.approx(2.17, abs=1e-9)


async def test_tariff_level_2_gives_1_86_pct(api: Api) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty", risk_class=None)
    await api.ok(  # the enterprise's own base rate instead of its class
        "PATCH",
        f"/api/v1/enterprises/{tenant.enterprise['id']}",
        api.tokens["admin"],
        json={"base_rate_pct": 1.55},
    )
    await write_shift(api, tenant.sensor["id"], 75.0)  # class 2 → В 1
    await enter_indicators(api, tenant, T=2, Ob=2, SIZ=2, Z=2)  # ПР 1.65
    body = await risk(api, tenant, date=DAY.isoformat())
    assert body["B"] == 1
    assert body["pr"] == pytest.approx(1.65, abs=1e-9)
    assert body["level"] == 2
    assert body["tariff"]["tariff_pct"] == pytest.approx(1.86, abs=1e-9)
    assert body["tariff"]["base_rate_source"] == "enterprise"
    assert body["ppe"][0]["level"] == 1, "a factor within its limit gets the baseline PPE"


async def test_entered_factor_classes_join_the_combination(api: Api) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty")
    await write_shift(api, tenant.sensor["id"], 90.0)  # noise 3.2
    await api.ok(
        "POST",
        f"/api/v1/workplaces/{tenant.workplace['id']}/factor-classes",
        tenant.officer,
        json={
            "factor": "microclimate",
            "working_class": "3.2",
            "assessed_by": "lab",
            "assessed_on": "2026-10-01",
        },
    )
    await api.assess()  # the assessment service applies the entered class
    exposure = await api.ok(
        "GET",
        f"/api/v1/workplaces/{tenant.workplace['id']}/exposure",
        tenant.officer,
        params={"date": DAY.isoformat()},
    )
    # Two factors at 3.2 raise the class one step.
    assert exposure["working_class"] == "3.3"
    assert exposure["B"] == 4
    sources = {f["factor"]: f["source"] for f in exposure["factors"]}
    assert sources == {"noise": "measured", "microclimate": "entered"}
    entered = await api.ok(
        "GET",
        f"/api/v1/workplaces/{tenant.workplace['id']}/factor-classes",
        tenant.officer,
    )
    assert entered["current"]["microclimate"]["working_class"] == "3.2"


async def test_short_shift_reports_insufficient_data(api: Api) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty")
    await write_shift(api, tenant.sensor["id"], 90.0, hours=4.0)
    exposure = await api.ok(
        "GET",
        f"/api/v1/workplaces/{tenant.workplace['id']}/exposure",
        tenant.officer,
        params={"date": DAY.isoformat()},
    )
    assert exposure["coverage_min"] == pytest.approx(0.5, abs=1e-3)
    assert exposure["insufficient_data"] == [tenant.sensor["code"]]
    history = await api.ok(
        "GET",
        f"/api/v1/workplaces/{tenant.workplace['id']}/exposure/history",
        tenant.officer,
        params={"from": "2026-11-09", "to": "2026-11-11"},
    )
    assert [s["date"] for s in history["shifts"]] == ["2026-11-09", "2026-11-10", "2026-11-11"]
    assert [s["B"] for s in history["shifts"]] == [None, 3, None]
    assert history["worst"]["date"] == "2026-11-10"


async def test_map_and_exports(api: Api) -> None:
    a = await make_tenant(api, "ent-a", "Almaty")
    b = await make_tenant(api, "ent-b", "Karaganda")
    await write_shift(api, a.sensor["id"], 90.0)
    await enter_indicators(api, a, T=4, Ob=2, SIZ=3, Z=1)  # 3.05, headcount 10
    wp2 = await api.ok(
        "POST",
        f"/api/v1/enterprises/{a.enterprise['id']}/workplaces",
        a.officer,
        json={"code": "office", "name": "Office", "headcount": 30},
    )
    await api.ok(
        "POST",
        f"/api/v1/workplaces/{wp2['id']}/factor-classes",
        a.officer,
        json={
            "factor": "lighting",
            "working_class": "2",
            "assessed_by": "lab",
            "assessed_on": "2026-01-01",
        },
    )
    for name, value in {"T": 1, "Ob": 1, "SIZ": 1, "Z": 1}.items():
        await api.ok(
            "POST",
            f"/api/v1/workplaces/{wp2['id']}/indicators",
            a.officer,
            json={
                "indicator": name,
                "value": value,
                "assessed_by": "x",
                "assessed_on": "2026-01-01",
            },
        )
    await api.assess()  # the assessment service stores the office's shifts (entered class)
    period = {"from": DAY.isoformat(), "to": DAY.isoformat()}
    scoring_token = await api.token(Role.SCORING)
    body = await api.ok("GET", "/api/v1/map", scoring_token, params=period)
    by_code = {e["enterprise"]: e for e in body["enterprises"]}
    ent_a = by_code["ent-a"]
    # (3.05·10 + 1.0·30) / 40
    assert ent_a["mean_pr"] == pytest.approx((3.05 * 10 + 1.0 * 30) / 40, abs=1e-9)
    assert ent_a["level"] == 2
    assert ent_a["share_by_level"] == {"1": 0.75, "2": 0.0, "3": 0.25, "4": 0.0, "5": 0.0}
    assert by_code["ent-b"]["level"] is None
    assert by_code["ent-b"]["workplaces_unscored"] == 1
    filtered = await api.ok(
        "GET", "/api/v1/map", scoring_token, params={**period, "region": "Karaganda"}
    )
    assert [e["enterprise"] for e in filtered["enterprises"]] == ["ent-b"]
    assert b.enterprise["code"] == "ent-b"

    csv_text = (
        await api.call(
            "GET", "/api/v1/export/workplaces", scoring_token, params={**period, "format": "csv"}
        )
    ).text
    header, *lines = csv_text.strip().splitlines()
    assert header.startswith("enterprise_code,region,activity_risk_class,workplace_code")
    assert len(lines) == 3
    assert any(",3.05," in line for line in lines)
    export = await api.ok("GET", "/api/v1/export/enterprises", scoring_token, params=period)
    assert export["columns_version"] == "v2"
    row = next(r for r in export["rows"] if r["enterprise_code"] == "ent-a")
    assert set(row) == set(export["columns"])
    assert row["level"] == 2
    assert row["tariff_pct"] == pytest.approx(1.86, abs=1e-9)
    assert row["not_enough_data"] is False
    # v1 stays as published: the same figures without the columns v2 added.
    v1 = await api.ok(
        "GET", "/api/v1/export/enterprises", scoring_token, params={**period, "columns": "v1"}
    )
    assert v1["columns_version"] == "v1"
    assert "not_enough_data" not in v1["columns"]
    assert next(r for r in v1["rows"] if r["enterprise_code"] == "ent-a")["level"] == 2


async def test_period_b_prefers_shifts_with_sufficient_coverage(api: Api) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty")
    await write_shift(api, tenant.sensor["id"], 90.0)  # a full shift at 3.2
    await write_shift(api, tenant.sensor["id"], 110.0, hours=1.0, days_later=1)  # 1 h, loud
    await enter_indicators(api, tenant, T=4, Ob=2, SIZ=3, Z=1)
    body = await risk(api, tenant, **{"from": "2026-11-10", "to": "2026-11-11"})
    assert body["B"] == 3
    assert body["B_source"]["date"] == "2026-11-10"
    assert body["B_source"]["insufficient_data"] is False
    # Alone, the partly measured shift does count, flagged.
    only = await risk(api, tenant, date="2026-11-11")
    assert only["B"] == 5
    assert only["B_source"]["insufficient_data"] is True


async def test_stored_shift_from_rollups_agrees_with_raw_readings(api: Api) -> None:
    """В and continuous В stored from the minute rollups equal what the numeric core gives on
    the raw readings when every minute is fully measured (the rollups are sufficient
    statistics), and the history shows the same stored shift."""
    tenant = await make_tenant(api, "ent-a", "Almaty")
    n = int(8 * 3600 / PERIOD_S)
    values = [85.0 + 10.0 * ((i * PERIOD_S // 3600) % 2) + 0.01 * (i % 7) for i in range(n)]
    rows = [
        (SHIFT_START + timedelta(seconds=i * PERIOD_S), tenant.sensor["id"], v)
        for i, v in enumerate(values)
    ]
    conn = await connect_async(api.pg_url, api.schema, autocommit=True)
    async with conn:
        await ensure_partitions(conn, rows[0][0], rows[-1][0])
        async with conn.transaction():
            await write_as_ingest(conn, ReadingBlock.from_rows(rows))
    assert await api.assess() == 1
    oracle = assess_workplace(
        [
            SensorSeries(
                "raw",
                "noise_laeq",
                "dB(A)",
                None,
                np.arange(n, dtype=np.float64) * PERIOD_S,
                np.array(values),
            )
        ],
        load_norms("default"),
        shift_duration_s=8 * 3600.0,
    )
    path = f"/api/v1/workplaces/{tenant.workplace['id']}"
    stored = await api.ok(
        "GET", f"{path}/exposure", tenant.officer, params={"date": DAY.isoformat()}
    )
    history = await api.ok(
        "GET",
        f"{path}/exposure/history",
        tenant.officer,
        params={"from": DAY.isoformat(), "to": DAY.isoformat()},
    )
    (shift,) = history["shifts"]
    assert stored["status"] == shift["status"] == "provisional"
    assert shift["B"] == stored["B"] == oracle.b == 3  # LEX ≈ 92.4 dB(A): class 3.2
    assert oracle.b_continuous is not None
    assert shift["B_continuous"] == pytest.approx(oracle.b_continuous, abs=1e-6)
    assert stored["B_continuous"] == shift["B_continuous"]
    assert stored["sensors"][0]["metrics"]["lex8h_db"] == pytest.approx(
        oracle.sensors[0].metrics["lex8h_db"], abs=1e-6
    )
    assert shift["coverage_min"] == pytest.approx(1.0, abs=1e-3)
    assert shift["not_enough_data"] is False
