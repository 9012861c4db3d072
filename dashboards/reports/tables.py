"""A shift report as CSV and as an Excel workbook (openpyxl: a sheet per part, the per-minute
chart data included, texts in the report's language).

Two CSV layouts, both for programs and spreadsheets, so their names are stable English ids:
long (one row per figure: section, item, name, value, unit) and wide (one row per sensor, a
column per figure with its unit in the column name; every shift has the same columns, so the
files of many shifts concatenate)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from application.report_model import (
    METRICS,
    ShiftReport,
    metric_cell,
    quantity_title,
)
from dashboards.reports import wording as w
from dashboards.reports.language import ReportText
from store.registry import InstrumentRecord

CSV_HEADER = ("section", "item", "name", "value", "unit")
CLASS_FILLS = {
    "1": "DFF1E0",
    "2": "DFF1E0",
    "3.1": "FFF3C4",
    "3.2": "FFE0C2",
    "3.3": "FFC9A8",
    "3.4": "FBD3D3",
    "4": "E57373",
}


def _num(value: float | None) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), 6)


def _rows(r: ShiftReport) -> Iterator[tuple[str, str, str, object, str]]:
    zone = ZoneInfo(r.timezone)
    yield "shift", r.workplace, "enterprise", r.enterprise, ""
    yield "shift", r.workplace, "workplace name", r.workplace_name, ""
    yield "shift", r.workplace, "date", r.shift_date, ""
    yield "shift", r.workplace, "shift", r.shift_number, ""
    yield "shift", r.workplace, "start", r.start.astimezone(zone).isoformat(), r.timezone
    yield "shift", r.workplace, "end", r.end.astimezone(zone).isoformat(), r.timezone
    yield "workplace", r.workplace, "class", r.working_class or "", ""
    yield "workplace", r.workplace, "B", "" if r.b is None else r.b, "1..5"
    yield "workplace", r.workplace, "status", r.status, ""
    yield "workplace", r.workplace, "insufficient_data", str(r.insufficient_data).lower(), ""
    coverage = "" if r.coverage_min is None else _num(r.coverage_min)
    yield "workplace", r.workplace, "coverage_min", coverage, "0..1"
    yield "workplace", r.workplace, "B continuous", _num(r.b_continuous) or "", "1..5"
    yield "workplace", r.workplace, "deciding factors", " ".join(r.deciding_factors), ""
    for s in r.sensors:
        yield "sensor", s.sensor, "quantity", s.quantity, ""
        yield "sensor", s.sensor, "samples", s.samples, ""
        for key, value in s.metrics.items():
            label, unit, shown = metric_cell(key, value)
            yield "sensor", s.sensor, label, "" if shown is None else _num(shown), unit
        yield "sensor", s.sensor, "class", s.working_class or "", ""
        yield "sensor", s.sensor, "insufficient data", str(s.insufficient).lower(), ""
    for code, why in r.skipped:
        yield "sensor", code, "not assessed", why, ""
    for f in r.factors:
        yield "factor", f.factor, "class", f.working_class, ""
        yield "factor", f.factor, "B", f.b, "1..5"
        yield "factor", f.factor, "source", f.source, ""
    if r.risk is not None:
        yield "risk", r.workplace, "PR", _num(r.risk.pr), "1..5"
        yield "risk", r.workplace, "level", r.risk.level, r.risk.level_name
        yield "risk", r.workplace, "protection class", r.risk.protection_class, ""
        for name, value in r.risk.indicators.items():
            yield "risk", r.workplace, name, value, "1..5"
    else:
        yield "risk", r.workplace, "PR", "", r.risk_note or ""
    for a in r.alerts:
        item = f"{a.opened_at.astimezone(zone):%H:%M} {a.kind}"
        yield "alert", item, a.severity, a.state, a.message
    for i in r.instruments:
        for field_name, field_value in _instrument_fields(i):
            yield "instrument", i.sensor, field_name, field_value, ""
    yield "report", "", "norms", r.norms, ""
    for reference in r.norms_references:
        yield "report", "", "norms reference", reference, ""


def _instrument_fields(i: InstrumentRecord) -> list[tuple[str, object]]:
    return [
        ("device", i.device),
        ("model", i.model or ""),
        ("serial number", i.serial_number or ""),
        ("calibrated on", "" if i.calibrated_on is None else i.calibrated_on.isoformat()),
        ("calibration certificate", i.calibration_certificate or ""),
        ("calibration due", "" if i.calibration_due is None else i.calibration_due.isoformat()),
    ]


def render_csv(report: ShiftReport) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(_rows(report))
    return out.getvalue().encode("utf-8")


# Columns of the wide CSV: the shift, the workplace's result, then per sensor.
WIDE_SHIFT = (
    "enterprise",
    "workplace",
    "date",
    "shift",
    "start",
    "end",
    "timezone",
    "status",
    "workplace_class",
    "B",
    "B_continuous",
    "insufficient_data",
    "PR",
    "risk_level",
)
WIDE_SENSOR = (
    "sensor",
    "quantity",
    "substance",
    "unit",
    "samples",
    "class",
    "factor",
    "sensor_insufficient_data",
    "coverage_pct",
)
WIDE_INSTRUMENT = ("device", "model", "serial_number", "calibrated_on", "calibration_certificate")
# Metric ids already carry their unit (lex8h_db, twa8h_mg_m3); coverage has its own column.
WIDE_METRICS = tuple(k for k in METRICS if k != "coverage")


def wide_header() -> list[str]:
    return [*WIDE_SHIFT, *WIDE_SENSOR, *WIDE_METRICS, *WIDE_INSTRUMENT]


def render_wide_csv(report: ShiftReport) -> bytes:
    """One row per sensor assessed in the shift (one row with empty sensor columns when none
    was)."""
    r = report
    zone = ZoneInfo(r.timezone)
    shift: list[object] = [
        r.enterprise,
        r.workplace,
        r.shift_date,
        r.shift_number,
        r.start.astimezone(zone).isoformat(),
        r.end.astimezone(zone).isoformat(),
        r.timezone,
        r.status,
        r.working_class or "",
        "" if r.b is None else r.b,
        _blank(r.b_continuous),
        str(r.insufficient_data).lower(),
        "" if r.risk is None else _num(r.risk.pr),
        "" if r.risk is None else r.risk.level,
    ]
    instruments = {i.sensor: i for i in r.instruments}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(wide_header())
    for s in r.sensors:
        coverage = s.metrics.get("coverage")
        sensor: list[object] = [
            s.sensor,
            s.quantity,
            s.substance or "",
            s.unit,
            s.samples,
            s.working_class or "",
            s.factor or "",
            str(s.insufficient).lower(),
            "" if coverage is None else _num(coverage * 100),
        ]
        metrics = [_blank(s.metrics.get(k)) for k in WIDE_METRICS]
        i = instruments.get(s.sensor)
        device = [] if i is None else [v for _, v in _instrument_fields(i)][:5]
        writer.writerow(shift + sensor + metrics + (device or [""] * len(WIDE_INSTRUMENT)))
    if not r.sensors:
        writer.writerow(shift + [""] * (len(wide_header()) - len(shift)))
    return out.getvalue().encode("utf-8")


def _blank(value: object) -> object:
    shown = _num(value) if isinstance(value, float | int) or value is None else None
    return "" if shown is None else shown


def _sheet(
    ws: Worksheet, headers: list[str], rows: list[list[object]], shade: int | None = None
) -> None:
    ws.append(headers)
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="EEF2F7")
    for row in rows:
        ws.append(row)
        if shade is not None:
            cell = ws.cell(ws.max_row, shade + 1)
            fill = CLASS_FILLS.get(str(cell.value))
            if fill:
                cell.fill = PatternFill("solid", fgColor=fill)
    for i, header in enumerate(headers, start=1):
        longest = max([len(str(header))] + [len(str(r[i - 1] or "")) for r in rows])
        ws.column_dimensions[get_column_letter(i)].width = min(max(10, longest + 2), 70)
    ws.freeze_panes = "A2"


def render_xlsx(report: ShiftReport, t: ReportText | None = None) -> bytes:
    r = report
    t = t or ReportText()
    zone = ZoneInfo(r.timezone)
    wb = Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = t("Summary")
    risk = r.risk
    _sheet(
        summary,
        [t("item"), t("value")],
        [
            [t("enterprise"), f"{r.enterprise_name} ({r.enterprise})"],
            [t("workplace"), f"{r.workplace_name} ({r.workplace})"],
            [t("profession"), r.profession or ""],
            [t("headcount, persons"), r.headcount],
            [t("shift"), t("{date} shift {number}", date=r.shift_date, number=r.shift_number)],
            [t("start"), r.start.astimezone(zone).strftime("%Y-%m-%d %H:%M")],
            [t("end"), r.end.astimezone(zone).strftime("%Y-%m-%d %H:%M")],
            [t("time zone"), r.timezone],
            [t("class of working conditions"), w.headline_class(r, t)],
            [t("assessment status"), w.word(w.STATUS, r.status, t)],
            [t("insufficient data"), r.insufficient_data],
            [t("lowest coverage"), _num(r.coverage_min)],
            [t("harmfulness index В (1..5)"), r.b],
            [t("В continuous"), _num(r.b_continuous)],
            [t("deciding factors"), ", ".join(r.deciding_factors)],
            ["ПР", None if risk is None else _num(risk.pr)],
            [t("risk level"), None if risk is None else f"{risk.level} ({w.level_name(r, t)})"],
            [t("protection class"), None if risk is None else risk.protection_class],
            [t("ПР note"), r.risk_note or ""],
            [t("norms"), r.norms],
            [t("generated (UTC)"), r.generated_at.strftime("%Y-%m-%d %H:%M:%S")],
        ],
    )
    keys = [k for k in METRICS if any(k in s.metrics for s in r.sensors)]
    headers = [t("sensor"), t("quantity"), t("samples"), t("class"), t("insufficient data")]
    for key in keys:
        label, unit, _ = metric_cell(key, None)
        headers.append(f"{t(label)}, {t(unit)}" if unit else t(label))
    rows: list[list[object]] = []
    for s in r.sensors:
        title = quantity_title(s.quantity, s.substance, translate=t)
        row: list[object] = [s.sensor, title, s.samples, s.working_class, s.insufficient]
        row += [_num(metric_cell(k, s.metrics.get(k))[2]) for k in keys]
        rows.append(row)
    rows += [[code, why, 0, None, None] + [None] * len(keys) for code, why in r.skipped]
    _sheet(wb.create_sheet(t("Sensors")), headers, rows, shade=3)
    _sheet(
        wb.create_sheet(t("Factors")),
        [t("factor"), t("class"), "В", t("В continuous"), t("source"), t("basis")],
        [
            [
                f.factor,
                f.working_class,
                f.b,
                _num(f.b_continuous),
                w.word(w.SOURCE, f.source, t),
                f.basis,
            ]
            for f in r.factors
        ],
        shade=1,
    )
    _sheet(
        wb.create_sheet(t("Alerts")),
        [
            t("opened"),
            t("severity"),
            t("kind"),
            t("state"),
            t("sensor"),
            t("acknowledged by"),
            t("resolved"),
            t("message"),
        ],
        [
            [
                a.opened_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                w.word(w.SEVERITY, a.severity, t),
                a.kind,
                w.word(w.ALERT_STATE, a.state, t),
                a.sensor,
                a.acknowledged_by,
                None
                if a.resolved_at is None
                else a.resolved_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                a.message,
            ]
            for a in r.alerts
        ],
    )
    _sheet(
        wb.create_sheet(t("Instruments")),
        [
            t("sensor"),
            t("device"),
            t("model"),
            t("serial number"),
            t("last calibration"),
            t("certificate"),
            t("calibration due"),
        ],
        [
            [
                i.sensor,
                i.device_name or i.device,
                i.model,
                i.serial_number,
                i.calibrated_on,
                i.calibration_certificate,
                i.calibration_due,
            ]
            for i in r.instruments
        ],
    )
    method: list[list[object]] = [[line] for line in w.methods_of(r, t)]
    method += [[t("Norms applied: profile {profile}", profile=r.norms)], [r.norms_description]]
    method += [[reference] for reference in r.norms_references]
    method += [[""]]
    method += [[f"{t(role)}: ______________    {w.signature_fields(t)}"] for role in w.SIGNATURES]
    _sheet(wb.create_sheet(t("Method and signatures")), [t("Measurement method")], method)
    charted = [s for s in r.sensors if s.chart_values.size]
    minutes = sorted(
        {int(t) for s in charted for t in s.chart_times.astype("datetime64[s]").astype(np.int64)}
    )
    by_sensor = [
        dict(
            zip(
                s.chart_times.astype("datetime64[s]").astype(np.int64).tolist(),
                s.chart_values.tolist(),
                strict=True,
            )
        )
        for s in charted
    ]
    data_rows: list[list[object]] = [
        [datetime.fromtimestamp(m, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M")]
        + [_num(values.get(m)) for values in by_sensor]
        for m in minutes
    ]
    _sheet(
        wb.create_sheet(t("Per minute")),
        [t("minute ({zone})", zone=r.timezone)]
        + [f"{s.sensor} {t(s.chart_label)}, {s.unit}" for s in charted],
        data_rows,
    )
    for ws in wb.worksheets:
        for row in ws.iter_rows(min_row=2):
            for cell in row:
                cell.alignment = Alignment(vertical="top", wrap_text=False)  # type: ignore[attr-defined]
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
