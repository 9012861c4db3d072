"""Shift reports of a workplace: per-sensor charts, metrics, classes, В, ПР and the alerts of
the shift, as PDF (matplotlib), CSV or Excel (openpyxl), in Kazakh, Russian or English.
``render(report, format, lang=...)`` turns a :class:`ShiftReport` (filled by the API or the CLI
from the stored shift assessment) into bytes: the ``ReportRenderer`` of
``application.report_files``, which the composition root hands the API."""

from __future__ import annotations

from application.report_files import FORMATS, MEDIA_TYPES, ReportFormat
from application.report_model import (
    AlertRow,
    FactorRow,
    LimitMark,
    RiskSummary,
    SensorSection,
    ShiftReport,
    quantity_title,
)
from dashboards.reports.language import LANGUAGES, Language, ReportText, pick_language


def render(
    report: ShiftReport, fmt: ReportFormat, *, lang: Language = "en", wide: bool = False
) -> bytes:
    """The report as a file's bytes, its texts in ``lang``. ``wide`` (CSV only): one row per
    sensor with a column per figure, instead of one row per figure. Imports the renderer it
    needs only (matplotlib is slow to import and only the PDF needs it)."""
    t = ReportText(lang)
    if fmt == "pdf":
        from dashboards.reports.pdf import render_pdf

        return render_pdf(report, t)
    if fmt == "csv":
        from dashboards.reports.tables import render_csv, render_wide_csv

        return render_wide_csv(report) if wide else render_csv(report)
    if fmt == "xlsx":
        from dashboards.reports.tables import render_xlsx

        return render_xlsx(report, t)
    raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")


__all__ = [
    "FORMATS",
    "LANGUAGES",
    "MEDIA_TYPES",
    "AlertRow",
    "FactorRow",
    "Language",
    "LimitMark",
    "ReportFormat",
    "ReportText",
    "RiskSummary",
    "SensorSection",
    "ShiftReport",
    "pick_language",
    "quantity_title",
    "render",
]
