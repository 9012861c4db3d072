"""Shift reports of a simulated mine shift (the development heading, class 3.4 and В 5 in
docs/edge.md), stored through the store's write path: the PDF opens and renders page by page
(poppler), has the class table as text and one chart image per sensor; CSV and Excel carry the
same figures; the command line writes one or many."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread
from openpyxl import load_workbook

from firmware_sim.scenario import load_scenario
from qorgau.cli import main
from store.alerts import record_of, write_transitions
from store.assessments import add_indicator
from store.connection import connect_async
from tests.api.conftest import Api
from tests.sim_support import register_scenario, store_readings
from vocabulary.protocol.alerts import AlertMessage

pytestmark = [pytest.mark.anyio, pytest.mark.services]

DAY = date(2026, 11, 23)
SHIFT_START = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 08:00 +05:00
HEADING = "heading"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def poppler(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(f"{tool} is missing: run scripts/bootstrap --test (poppler-utils)")
    return found


@dataclass
class Mine:
    workplace_id: int
    sensors: list[str]


@pytest.fixture
async def mine(api: Api) -> Mine:
    scenario = load_scenario("mine")
    workplaces = await register_scenario(api.pg_url, api.schema, scenario)
    devices = [
        scenario.build(d.code, start=SHIFT_START)
        for d in scenario.devices
        if d.workplace == HEADING
    ]
    await store_readings(api.pg_url, api.schema, devices, SHIFT_START + timedelta(hours=8))
    wp = workplaces[HEADING]
    at = SHIFT_START + timedelta(hours=2)
    conn = await connect_async(api.pg_url, api.schema, autocommit=True)
    async with conn:
        for name, value in (("T", 4), ("Ob", 2), ("SIZ", 3), ("Z", 1)):
            await add_indicator(
                conn,
                wp,
                indicator=name,
                value=value,
                assessed_by="OSH engineer",
                assessed_on=DAY - timedelta(days=3),
                evidence=None,
                entered_by=None,
            )
        alert = AlertMessage(
            alert_id="6f1c1f0e-3c4c-4a77-9b8e-2a7d6f0e0001",
            transition="opened",
            state="open",
            kind="short_term",
            severity="high",
            enterprise=scenario.enterprise,
            device="mine-01-hd-1",
            sensor="mine-01-hd-1.co",
            workplace=HEADING,
            quantity="gas",
            substance="CO",
            value=23.3,
            unit="mg/m3",
            threshold=20.0,
            threshold_unit="mg/m3",
            message="CO 15-min mean 23.3 mg/m3 above ПДК_max 20 mg/m3 (blasting fumes)",
            at=at,
            opened_at=at,
            sent_at=at,
        )
        await write_transitions(conn, [record_of(alert)])
    return Mine(wp, [ch.sensor for d in devices for ch in d.channels()])


async def report(api: Api, mine: Mine, fmt: str) -> bytes:
    response = await api.call(
        "GET",
        f"/api/v1/workplaces/{mine.workplace_id}/report",
        api.tokens["admin"],
        params={"date": DAY.isoformat(), "shift": 1, "format": fmt},
    )
    assert response.status_code == 200, response.text
    assert f"qorgau-mine-01-heading-{DAY}-shift1.{fmt}" in response.headers["content-disposition"]
    return response.content


def blue_pixels(png: Path) -> int:
    """Pixels of the charts' data colour (#1565c0) on a rendered page."""
    image = imread(png)[..., :3]
    target = np.array([0x15, 0x65, 0xC0]) / 255.0
    return int((np.abs(image - target).max(axis=-1) < 0.12).sum())


@dataclass
class Rendered:
    pages: list[Path]  # one PNG per page
    text: str
    images: list[str]  # pdfimages -list rows of images (not their alpha masks)


def open_pdf(pdf: Path, folder: Path) -> Rendered:
    """What poppler makes of the file: its pages as PNG, its text, its embedded images."""
    subprocess.run(
        [poppler("pdftoppm"), "-png", "-r", "60", str(pdf), str(folder / "page")],
        check=True,
        capture_output=True,
    )
    text = subprocess.run(
        [poppler("pdftotext"), "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    listing = subprocess.run(
        [poppler("pdfimages"), "-list", str(pdf)], check=True, capture_output=True, text=True
    ).stdout.splitlines()[2:]
    images = [row for row in listing if row.split()[2] == "image"]
    return Rendered(sorted(folder.glob("page-*.png")), text, images)


async def test_pdf_report_renders_with_charts_and_the_class_table(
    api: Api, mine: Mine, tmp_path: Path
) -> None:
    body = await report(api, mine, "pdf")
    assert body.startswith(b"%PDF")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(body)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "shift-report-heading.pdf").write_bytes(body)
    got = await asyncio.to_thread(open_pdf, pdf, tmp_path)

    assert len(got.pages) >= 2
    # The charts are drawn: the data colour covers a good part of some page.
    assert max(blue_pixels(p) for p in got.pages) > 2000
    text = got.text
    assert "Shift report — Development heading" in text
    assert "Classes of working conditions" in text
    assert "Class of working conditions: 3.4" in text
    assert "Harmfulness index В: 5" in text
    assert "Occupational risk ПР:" in text
    for factor in (
        "noise",
        "vibration_hand_arm",
        "chemical:CO",
        "chemical:NO2",
        "dust:silica_10_70",
    ):
        assert factor in text, factor
    assert "LEX,8h 99.3 dB(A)" in text
    assert "above ПДК_max 20 mg/m3" in text  # the alert of the shift
    for sensor in mine.sensors:
        assert f"— {sensor}" in text, f"chart of {sensor}"
    # One embedded image per chart: the data line is rasterised, titles and axes stay text.
    assert len(got.images) == len(mine.sensors)


async def test_csv_and_xlsx_carry_the_same_figures(api: Api, mine: Mine) -> None:
    rows = list(csv.DictReader(io.StringIO((await report(api, mine, "csv")).decode())))
    found = {(r["section"], r["item"], r["name"]): r for r in rows}
    assert found[("workplace", HEADING, "class")]["value"] == "3.4"
    assert found[("workplace", HEADING, "B")]["value"] == "5"
    lex = found[("sensor", "mine-01-hd-1.noise", "LEX,8h")]
    assert lex["unit"] == "dB(A)"
    assert 95 < float(lex["value"]) <= 105  # class 3.3
    assert found[("factor", "vibration_hand_arm", "class")]["value"] == "3.2"
    pr = found[("risk", HEADING, "PR")]
    assert 1 <= float(pr["value"]) <= 5
    assert any(r["section"] == "alert" for r in rows)

    book = load_workbook(io.BytesIO(await report(api, mine, "xlsx")))
    assert book.sheetnames == [
        "Summary",
        "Sensors",
        "Factors",
        "Alerts",
        "Instruments",
        "Method and signatures",
        "Per minute",
    ]
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True)}
    assert summary["class of working conditions"] == "3.4"
    assert summary["harmfulness index В (1..5)"] == 5
    per_minute = list(book["Per minute"].iter_rows(values_only=True))
    assert len(per_minute) == 1 + 8 * 60  # header, every minute of the shift
    header: Any = per_minute[0]
    assert any("noise" in str(h) and "dB(A)" in str(h) for h in header)


@pytest.fixture
def database_env(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QORGAU_DATABASE_URL", api.pg_url)
    monkeypatch.setenv("QORGAU_DATABASE_SCHEMA", api.schema)


@pytest.mark.usefixtures("database_env")
async def test_command_line_writes_one_or_many(
    api: Api, mine: Mine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "heading.csv"
    code = await asyncio.to_thread(
        main,
        [
            "report",
            "--workplace",
            HEADING,
            "--enterprise",
            "mine-01",
            "--date",
            DAY.isoformat(),
            "--shift",
            "1",
            "--format",
            "csv",
            "--out",
            str(out),
        ],
    )
    assert code == 0, capsys.readouterr().err
    assert "section,item,name,value,unit" in out.read_text()

    many = tmp_path / "all"
    code = await asyncio.to_thread(
        main,
        [
            "report",
            "--all-workplaces",
            "--date",
            DAY.isoformat(),
            "--to",
            (DAY + timedelta(days=1)).isoformat(),
            "--format",
            "xlsx",
            "--out-dir",
            str(many),
        ],
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    files = sorted(p.name for p in many.iterdir())
    # Four workplaces, two days, one shift a day: only the heading's first shift has readings;
    # the seven others get no empty file but a line each.
    assert files == [f"qorgau-mine-01-heading-{DAY}-shift1.xlsx"]
    assert "shift reports" in captured.err  # the progress bar
    assert "1 reports in" in captured.out
    assert "no readings, so no report: 7 shift(s)" in captured.out
    assert f"mine-01/dispatch {DAY} shift 1" in captured.out
    assert f"mine-01/heading {DAY + timedelta(days=1)} shift 1" in captured.out

    code = await asyncio.to_thread(
        main, ["report", "--workplace", "nowhere", "--date", DAY.isoformat()]
    )
    assert code == 1
    assert "no workplace 'nowhere'" in capsys.readouterr().err


async def describe_instruments(api: Api, mine: Mine) -> dict[str, str]:
    """Model, serial number and calibration of the heading's device through the registry API,
    one sensor with its own certificate; returns what the report must show."""
    admin = api.tokens["admin"]
    sensors = (await api.ok("GET", "/api/v1/sensors", admin, params={"limit": 100}))["items"]
    co = next(s for s in sensors if s["code"] == "mine-01-hd-1.co")
    device = await api.ok(
        "PATCH",
        f"/api/v1/devices/{co['device_id']}",
        admin,
        json={
            "model": "Octava-110A-Eco",
            "serial_number": "A110-07412",
            "calibrated_on": "2026-09-01",
            "calibration_certificate": "ВА-24-0917",
        },
    )
    assert device["model"] == "Octava-110A-Eco"
    assert device["calibrated_on"] == "2026-09-01"
    updated = await api.ok(
        "PATCH",
        f"/api/v1/sensors/{co['id']}",
        admin,
        json={
            "model": "Dräger Polytron 7000",
            "serial_number": "ARFH-0231",
            "calibration_certificate": "GAS-2026-118",
            "calibration_due": "2026-10-01",
        },
    )
    assert updated["serial_number"] == "ARFH-0231"
    # Table cells wrap at spaces: what the PDF must show, as words.
    return {
        "device_model": "Octava-110A-Eco",
        "device_serial": "A110-07412",
        "device_certificate": "ВА-24-0917",
        "sensor_model": "Polytron",
        "sensor_serial": "ARFH-0231",
        "sensor_certificate": "GAS-2026-118",
    }


@pytest.mark.parametrize(
    ("lang", "phrases"),
    [
        (
            "en",
            [
                "Shift report — Development heading",
                "Class of working conditions: 3.4",
                "Instruments",
                "Measurement method",
                "Norms applied: profile default",
                "Signatures",
                "Measurements made by",
                "overdue",
            ],
        ),
        (
            "ru",
            [
                "Отчёт о смене — Development heading",
                "Класс условий труда: 3.4",
                "Средства измерений",
                "Методика измерений",
                "Применённые нормы",
                "Подписи",
                "Измерения провёл",
                "просрочена",
                "Показатели по датчикам",
            ],
        ),
        (
            "kk",
            [
                "Ауысым есебі — Development heading",
                "Еңбек жағдайларының сыныбы: 3.4",
                "Өлшеу құралдары",
                "Өлшеу әдістемесі",
                "Қолданылған нормалар",
                "Қолдар",
                "Өлшеуді жүргізген",
                "Датчиктер бойынша көрсеткіштер",
            ],
        ),
    ],
)
async def test_pdf_names_instruments_method_norms_and_signatures_in_each_language(
    api: Api, mine: Mine, tmp_path: Path, lang: str, phrases: list[str]
) -> None:
    shown = await describe_instruments(api, mine)
    response = await api.call(
        "GET",
        f"/api/v1/workplaces/{mine.workplace_id}/report",
        api.tokens["admin"],
        params={"date": DAY.isoformat(), "shift": 1, "format": "pdf", "lang": lang},
    )
    assert response.status_code == 200, response.text
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(response.content)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"shift-report-heading-{lang}.pdf").write_bytes(response.content)
    text = " ".join((await asyncio.to_thread(open_pdf, pdf, tmp_path)).text.split())
    for phrase in phrases + list(shown.values()):
        assert phrase in text, phrase
    # The norms' own source texts are quoted as the reference.
    assert "Order of the Ministry of Labour of Russia 24.01.2014 No 33н" in text


async def test_report_language_follows_accept_language(api: Api, mine: Mine) -> None:
    response = await api.http.get(
        f"/api/v1/workplaces/{mine.workplace_id}/report",
        params={"date": DAY.isoformat(), "shift": 1, "format": "xlsx"},
        headers={
            "Authorization": f"Bearer {api.tokens['admin']}",
            "Accept-Language": "ru-RU,ru;q=0.9,kk;q=0.8",
        },
    )
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames[:3] == ["Сводка", "Датчики", "Факторы"]
    summary = {row[0]: row[1] for row in book["Сводка"].iter_rows(values_only=True)}
    assert summary["класс условий труда"] == "3.4"


async def test_wide_csv_has_a_row_per_sensor_with_the_apis_figures(api: Api, mine: Mine) -> None:
    await describe_instruments(api, mine)
    response = await api.call(
        "GET",
        f"/api/v1/workplaces/{mine.workplace_id}/report",
        api.tokens["admin"],
        params={"date": DAY.isoformat(), "shift": 1, "format": "csv", "layout": "wide"},
    )
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    exposure = await api.ok(
        "GET",
        f"/api/v1/workplaces/{mine.workplace_id}/exposure",
        api.tokens["admin"],
        params={"date": DAY.isoformat(), "shift": 1},
    )
    measured = {s["sensor"]: s for s in exposure["sensors"] if s["samples"]}
    assert sorted(r["sensor"] for r in rows) == sorted(measured)
    compared = 0
    for row in rows:
        assert row["workplace_class"] == exposure["working_class"]
        assert row["B"] == str(exposure["B"])
        api_sensor = measured[row["sensor"]]
        assert row["class"] == (api_sensor["working_class"] or "")
        assert int(row["samples"]) == api_sensor["samples"]
        for key, value in api_sensor["metrics"].items():
            if key == "coverage" or value is None or key not in row:
                continue
            assert float(row[key]) == pytest.approx(value, rel=1e-6, abs=1e-6), key
            compared += 1
    assert compared >= 2 * len(rows)
    co = next(r for r in rows if r["sensor"] == "mine-01-hd-1.co")
    assert (co["model"], co["serial_number"]) == ("Dräger Polytron 7000", "ARFH-0231")
    assert co["calibrated_on"] == "2026-09-01"  # the device's, the sensor has none of its own
