"""A shift report as PDF with matplotlib alone: text, tables and charts laid out on A4 pages
(``PdfPages``; Agg-free, no pyplot, so it is safe in threads). Fonts are embedded as TrueType
(Type 42) so that the text, Cyrillic included, can be searched and extracted."""

from __future__ import annotations

import functools
import io
import textwrap
import unicodedata
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib
from matplotlib import dates as mdates
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from application.report_model import (
    LimitMark,
    SensorSection,
    ShiftReport,
    metric_cell,
    quantity_title,
)
from dashboards.reports.language import ReportText
from dashboards.reports.wording import (
    ALERT_STATE,
    LINE_KINDS,
    SEVERITY,
    SIGNATURES,
    SOURCE,
    STATUS,
    headline_class,
    level_name,
    methods_of,
    signature_fields,
    word,
)

A4_IN = (8.27, 11.69)
MARGIN = 0.07  # of the page width and height
LINE = 0.0155  # height of one line of 8-pt text, as a fraction of the page
LINE_COLOURS = {
    "action": "#ef6c00",
    "limit": "#c62828",
    "short_term": "#6a1b9a",
    "ceiling": "#7f0000",
    "floor": "#283593",
}
CLASS_COLOURS = {
    "1": "#dff1e0",
    "2": "#dff1e0",
    "3.1": "#fff3c4",
    "3.2": "#ffe0c2",
    "3.3": "#ffc9a8",
    "3.4": "#fbd3d3",
    "4": "#e57373",
}
STYLE = {
    "pdf.fonttype": 42,
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
}


@functools.cache
def _drawable() -> frozenset[int]:
    """Code points the report's font has glyphs for."""
    font = FT2Font(font_manager.findfont(str(STYLE["font.family"])))
    return frozenset(font.get_charmap())


def _clean(text: str) -> str:
    """Text as the PDF can show it: names typed into the registry may hold control characters
    (shown as spaces) or characters DejaVu Sans has no glyph for (shown as "?")."""
    drawable = _drawable()
    return "".join(
        " " if unicodedata.category(c) == "Cc" else c if ord(c) in drawable else "?" for c in text
    )


class _Pages:
    """Lays text and tables top to bottom, opening a new page when one is full."""

    def __init__(self, pdf: PdfPages, report: ShiftReport, t: ReportText) -> None:
        self.pdf = pdf
        self.report = report
        self.t = t
        self.number = 0
        self.fig: Figure | None = None
        self.y = 0.0
        self.new_page()

    def new_page(self) -> None:
        self.flush()
        self.number += 1
        self.fig = Figure(figsize=A4_IN)
        self.y = 1.0 - MARGIN
        r, t = self.report, self.t
        self.fig.text(
            MARGIN,
            MARGIN / 2,
            t(
                "Qorgau shift report · {enterprise}/{workplace} · {date} shift {number} · norms "
                "{norms} · generated {generated} UTC",
                enterprise=r.enterprise,
                workplace=r.workplace,
                date=r.shift_date,
                number=r.shift_number,
                norms=r.norms,
                generated=f"{r.generated_at:%Y-%m-%d %H:%M}",
            ),
            fontsize=6.5,
            color="#5f6b7a",
        )
        self.fig.text(
            1 - MARGIN,
            MARGIN / 2,
            t("page {number}", number=self.number),
            fontsize=6.5,
            color="#5f6b7a",
            ha="right",
        )

    def flush(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig, dpi=200)  # type: ignore[no-untyped-call]
            self.fig = None

    @property
    def page(self) -> Figure:
        assert self.fig is not None
        return self.fig

    def room(self, height: float) -> None:
        if self.y - height < MARGIN:
            self.new_page()

    def text(
        self,
        text: str,
        *,
        size: float = 8,
        bold: bool = False,
        colour: str = "#1d2430",
        wrap: int = 110,
        gap: float = 0.0,
    ) -> None:
        for line in textwrap.wrap(_clean(text), wrap) or [""]:
            height = LINE * size / 8
            self.room(height)
            self.page.text(
                MARGIN,
                self.y - height,
                line,
                fontsize=size,
                color=colour,
                fontweight="bold" if bold else "normal",
                va="bottom",
            )
            self.y -= height * 1.15
        self.y -= gap

    def table(
        self,
        headers: Sequence[str],
        widths: Sequence[float],
        rows: Sequence[Sequence[str]],
        *,
        shade: int | None = None,
    ) -> None:
        """Columns of ``widths`` (fractions of the text width); cells wrap; column ``shade``
        gets the colour of the class of working conditions it holds."""
        span = 1 - 2 * MARGIN
        # Characters of 7.5-pt DejaVu Sans (4.5 pt wide on average, with room) in a column.
        chars = [max(6, int(w * span * A4_IN[0] * 72 / 4.8)) for w in widths]

        def row(cells: Sequence[str], *, bold: bool, fill: str | None) -> None:
            wrapped = [
                textwrap.wrap(_clean(c), n) or [""] for c, n in zip(cells, chars, strict=True)
            ]
            lines = max(len(w) for w in wrapped)
            height = LINE * lines + LINE * 0.4
            self.room(height)
            if fill:
                self.page.add_artist(
                    Rectangle(
                        (MARGIN, self.y - height),
                        span,
                        height,
                        transform=self.page.transFigure,
                        color=fill,
                        zorder=0,
                    )
                )
            x = MARGIN
            for i, (cell, width) in enumerate(zip(wrapped, widths, strict=True)):
                colour = CLASS_COLOURS.get(cells[i]) if shade == i and not bold else None
                if colour:
                    self.page.add_artist(
                        Rectangle(
                            (x, self.y - height),
                            width * span,
                            height,
                            transform=self.page.transFigure,
                            color=colour,
                            zorder=0,
                        )
                    )
                for k, line in enumerate(cell):
                    self.page.text(
                        x + 0.004,
                        self.y - LINE * (k + 1),
                        line,
                        fontsize=7.5,
                        fontweight="bold" if bold else "normal",
                    )
                x += width * span
            self.y -= height
            self.page.add_artist(
                Line2D(
                    [MARGIN, 1 - MARGIN],
                    [self.y, self.y],
                    transform=self.page.transFigure,
                    color="#dde3ea",
                    linewidth=0.6,
                )
            )

        row(headers, bold=True, fill="#eef2f7")
        for cells in rows:
            row(cells, bold=False, fill=None)
        self.y -= LINE

    def axes(self, height: float) -> Axes:
        self.room(height)
        ax = self.page.add_axes(
            (MARGIN + 0.06, self.y - height + 0.035, 1 - 2 * MARGIN - 0.08, height - 0.06)
        )
        self.y -= height
        return ax


def _title(s: SensorSection, t: ReportText) -> str:
    return quantity_title(s.quantity, s.substance, translate=t)


def _key_figures(s: SensorSection, t: ReportText) -> str:
    parts = []
    for key, value in s.metrics.items():
        if key == "coverage" or value is None:
            continue
        label, unit, shown = metric_cell(key, value)
        parts.append(f"{t(label)} {t.num(shown)}{' ' + t(unit) if unit else ''}")
    return "; ".join(parts)


def _line_label(line: LimitMark, unit: str, t: ReportText) -> str:
    """ПДК labels read the same in the three languages; the others are named by their kind."""
    if line.label.startswith("ПДК") or line.kind not in LINE_KINDS:
        return line.label
    return f"{t(LINE_KINDS[line.kind])} {t.num(line.value)} {unit}"


def _chart(ax: Axes, s: SensorSection, zone: ZoneInfo, t: ReportText) -> None:
    # The data line is embedded as an image (a shift is hundreds of points per sensor); titles,
    # axes, ticks and legends stay text, so the report can still be searched.
    ax.plot(
        s.chart_times,
        s.chart_values,
        color="#1565c0",
        linewidth=0.9,
        rasterized=True,
        label=f"{t(s.chart_label)}, {s.unit}",
    )
    ax.fill_between(s.chart_times, s.chart_values, alpha=0.08, color="#1565c0")
    for line in s.lines:
        ax.axhline(
            line.value,
            color=LINE_COLOURS.get(line.kind, "#555"),
            linestyle="--",
            linewidth=0.9,
            label=_line_label(line, s.unit, t),
        )
    cls = " · " + t("class {cls}", cls=s.working_class) if s.working_class else ""
    ax.set_title(_clean(f"{_title(s, t)} — {s.sensor}{cls}"), loc="left")
    ax.set_ylabel(s.unit)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=zone))  # type: ignore[no-untyped-call]
    ax.grid(True, color="#e6e9ee", linewidth=0.6)
    ax.legend(loc="upper right", frameon=False, ncols=2)
    if s.quantity.startswith("noise"):
        low = min(float(s.chart_values.min()) if s.chart_values.size else 60.0, 60.0)
        ax.set_ylim(bottom=max(0.0, low - 5))
    else:
        ax.set_ylim(bottom=0)


def render_pdf(report: ShiftReport, t: ReportText | None = None) -> bytes:
    r = report
    t = t or ReportText()
    zone = ZoneInfo(r.timezone)
    out = io.BytesIO()
    metadata = {
        "Title": _clean(
            t(
                "Shift report {workplace} {date} shift {number}",
                workplace=r.workplace_name,
                date=r.shift_date,
                number=r.shift_number,
            )
        ),
        "Author": "Qorgau",
        "Subject": t("exposure, classes of working conditions, В, ПР"),
    }
    style: Any = STYLE
    with matplotlib.rc_context(style), PdfPages(out, metadata=metadata) as pdf:
        pages = _Pages(pdf, r, t)
        _headline(pages, r, t, zone)
        _tables(pages, r, t)
        pages.room(0.33)  # the heading goes with the first chart
        pages.text(t("Readings through the shift"), size=11, bold=True, gap=0.004)
        pages.text(
            t(
                "One point per minute: energy-mean level for noise (10·lg of the mean of "
                "10^(L/10)), r.m.s. for vibration, mean for concentrations; dashed lines are "
                "the limits in the sensor's unit."
            ),
            colour="#5f6b7a",
            gap=0.006,
        )
        for s in r.sensors:
            if s.chart_values.size:
                _chart(pages.axes(0.25), s, zone, t)
        pages.text(t("Alerts of the shift"), size=11, bold=True, gap=0.004)
        pages.table(
            [t("Opened"), t("Severity"), t("Kind"), t("State"), t("Message")],
            [0.1, 0.09, 0.15, 0.12, 0.54],
            [
                [
                    f"{a.opened_at.astimezone(zone):%H:%M}",
                    word(SEVERITY, a.severity, t),
                    a.kind.replace("_", " "),
                    word(ALERT_STATE, a.state, t)
                    + (" " + t("by {who}", who=a.acknowledged_by) if a.acknowledged_by else ""),
                    a.message,
                ]
                for a in r.alerts
            ]
            or [["", "", "", "", t("No alerts in this shift.")]],
        )
        _instruments_and_method(pages, r, t)
        _signatures(pages, t)
        pages.flush()
    return out.getvalue()


def _headline(pages: _Pages, r: ShiftReport, t: ReportText, zone: ZoneInfo) -> None:
    pages.text(
        t("Shift report — {workplace}", workplace=r.workplace_name), size=16, bold=True, gap=0.004
    )
    start, end = r.start.astimezone(zone), r.end.astimezone(zone)
    pages.text(
        t(
            "{enterprise_name} ({enterprise}) · workplace {workplace} · {profession} · "
            "{headcount} persons",
            enterprise_name=r.enterprise_name,
            enterprise=r.enterprise,
            workplace=r.workplace,
            profession=r.profession or t("profession not given"),
            headcount=r.headcount,
        ),
        size=9,
        colour="#5f6b7a",
    )
    pages.text(
        t(
            "Shift {number} of {date}: {start} – {end} ({zone})",
            number=r.shift_number,
            date=r.shift_date,
            start=f"{start:%Y-%m-%d %H:%M}",
            end=f"{end:%Y-%m-%d %H:%M}",
            zone=r.timezone,
        ),
        size=9,
        colour="#5f6b7a",
        gap=0.01,
    )
    if r.insufficient_data:
        lowest = "—" if r.coverage_min is None else f"{t.num(r.coverage_min * 100)} %"
        pages.text(
            t(
                "PROVISIONAL — not enough data (lowest coverage {lowest}): the class and В below "
                "are not a finding",
                lowest=lowest,
            ),
            size=12,
            bold=True,
            colour="#b3261e",
        )
    b = "—" if r.b is None else f"{r.b} ({t.num(r.b_continuous)})"
    if r.insufficient_data and r.b is not None:
        b += " " + t("(provisional)")
    pages.text(
        t(
            "Class of working conditions: {cls}    Harmfulness index В: {b}",
            cls=headline_class(r, t),
            b=b,
        ),
        size=12,
        bold=True,
    )
    if r.status != "final":
        pages.text(
            t(
                "Assessment status: {status} (late readings may still change it)",
                status=word(STATUS, r.status, t),
            ),
            size=9,
            colour="#5f6b7a",
        )
    if r.risk is not None:
        pages.text(
            t(
                "Occupational risk ПР: {pr}, level {level} ({name}), protection class {protection}",
                pr=t.num(r.risk.pr),
                level=r.risk.level,
                name=level_name(r, t),
                protection=r.risk.protection_class,
            ),
            size=12,
            bold=True,
        )
        pages.text(r.risk.explanation, colour="#5f6b7a")
    else:
        pages.text(
            t("Occupational risk ПР: not available — {why}", why=r.risk_note or "—"), size=10
        )
    if r.explanation:
        pages.text(r.explanation, colour="#5f6b7a", gap=0.01)


def _tables(pages: _Pages, r: ShiftReport, t: ReportText) -> None:
    pages.text(t("Classes of working conditions"), size=11, bold=True, gap=0.004)
    pages.table(
        [t("Factor"), t("Class"), "В", t("В cont."), t("Source"), t("Basis")],
        [0.2, 0.07, 0.05, 0.08, 0.1, 0.5],
        [
            [
                f.factor,
                f.working_class,
                str(f.b),
                t.num(f.b_continuous),
                word(SOURCE, f.source, t),
                f.basis,
            ]
            for f in r.factors
        ]
        or [["—", "", "", "", "", t("no factor could be classed")]],
        shade=1,
    )
    pages.text(t("Metrics per sensor"), size=11, bold=True, gap=0.004)
    rows = []
    for s in r.sensors:
        coverage = s.metrics.get("coverage")
        cov = "—" if coverage is None else f"{t.num(coverage * 100)} %"
        if s.insufficient:
            cov += " " + t("(insufficient)")
        rows.append([s.sensor, _title(s, t), _key_figures(s, t), s.working_class or "—", cov])
    rows += [[code, "", why, "—", ""] for code, why in r.skipped]
    pages.table(
        [t("Sensor"), t("Quantity"), t("Shift metrics"), t("Class"), t("Coverage")],
        [0.2, 0.17, 0.43, 0.07, 0.13],
        rows,
        shade=3,
    )


def _instruments_and_method(pages: _Pages, r: ShiftReport, t: ReportText) -> None:
    pages.text(t("Instruments"), size=11, bold=True, gap=0.004)
    day = r.start.date()
    rows = []
    for i in r.instruments:
        calibrated = "—" if i.calibrated_on is None else i.calibrated_on.isoformat()
        if i.calibration_overdue(day):
            calibrated += " " + t("(calibration overdue since {due})", due=i.calibration_due)
        rows.append(
            [
                i.sensor,
                i.device_name or i.device,
                i.model or "—",
                i.serial_number or "—",
                calibrated,
                i.calibration_certificate or "—",
            ]
        )
    pages.table(
        [
            t("Sensor"),
            t("Device"),
            t("Model"),
            t("Serial number"),
            t("Last calibration"),
            t("Certificate"),
        ],
        [0.2, 0.2, 0.15, 0.14, 0.16, 0.15],
        rows or [["—", "", "", "", "", t("no instrument registered for this workplace")]],
    )
    pages.text(t("Measurement method"), size=11, bold=True, gap=0.004)
    for line in methods_of(r, t):
        pages.text(line, gap=0.002)
    pages.text(t("Norms applied: profile {profile}", profile=r.norms), size=9, bold=True, gap=0.002)
    if r.norms_description:
        pages.text(r.norms_description, colour="#5f6b7a", gap=0.002)
    for reference in r.norms_references:
        pages.text("· " + reference, colour="#5f6b7a", wrap=120)
    pages.y -= LINE


def _signatures(pages: _Pages, t: ReportText) -> None:
    pages.room(LINE * (3 + 3 * len(SIGNATURES)))
    pages.text(t("Signatures"), size=11, bold=True, gap=0.004)
    blank = "_" * 38
    for role in SIGNATURES:
        pages.text(t(role), bold=True)
        pages.text(f"{blank}    {signature_fields(t)}", gap=0.01)
