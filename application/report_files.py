"""The files a shift report is delivered as (PDF, CSV, Excel), in which language, and the
interface of the renderer that writes them.

The renderers themselves (matplotlib, openpyxl) are a surface, ``dashboards.reports``; the API
serves their files without importing them: the composition root hands it a
:class:`ReportRenderer` (``create_app(settings, render_report=...)``). What both sides must agree
on, the formats, their media types and the language of a request, is here below them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol, cast

from application import localisation
from application.localisation import LocaleCode
from application.report_model import ShiftReport

ReportFormat = Literal["pdf", "csv", "xlsx"]
FORMATS: tuple[ReportFormat, ...] = ("pdf", "csv", "xlsx")
MEDIA_TYPES: Mapping[str, str] = {
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

Language = LocaleCode
LANGUAGES: tuple[str, ...] = localisation.LOCALES


def pick_language(accept_language: str | None, default: Language) -> Language:
    """The best of ``LANGUAGES`` an ``Accept-Language`` header asks for, else ``default``."""
    found = localisation.negotiate(None, accept_language, default)
    return cast(Language, found)  # negotiate answers one of LOCALES


class ReportRenderer(Protocol):
    """Writes a report as a file's bytes, its texts in ``lang``; ``wide`` (CSV only): one row
    per sensor with a column per figure, instead of one row per figure."""

    def __call__(
        self, report: ShiftReport, fmt: ReportFormat, *, lang: Language = "en", wide: bool = False
    ) -> bytes: ...
