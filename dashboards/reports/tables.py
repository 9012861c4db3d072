"""A shift report as CSV (one long table: section, item, name, value, unit) and as an Excel
workbook (openpyxl: a sheet per part, the per-minute chart data included)."""

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

from application.report_model import METRICS, ShiftReport, metric_cell

CSV_HEADER = ("section", "item", "name", "value", "unit")
CLASS_FILLS = {"1": "DFF1E0", "2": "DFF1E0", "3.1": "FFF3C4", "3.2": "FFE0C2", "3.3": "FFC9A8",
               "3.4": "FBD3D3", "4": "E57373"}  # fmt: skip


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
    yield "report", "", "norms", r.norms, ""


def render_csv(report: ShiftReport) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(_rows(report))
    return out.getvalue().encode("utf-8")


def _sheet(ws: Worksheet, headers: list[str], rows: list[list[object]],
           shade: int | None = None) -> None:  # fmt: skip
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


def render_xlsx(report: ShiftReport) -> bytes:
    r = report
    zone = ZoneInfo(r.timezone)
    wb = Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = "Summary"
    _sheet(summary, ["item", "value"], [
        ["enterprise", f"{r.enterprise_name} ({r.enterprise})"],
        ["workplace", f"{r.workplace_name} ({r.workplace})"],
        ["profession", r.profession or ""],
        ["headcount, persons", r.headcount],
        ["shift", f"{r.shift_date} shift {r.shift_number}"],
        ["start", r.start.astimezone(zone).strftime("%Y-%m-%d %H:%M")],
        ["end", r.end.astimezone(zone).strftime("%Y-%m-%d %H:%M")],
        ["time zone", r.timezone],
        ["class of working conditions", r.headline_class],
        ["assessment status", r.status],
        ["insufficient data", r.insufficient_data],
        ["lowest coverage", _num(r.coverage_min)],
        ["harmfulness index В (1..5)", r.b],
        ["В continuous", _num(r.b_continuous)],
        ["deciding factors", ", ".join(r.deciding_factors)],
        ["ПР", None if r.risk is None else _num(r.risk.pr)],
        ["risk level", None if r.risk is None else f"{r.risk.level} ({r.risk.level_name})"],
        ["protection class", None if r.risk is None else r.risk.protection_class],
        ["ПР note", r.risk_note or ""],
        ["norms", r.norms],
        ["generated (UTC)", r.generated_at.strftime("%Y-%m-%d %H:%M:%S")],
    ])  # fmt: skip
    keys = [k for k in METRICS if any(k in s.metrics for s in r.sensors)]
    headers = ["sensor", "quantity", "samples", "class", "insufficient data"]
    for key in keys:
        label, unit, _ = metric_cell(key, None)
        headers.append(f"{label}, {unit}" if unit else label)
    rows: list[list[object]] = []
    for s in r.sensors:
        row: list[object] = [s.sensor, s.title, s.samples, s.working_class, s.insufficient]
        row += [_num(metric_cell(k, s.metrics.get(k))[2]) for k in keys]
        rows.append(row)
    rows += [[code, why, 0, None, None] + [None] * len(keys) for code, why in r.skipped]
    _sheet(wb.create_sheet("Sensors"), headers, rows, shade=3)
    _sheet(wb.create_sheet("Factors"), ["factor", "class", "В", "В continuous", "source",
           "basis"], [[f.factor, f.working_class, f.b, _num(f.b_continuous), f.source, f.basis]
                     for f in r.factors], shade=1)  # fmt: skip
    _sheet(wb.create_sheet("Alerts"), ["opened", "severity", "kind", "state", "sensor",
           "acknowledged by", "resolved", "message"], [[
               a.opened_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"), a.severity, a.kind,
               a.state, a.sensor, a.acknowledged_by,
               None if a.resolved_at is None
               else a.resolved_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
               a.message] for a in r.alerts])  # fmt: skip
    charted = [s for s in r.sensors if s.chart_values.size]
    minutes = sorted({int(t) for s in charted for t in s.chart_times.astype("datetime64[s]")
                      .astype(np.int64)})  # fmt: skip
    by_sensor = [
        dict(zip(s.chart_times.astype("datetime64[s]").astype(np.int64).tolist(),
                 s.chart_values.tolist(), strict=True))
        for s in charted
    ]  # fmt: skip
    data_rows: list[list[object]] = [
        [datetime.fromtimestamp(m, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M")]
        + [_num(values.get(m)) for values in by_sensor]
        for m in minutes
    ]
    _sheet(wb.create_sheet("Per minute"), [f"minute ({r.timezone})"] + [
        f"{s.sensor} {s.chart_label}, {s.unit}" for s in charted], data_rows)  # fmt: skip
    for ws in wb.worksheets:
        for row in ws.iter_rows(min_row=2):
            for cell in row:
                cell.alignment = Alignment(vertical="top", wrap_text=False)  # type: ignore[attr-defined]
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
