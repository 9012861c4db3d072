"""Shift reports of a workplace: per-sensor charts, metrics, classes, В, ПР and the alerts of
the shift, as PDF (matplotlib), CSV or Excel (openpyxl). ``render(report, format)`` turns a
:class:`ShiftReport` (filled by the API or the CLI from the analytics results) into bytes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from application.report_model import (
    AlertRow,
    FactorRow,
    LimitMark,
    RiskSummary,
    SensorSection,
    ShiftReport,
    quantity_title,
)

ReportFormat = Literal["pdf", "csv", "xlsx"]
FORMATS: tuple[ReportFormat, ...] = ("pdf", "csv", "xlsx")
MEDIA_TYPES: Mapping[str, str] = {
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def render(report: ShiftReport, fmt: ReportFormat) -> bytes:
    """The report as a file's bytes. Imports the renderer it needs only (matplotlib is slow to
    import and only the PDF needs it)."""
    renderer: Callable[[ShiftReport], bytes]
    if fmt == "pdf":
        from dashboards.reports.pdf import render_pdf as renderer
    elif fmt == "csv":
        from dashboards.reports.tables import render_csv as renderer
    elif fmt == "xlsx":
        from dashboards.reports.tables import render_xlsx as renderer
    else:
        raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    return renderer(report)


__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "AlertRow",
    "FactorRow",
    "LimitMark",
    "ReportFormat",
    "RiskSummary",
    "SensorSection",
    "ShiftReport",
    "quantity_title",
    "render",
]
