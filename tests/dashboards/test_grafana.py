"""The Grafana dashboards without Grafana (it cannot run here): the dashboard model is sane,
every panel's SQL, with Grafana's macros and variables expanded as Grafana documents them, runs
against a database filled with two hours of the simulated mine (stored through the store's write
path) and gives the energy-correct figures; and the publisher talks to a stand-in Grafana HTTP
server exactly as Grafana's API expects, idempotently."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg.sql import SQL, Composed, Identifier

from analytics import load_norms
from analytics.alerts import load_alert_norms
from dashboards.grafana_limits import stale_files
from dashboards.publish import DATASOURCE_TYPE, bundled_dashboards, prepared
from firmware_sim.scenario import load_scenario
from qorgau.cli import main
from store.alerts import record_of, write_transitions
from store.connection import connect_async
from tests.dashboards.fake_grafana import FakeGrafana
from tests.dashboards.grafana_macros import Context, expand, interval_s
from tests.sim_support import register_scenario, store_readings
from vocabulary.protocol.alerts import AlertMessage

GRAFANA_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "grafana"
START = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 08:00 in the mine's zone
END = START + timedelta(hours=2)
PANEL_TYPES = {"timeseries", "table", "stat", "bargauge", "text", "row", "gauge", "barchart"}


def dashboards() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, json.loads(p.read_text())) for p in sorted(GRAFANA_DIR.glob("*.json"))]


def over_prometheus(board: dict[str, Any]) -> bool:
    variables = board.get("templating", {}).get("list", [])
    return any(v["type"] == "datasource" and v["query"] == "prometheus" for v in variables)


def ours() -> list[tuple[str, dict[str, Any]]]:
    """The exposure dashboards on the PostgreSQL data source (the system-health dashboard over
    Prometheus only needs to be a valid dashboard here; tests/deploy checks its metrics)."""
    return [(n, d) for n, d in dashboards() if n.startswith("qorgau-") and not over_prometheus(d)]


def sql_targets(d: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in d["panels"]:
        for target in panel.get("targets", []):
            if "rawSql" in target:
                yield panel, target


# ------------------------------------------------------------------ the model


@pytest.mark.parametrize(("name", "board"), dashboards(), ids=[n for n, _ in dashboards()])
def test_dashboard_model_is_sane(name: str, board: dict[str, Any]) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", board.get("uid") or ""), name
    assert board.get("title")
    assert isinstance(board.get("schemaVersion"), int)
    assert board["schemaVersion"] >= 36
    assert board.get("id") is None, "provisioned dashboards carry no database id"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    names = {v["name"] for v in board.get("templating", {}).get("list", [])}
    used = set()
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert panel.get("title")
        pos = panel["gridPos"]
        assert 0 <= pos["x"] < pos["x"] + pos["w"] <= 24, panel["title"]
        assert pos["h"] > 0, panel["title"]
        for target in panel.get("targets", []):
            text = json.dumps(target)
            used |= set(re.findall(r"\$\{?(\w+)", text)) - {"__timeFilter", "__timeGroupAlias"}
    user_vars = {u for u in used if not u.startswith("__")}
    assert user_vars <= names, f"undefined variables {user_vars - names}"
    # Panels never overlap.
    cells = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))


@pytest.mark.parametrize(("name", "board"), ours(), ids=[n for n, _ in ours()])
def test_exposure_dashboards_use_the_postgres_variable_and_never_average_decibels(
    name: str, board: dict[str, Any]
) -> None:
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == DATASOURCE_TYPE
    assert variables["schema"]["type"] == "constant"
    assert variables["schema"]["hide"] == 2
    for panel, target in sql_targets(board):
        assert panel["datasource"] == {"type": DATASOURCE_TYPE, "uid": "${datasource}"}
        assert target["datasource"] == panel["datasource"]
        sql = target["rawSql"]
        assert not re.search(r"\bavg\s*\(", sql, re.I), f"{panel['title']}: avg() in SQL"
        assert "readings " not in sql.replace("readings_1", ""), "panels read the rollups"
        if "noise_laeq" in sql and "log10" in sql:
            assert "sum_pow10" in sql, panel["title"]
        if target["format"] == "time_series":
            assert "$__timeGroupAlias" in sql, panel["title"]


# ------------------------------------------------------------------ the SQL on a real database


@pytest.fixture
async def mine(pg_url: str, schema: str) -> str:
    scenario = load_scenario("mine")
    await register_scenario(pg_url, schema, scenario)
    devices = [scenario.build(d.code, start=START) for d in scenario.devices]
    assert await store_readings(pg_url, schema, devices, END) > 100_000
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        records = []
        for i, (workplace, state) in enumerate((("heading", "open"), ("longwall", "resolved"))):
            at = START + timedelta(minutes=30 + i)
            message = AlertMessage(
                alert_id=f"00000000-0000-4000-8000-00000000000{i}",
                transition="opened",
                state="open",
                kind="ceiling",
                severity="critical",
                enterprise=scenario.enterprise,
                device=f"{scenario.enterprise}-x",
                sensor=None,
                workplace=workplace,
                message=f"test alert {i}",
                at=at,
                opened_at=at,
                sent_at=at,
            )
            records.append(record_of(message))
            if state == "resolved":
                resolved = message.model_copy(
                    update={
                        "transition": "resolved",
                        "state": "resolved",
                        "at": at + timedelta(minutes=5),
                        "reason": "cleared",
                    }
                )
                records.append(record_of(resolved))
        for record in records:
            await write_transitions(conn, [record])
    return scenario.enterprise


def run(
    pg_url: str, sql: str | SQL | Composed, params: Sequence[Any] | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Rows of a query as Grafana sends it (expanded panel text), or of one composed here."""
    with psycopg.connect(pg_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        assert cur.description is not None
        return [c.name for c in cur.description], cur.fetchall()


def options(pg_url: str, variable: dict[str, Any], ctx: Context) -> list[str]:
    columns, rows = run(pg_url, expand(variable["query"], ctx))
    at = columns.index("__value") if "__value" in columns else 0
    return [str(r[at]) for r in rows]


def contexts(pg_url: str, schema: str, board: dict[str, Any]) -> list[Context]:
    """Every combination of the dashboard's variables that its own queries offer."""
    found = [Context(START, END, variables={"schema": schema})]
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        found = [
            Context(START, END, variables={**c.variables, variable["name"]: value})
            for c in found
            for value in options(pg_url, variable, c)
        ]
        assert found, f"variable {variable['name']} offers nothing"
    return found


@pytest.mark.anyio
@pytest.mark.services
@pytest.mark.parametrize(("name", "board"), ours(), ids=[n for n, _ in ours()])
async def test_every_panel_query_runs_on_simulated_data(
    name: str, board: dict[str, Any], pg_url: str, schema: str, mine: str
) -> None:
    def check() -> None:
        combos = contexts(pg_url, schema, board)
        assert len(combos) >= 1
        if name == "qorgau-workplace.json":
            assert len(combos) == 4, "one per workplace of the mine"
        for panel, target in sql_targets(board):
            answered = 0
            for ctx in combos:
                ctx.interval_s = max(60.0, interval_s(panel.get("interval", "1m")))
                columns, rows = run(pg_url, expand(target["rawSql"], ctx))
                if target["format"] == "time_series":
                    assert columns[0] == "time", panel["title"]
                    assert all(isinstance(r[0], int | float | type(rows[0][0])) for r in rows)
                answered += bool(rows)
            assert answered, f"{name}: panel {panel['title']!r} returned no rows"

    await asyncio.to_thread(check)


@pytest.mark.anyio
@pytest.mark.services
async def test_panels_average_energy_not_decibels(pg_url: str, schema: str, mine: str) -> None:
    board = dict(ours())["qorgau-workplace.json"]
    panels = {p["title"]: p for p in board["panels"]}

    def check() -> None:
        workplace = run(
            pg_url,
            SQL("SELECT id FROM {}.workplaces WHERE code = 'heading'").format(Identifier(schema)),
        )[1]
        ctx = Context(
            START,
            END,
            interval_s=300.0,
            variables={"schema": schema, "enterprise": mine, "workplace": str(workplace[0][0])},
        )
        for title, sensor, quantity in (
            ("Noise LAeq, energy mean per interval", "mine-01-hd-1.noise", "noise_laeq"),
            ("Vibration, r.m.s. per interval", "mine-01-hd-1.hav", "vib_hav"),
        ):
            sql = expand(panels[title]["targets"][0]["rawSql"], ctx)
            _, rows = run(pg_url, sql)
            got = {float(r[0]): float(r[2]) for r in rows if str(r[1]).startswith(sensor)}
            assert len(got) == 24  # 2 h in 5-minute groups
            _, raw = run(
                pg_url,
                SQL(
                    "SELECT extract(epoch FROM time)::float8, value FROM {s}.readings r "
                    "JOIN {s}.sensors s ON s.id = r.sensor_id WHERE s.code = %s "
                    "AND time >= %s AND time < %s"
                ).format(s=Identifier(schema)),
                [sensor, START, END],
            )
            t = np.array([r[0] for r in raw])
            v = np.array([r[1] for r in raw])
            for start, shown in got.items():
                inside = v[(t >= start) & (t < start + 300)]
                if quantity == "noise_laeq":
                    expected = 10 * np.log10(np.mean(10 ** (inside / 10)))
                    assert abs(shown - float(np.mean(inside))) > 0 or inside.std() == 0
                else:
                    expected = np.sqrt(np.mean(inside**2))
                assert shown == pytest.approx(expected, rel=1e-9), (title, start)

    await asyncio.to_thread(check)


# ------------------------------------------------------------------ the publisher

TOKEN = "glsa_test-token"
DB_URL = "postgresql://grafana_reader:s3cret@db.internal:5433/qorgau"


def publish(grafana: FakeGrafana, *extra: str, token: str = TOKEN) -> int:
    return main(
        [
            "dashboards",
            "publish",
            "--url",
            grafana.url,
            "--token",
            token,
            "--database-url",
            DB_URL,
            *extra,
        ]
    )


def test_publish_creates_folder_datasource_and_dashboards_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QORGAU_DATABASE_SCHEMA", "plant_7")
    with FakeGrafana(TOKEN) as grafana:
        assert publish(grafana) == 0
        first = capsys.readouterr().out
        assert "created folder qorgau, data source qorgau-postgres" in first
        state = grafana.state
        assert all(r.authorization == f"Bearer {TOKEN}" for r in state.requests)
        assert [(r.method, r.path) for r in state.requests[:4]] == [
            ("GET", "/api/folders/qorgau"),
            ("POST", "/api/folders"),
            ("GET", "/api/datasources/uid/qorgau-postgres"),
            ("POST", "/api/datasources"),
        ]
        (ds,) = state.datasources.values()
        assert ds["type"] == DATASOURCE_TYPE
        assert ds["url"] == "db.internal:5433"
        assert ds["user"] == "grafana_reader"
        assert ds["jsonData"]["database"] == "qorgau"
        assert ds["secureJsonData"] == {"password": "s3cret"}
        shipped = {d["uid"] for d in bundled_dashboards()}
        assert set(state.dashboards) == shipped >= {"qorgau-workplace", "qorgau-enterprise"}
        for saved in state.dashboards.values():
            assert saved["folderUid"] == "qorgau"
            schema = [v for v in saved["dashboard"]["templating"]["list"] if v["name"] == "schema"]
            if schema:
                assert schema[0]["query"] == "plant_7"
        posted = [r.body for r in state.requests if r.path == "/api/dashboards/db"]
        assert all(b["overwrite"] is True and b["dashboard"]["id"] is None for b in posted)

        # Again: nothing new is created, the data source is updated, dashboards saved anew.
        before = len(state.requests)
        assert publish(grafana) == 0
        assert "already there" in capsys.readouterr().out
        again = [(r.method, r.path) for r in state.requests[before:]]
        assert ("POST", "/api/folders") not in again
        assert ("POST", "/api/datasources") not in again
        assert ("PUT", "/api/datasources/uid/qorgau-postgres") in again
        assert len(state.folders) == 1
        assert len(state.datasources) == 1
        assert {d["dashboard"]["version"] for d in state.dashboards.values()} == {2}


def test_publish_adds_the_prometheus_data_source_when_given(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with FakeGrafana(TOKEN) as grafana:
        assert publish(grafana, "--prometheus-url", "http://prometheus:9090") == 0
        assert "Prometheus data source" in capsys.readouterr().out
        prometheus = grafana.state.datasources["qorgau-prometheus"]
        assert prometheus["type"] == "prometheus"
        assert prometheus["url"] == "http://prometheus:9090"
        # Every Prometheus panel reads the data source the dashboard's variable picks.
        system = grafana.state.dashboards["qorgau-system"]["dashboard"]
        assert over_prometheus(system)
        assert {p["datasource"]["uid"] for p in system["panels"] if "targets" in p} == {
            "${datasource}"
        }
        assert publish(grafana, "--prometheus-url", "http://prometheus:9090") == 0
        assert len(grafana.state.datasources) == 2
        assert publish(grafana, "--prometheus-url", "prometheus:9090") == 1


def test_publish_reports_what_grafana_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeGrafana(TOKEN) as grafana:
        assert publish(grafana, token="wrong") == 1
        assert "Grafana answered 401" in capsys.readouterr().err
        assert not grafana.state.folders


def test_prepared_sets_the_schema_and_leaves_the_file_alone() -> None:
    board = dict(ours())["qorgau-workplace.json"]
    ready = prepared(board, "plant_7")
    schema = next(v for v in ready["templating"]["list"] if v["name"] == "schema")
    assert schema["current"]["value"] == "plant_7"
    original = next(v for v in board["templating"]["list"] if v["name"] == "schema")
    assert original["query"] == "qorgau"


# ------------------------------------------------------------------ units and limits from the norms

NORMS = load_norms("default")
ALERT_NORMS = load_alert_norms("default")
# Panels whose values are an index or a count, not a measured quantity.
UNITLESS = {"Class and В per shift (stored assessments)"}


def panels_of(name: str) -> dict[int, dict[str, Any]]:
    board = dict(dashboards())[name]
    return {p["id"]: p for p in board["panels"]}


def band_limit_m_s2(band: str) -> float:
    """The class-2 upper edge of a vibration band table (dB re 1 µm/s²) in m/s²."""
    return float(10 ** (NORMS.band(band).upper[0] / 20) * 1e-6)


def override_steps(panel: dict[str, Any], series_name: str) -> list[float]:
    """The threshold values Grafana applies to a series of this name (the last matching
    override wins, as in Grafana)."""
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
    for override in panel["fieldConfig"]["overrides"]:
        if re.search(override["matcher"]["options"], series_name):
            for prop in override["properties"]:
                if prop["id"] == "thresholds":
                    steps = prop["value"]["steps"]
    return [s["value"] for s in steps if s["value"] is not None]


def test_dashboard_files_carry_the_limits_of_the_norms() -> None:
    """The numbers in the JSON are what the norms give (python -m dashboards.grafana_limits)."""
    assert stale_files(NORMS, ALERT_NORMS) == []


@pytest.mark.parametrize(("name", "board"), ours(), ids=[n for n, _ in ours()])
def test_every_measurement_panel_has_a_unit(name: str, board: dict[str, Any]) -> None:
    for panel in board["panels"]:
        if panel["type"] not in ("timeseries", "stat") or panel["title"] in UNITLESS:
            continue
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit not in (None, "", "none"), panel["title"]


def test_gas_panel_draws_each_substances_pdk_in_its_unit() -> None:
    gas = panels_of("qorgau-workplace.json")[3]
    assert gas["fieldConfig"]["defaults"]["unit"] == "conmgm3"
    for sub in ("CO", "H2S", "NO2"):
        found = NORMS.substance(sub)
        expected = {v for v in (found.pdk_ss_mg_m3, found.pdk_max_mg_m3) if v is not None}
        assert set(override_steps(gas, f"{sub}, mg/m3 (dev-1.{sub.lower()})")) == expected
        # The same limit in ppm: mg/m³ × 24.04 / M.
        assert found.molar_mass_g_mol is not None
        ppm = override_steps(gas, f"{sub}, ppm (dev-2.{sub.lower()})")
        in_ppm = max(expected) * 24.04 / found.molar_mass_g_mol
        assert max(ppm) == pytest.approx(in_ppm, rel=1e-3)


def test_whole_body_and_hand_arm_vibration_have_their_own_limits() -> None:
    vibration = panels_of("qorgau-workplace.json")[5]
    assert vibration["fieldConfig"]["defaults"]["thresholds"]["steps"][1:] == []
    hand_arm = override_steps(vibration, "dev-1.hav vib_hav")
    whole_body_z = override_steps(vibration, "dev-1.wbv_z vib_wbv_z")
    # Within 1 %: the class tables are in whole dB (126 dB = 1.995 m/s², the limit is 2.0).
    assert max(hand_arm) == pytest.approx(band_limit_m_s2("vibration_hand_arm"), rel=0.01)
    assert max(whole_body_z) == pytest.approx(band_limit_m_s2("vibration_whole_body_z"), rel=0.01)
    assert max(whole_body_z) < 1.0  # not the hand-arm 2.5 / 5 m/s² of the EU
    per_shift = panels_of("qorgau-workplace.json")[11]
    assert override_steps(per_shift, "dev-1.wbv_z vib_wbv_z") == whole_body_z


@pytest.mark.anyio
@pytest.mark.services
async def test_limit_overrides_match_the_series_the_panels_return(
    pg_url: str, schema: str, mine: str
) -> None:
    """Run the panels with per-series limits on the simulated mine: every series they return
    is picked by one of their overrides (so each gets its unit and lines)."""
    board = dict(dashboards())["qorgau-workplace.json"]

    def check() -> int:
        matched = 0
        for ctx in contexts(pg_url, schema, board):
            ctx.interval_s = 60.0
            for panel, target in sql_targets(board):
                patterns = [
                    o["matcher"]["options"]
                    for o in panel["fieldConfig"]["overrides"]
                    if o["matcher"]["id"] == "byRegexp"
                ]
                if not patterns or target["format"] != "time_series":
                    continue
                columns, rows = run(pg_url, expand(target["rawSql"], ctx))
                for name in {str(r[columns.index("metric")]) for r in rows}:
                    assert any(re.search(p, name) for p in patterns), (panel["title"], name)
                    matched += 1
        return matched

    assert await asyncio.to_thread(check) >= 5


def test_shift_results_have_panels() -> None:
    panels = panels_of("qorgau-workplace.json").values()
    sql = {p["title"]: " ".join(t["rawSql"] for t in p.get("targets", [])) for p in panels}
    assert any("shift_assessments a" in q and "working_class" in q for q in sql.values())
    assert sum("shift_assessment_sensors" in q for q in sql.values()) >= 3
    enterprise = " ".join(
        t["rawSql"]
        for p in panels_of("qorgau-enterprise.json").values()
        for t in p.get("targets", [])
    )
    assert "shift_assessments a" in enterprise
