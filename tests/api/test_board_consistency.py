"""The regional board and the exports read the stored shifts of all workplaces at once; each of
their rows must be exactly what the workplace's own ``/risk`` answers for the same period,
whatever the mix of time zones, schedules and gaps in the data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from store.auth import Role
from store.connection import connect_async
from store.readings import ReadingBlock, ensure_partitions
from tests.api.conftest import Api, Tenant, make_tenant
from tests.support import write_as_ingest

pytestmark = [pytest.mark.anyio, pytest.mark.services]

D = date(2026, 11, 10)
PERIOD = {"from": D.isoformat(), "to": (D + timedelta(days=1)).isoformat()}


def samples(
    sensor_id: int, start: datetime, hours: float, level: float, period_s: float = 10.0
) -> list[tuple[datetime, int, float]]:
    n = int(hours * 3600 / period_s)
    # A small ripple so that no two shifts tie by accident.
    return [
        (start + timedelta(seconds=i * period_s), sensor_id, level + 0.01 * (i % 5))
        for i in range(n)
    ]


async def write(api: Api, rows: list[tuple[datetime, int, float]]) -> None:
    rows = sorted(rows)
    conn = await connect_async(api.pg_url, api.schema, autocommit=True)
    async with conn:
        await ensure_partitions(conn, rows[0][0], rows[-1][0])
        async with conn.transaction():
            await write_as_ingest(conn, ReadingBlock.from_rows(rows))
    await api.assess()


async def indicators(api: Api, tenant: Tenant, workplace_id: int, t: int, ob: int) -> None:
    for name, value in {"T": t, "Ob": ob, "SIZ": 3, "Z": 1}.items():
        await api.ok(
            "POST",
            f"/api/v1/workplaces/{workplace_id}/indicators",
            tenant.officer,
            json={
                "indicator": name,
                "value": value,
                "assessed_by": "OSH engineer",
                "assessed_on": "2026-11-01",
            },
        )


async def sensor(api: Api, tenant: Tenant, code: str, **fields: Any) -> int:
    body = await api.ok(
        "POST",
        f"/api/v1/devices/{tenant.device['id']}/sensors",
        tenant.officer,
        json={"code": f"{tenant.device['code']}.{code}", **fields},
    )
    return int(body["id"])


async def test_board_and_exports_equal_each_workplaces_own_risk(api: Api) -> None:
    # A: Almaty, 08:00 for 8 h (hour buckets). Day 1 fully measured at 90 dB(A); day 2 one loud
    # hour (insufficient coverage), and a dense burst after its shift that lies inside the
    # board's period for B (a western zone) but outside A's own: it must not change A's
    # coverage, so A's В stays the full shift's.
    a = await make_tenant(api, "ent-a", "Almaty")
    a_start = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
    await write(
        api,
        samples(a.sensor["id"], a_start, 8, 90.0)
        + samples(a.sensor["id"], a_start + timedelta(days=1), 1, 110.0)
        + samples(a.sensor["id"], a_start + timedelta(days=1, hours=9), 1, 70.0, period_s=1.0),
    )
    await indicators(api, a, a.workplace["id"], 4, 2)

    # B: London (UTC+0 in November), 08:00 for 8 h; a gap in the middle of day 1 and CO.
    b = await make_tenant(api, "ent-b", "Almaty")
    await api.ok(
        "PATCH",
        f"/api/v1/enterprises/{b.enterprise['id']}",
        api.tokens["admin"],
        json={"timezone": "Europe/London"},
    )
    b_start = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
    co = await sensor(api, b, "co", quantity="gas", unit="mg/m3", substance="CO")
    await write(
        api,
        samples(b.sensor["id"], b_start, 3, 84.0)
        + samples(b.sensor["id"], b_start + timedelta(hours=5), 3, 88.0)
        + samples(b.sensor["id"], b_start + timedelta(days=1), 8, 86.0)
        + samples(co, b_start, 8, 25.0, period_s=30.0)
        + samples(co, b_start + timedelta(days=1), 8, 12.0, period_s=30.0),
    )
    await indicators(api, b, b.workplace["id"], 2, 3)

    # C: Kolkata (UTC+05:30), so its shifts start on a half hour: minute buckets. A second
    # workplace of the same enterprise with two 12-h shifts, the night one crossing midnight.
    c = await make_tenant(api, "ent-c", "Almaty")
    await api.ok(
        "PATCH",
        f"/api/v1/enterprises/{c.enterprise['id']}",
        api.tokens["admin"],
        json={"timezone": "Asia/Kolkata"},
    )
    c_start = datetime(2026, 11, 10, 2, 30, tzinfo=UTC)
    await write(
        api,
        samples(c.sensor["id"], c_start + timedelta(minutes=17), 6, 95.0)
        + samples(c.sensor["id"], c_start + timedelta(days=1), 8, 93.0),
    )
    await indicators(api, c, c.workplace["id"], 3, 1)
    night = await api.ok(
        "POST",
        f"/api/v1/enterprises/{c.enterprise['id']}/workplaces",
        c.officer,
        json={
            "code": "ent-c-night",
            "name": "Kiln",
            "headcount": 4,
            "shift_starts": ["08:00", "20:00"],
            "shift_duration_s": 43200,
        },
    )
    night_device = await api.ok(
        "POST",
        f"/api/v1/enterprises/{c.enterprise['id']}/devices",
        c.officer,
        json={"code": "ent-c-night-dev", "workplace_id": night["id"]},
    )
    night_noise = int(
        (
            await api.ok(
                "POST",
                f"/api/v1/devices/{night_device['id']}/sensors",
                c.officer,
                json={"code": "ent-c-night-dev.noise", "quantity": "noise_laeq", "unit": "dB(A)"},
            )
        )["id"]
    )
    c_night = c_start + timedelta(hours=12)
    await write(
        api,
        samples(night_noise, c_start, 12, 82.0, period_s=20.0)
        + samples(night_noise, c_night, 12, 97.0, period_s=20.0)
        + samples(night_noise, c_night + timedelta(days=1), 4, 100.0, period_s=20.0),
    )
    await indicators(api, c, night["id"], 2, 2)

    workplaces = [
        (a, a.workplace["id"], "ent-a-wp"),
        (b, b.workplace["id"], "ent-b-wp"),
        (c, c.workplace["id"], "ent-c-wp"),
        (c, night["id"], "ent-c-night"),
    ]

    async def own_risks() -> dict[str, dict[str, Any]]:
        return {
            code: await api.ok(
                "GET", f"/api/v1/workplaces/{wid}/risk", tenant.officer, params=PERIOD
            )
            for tenant, wid, code in workplaces
        }

    scoring = await api.token(Role.SCORING)

    async def board_rows() -> list[dict[str, Any]]:
        body = await api.ok("GET", "/api/v1/export/workplaces", scoring, params=PERIOD)
        return body["rows"]  # type: ignore[no-any-return]

    export_rows = await board_rows()
    own = await own_risks()
    assert await own_risks() == own
    assert await board_rows() == export_rows
    rows = {r["workplace_code"]: r for r in export_rows}
    assert set(rows) == set(own)
    for code, mine in own.items():
        row = rows[code]
        source = mine["B_source"]
        assert (row["b"], row["b_class"], row["b_date"], row["b_shift"]) == (
            mine["B"],
            source["working_class"],
            source["date"],
            source["shift"],
        ), code
        assert row["b_deciding_factors"] == " ".join(source["deciding_factors"]), code
        assert (row["t"], row["ob"], row["siz"], row["z"]) == tuple(
            mine["indicators"][k]["value"] for k in ("T", "Ob", "SIZ", "Z")
        ), code
        assert row["pr"] == round(mine["pr"], 6), code
        assert (row["level"], row["protection_class"]) == (
            mine["level"],
            mine["protection_class"],
        ), code
        assert row["tariff_pct"] == round(mine["tariff"]["tariff_pct"], 6), code
    # The cases above are not all alike: otherwise this test could not tell paths apart.
    assert own["ent-a-wp"]["B_source"]["date"] == D.isoformat()
    assert own["ent-a-wp"]["B_source"]["insufficient_data"] is False
    assert len({(m["B"], m["B_source"]["date"], m["B_source"]["shift"]) for m in own.values()}) > 2

    board = await api.ok("GET", "/api/v1/map", scoring, params=PERIOD)
    for e in board["enterprises"]:
        members = [
            (own[r["workplace_code"]]["pr"], r["headcount"])
            for r in export_rows
            if r["enterprise_code"] == e["enterprise"]
        ]
        weight = sum(h for _, h in members)
        assert e["mean_pr"] == pytest.approx(sum(p * h for p, h in members) / weight, abs=1e-6)
        alone = await api.ok(
            "GET",
            f"/api/v1/enterprises/{e['enterprise_id']}/risk",
            api.tokens["admin"],
            params=PERIOD,
        )
        assert {k: alone[k] for k in ("mean_pr", "level", "share_by_level")} == {
            k: e[k] for k in ("mean_pr", "level", "share_by_level")
        }


def flat(
    sensor_id: int, start: datetime, hours: float, level: float, period_s: float = 10.0
) -> list[tuple[datetime, int, float]]:
    """A constant level: every hour bucket, and every shift of equal length, is then the same."""
    n = int(hours * 3600 / period_s)
    return [(start + timedelta(seconds=i * period_s), sensor_id, level) for i in range(n)]


async def test_board_picks_the_same_worst_shift_on_ties_and_band_edges(api: Api) -> None:
    # The board picks each workplace's worst shift in SQL, /risk in the same order; these
    # workplaces are built so that two orders that differ would show: equal В on several days
    # (the latest must be reported), В raised by the combination or capped in the top band
    # (equal continuous В whatever the level), levels exactly on band edges and coverage
    # exactly at the minimum.
    days = 3
    period = {"from": D.isoformat(), "to": (D + timedelta(days=days - 1)).isoformat()}
    shift0 = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)  # 08:00 in Almaty

    def day(k: int, hours_after: float = 0.0) -> datetime:
        return shift0 + timedelta(days=k, hours=hours_after)

    cases: dict[str, tuple[list[tuple[float, float]], str | None]] = {
        # (hours measured, level) per day; an entered factor class, if any
        "tie": ([(8, 90.0), (8, 90.0), (8, 90.0)], None),
        "raised": ([(8, 88.0), (8, 93.0), (8, 86.0)], "3.2"),
        "capped": ([(8, 130.0), (8, 127.0), (8, 125.0)], None),
        "edge": ([(8, 85.0), (8, 80.0), (8, 85.0)], None),
        "coverage": ([(6, 100.0), (8, 90.0), (6, 99.0)], None),
    }
    workplaces = []
    for name, (plan, entered) in cases.items():
        tenant = await make_tenant(api, f"edge-{name}", "Almaty")
        rows = []
        for k, (hours, level) in enumerate(plan):
            rows += flat(tenant.sensor["id"], day(k), hours, level)
        await write(api, rows)
        await indicators(api, tenant, tenant.workplace["id"], 3, 2)
        if entered is not None:
            await api.ok(
                "POST",
                f"/api/v1/workplaces/{tenant.workplace['id']}/factor-classes",
                tenant.officer,
                json={
                    "factor": "microclimate",
                    "working_class": entered,
                    "assessed_by": "lab",
                    "assessed_on": "2026-10-01",
                },
            )
        workplaces.append((tenant, f"edge-{name}-wp"))
    await api.assess()

    scoring = await api.token(Role.SCORING)
    body = await api.ok("GET", "/api/v1/export/workplaces", scoring, params=period)
    rows_by_code = {r["workplace_code"]: r for r in body["rows"]}
    own = {
        code: await api.ok(
            "GET", f"/api/v1/workplaces/{t.workplace['id']}/risk", t.officer, params=period
        )
        for t, code in workplaces
    }
    for code, mine in own.items():
        row = rows_by_code[code]
        source = mine["B_source"]
        assert (row["b"], row["b_class"], row["b_date"], row["b_shift"], row["pr"]) == (
            mine["B"],
            source["working_class"],
            source["date"],
            source["shift"],
            round(mine["pr"], 6),
        ), code
    last = (D + timedelta(days=days - 1)).isoformat()
    # Ties go to the latest shift, not to the loudest or the first.
    assert own["edge-tie-wp"]["B_source"]["date"] == last
    assert own["edge-raised-wp"]["B_source"]["date"] == last
    assert own["edge-raised-wp"]["B_source"]["working_class"] == "3.3"
    assert own["edge-capped-wp"]["B_source"]["date"] == last
    assert own["edge-capped-wp"]["B_source"]["working_class"] == "4"


async def test_board_answer_follows_new_readings(api: Api) -> None:
    # A later reading in any shift of the period changes the stored shift and so the board's
    # answer, once the assessment service has passed.
    period = {"from": D.isoformat(), "to": (D + timedelta(days=2)).isoformat()}
    start = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)  # 08:00 in Almaty
    tenant = await make_tenant(api, "late", "Almaty")
    await write(api, flat(tenant.sensor["id"], start, 8, 86.0))
    await indicators(api, tenant, tenant.workplace["id"], 3, 2)
    scoring = await api.token(Role.SCORING)

    async def board_row() -> dict[str, Any]:
        body = await api.ok("GET", "/api/v1/export/workplaces", scoring, params=period)
        (row,) = [r for r in body["rows"] if r["workplace_code"] == "late-wp"]
        return dict(row)

    before = await board_row()
    assert before == await board_row()  # remembered, and the same
    assert before["b_date"] == D.isoformat()
    await write(api, flat(tenant.sensor["id"], start + timedelta(days=2), 8, 100.0))
    after = await board_row()
    own = await api.ok(
        "GET", f"/api/v1/workplaces/{tenant.workplace['id']}/risk", tenant.officer, params=period
    )
    assert after["b_date"] == (D + timedelta(days=2)).isoformat()
    assert (after["b"], after["b_class"], after["b_date"]) == (
        own["B"],
        own["B_source"]["working_class"],
        own["B_source"]["date"],
    )
    assert after["b"] > before["b"]
