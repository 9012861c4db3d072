"""Shift reports: what the report of one shift of one workplace contains, gathered from the same
places as every other surface (the stored shift assessment for metrics, classes, В and
coverage; ``workplace_risk`` for ПР of that shift; the minute rollups for the charts; the alerts
table), then rendered by ``dashboards.reports``. Used by ``GET /api/v1/workplaces/{id}/report``
and ``qorgau report``."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
from psycopg import AsyncConnection

from analytics import Norms
from analytics.alerts import AlertNorms, SubjectSpec, thresholds_for
from application.assessments import sensors_by_workplace, stored_shift
from application.report_model import (
    AlertRow,
    FactorRow,
    LimitMark,
    RiskSummary,
    SensorSection,
    ShiftReport,
)
from application.running import limit_lines
from application.schedule import Shift
from application.scoring import workplace_risk
from store.alerts import alerts_during
from store.catalog import Row
from store.registry import instruments_of
from store.rollups import fetch_rollup, representative_statistic

# Where in the norms profile the tables and limits behind each quantity live (leaf paths of
# ``Norms.sources``), then those behind every report (coverage, combination, В, ПР). The sources
# quoted are the profile's own, so an enterprise profile's references show up as they are.
NORMS_PATHS: dict[str, tuple[str, ...]] = {
    "noise_laeq": ("bands.noise_lex8h.", "noise."),
    "noise_lcpeak": ("bands.noise_lex8h.",),
    "vib_hav": ("bands.vibration_hand_arm.",),
    "vib_wbv_x": ("bands.vibration_whole_body_xy.", "vibration.k_xy"),
    "vib_wbv_y": ("bands.vibration_whole_body_xy.", "vibration.k_xy"),
    "vib_wbv_z": ("bands.vibration_whole_body_z.", "vibration.k_z"),
    "gas": ("bands.chemical_",),
    "dust": ("bands.dust_fibrogenic_",),
}
EVERY_REPORT_PATHS = (
    "sampling.min_coverage",
    "combination.",
    "harmfulness.",
    "risk.weight_",
    "risk.level_thresholds",
)


def norms_references(norms: Norms, sensors: list[tuple[str, str | None]]) -> tuple[str, ...]:
    """The distinct source texts of what assessed ``sensors`` ((quantity, substance) pairs)."""
    prefixes: list[str] = []
    for quantity, substance in sensors:
        prefixes += NORMS_PATHS.get(quantity, ())
        if substance:
            prefixes.append(f"substances.{substance}.")
    prefixes += EVERY_REPORT_PATHS
    found: dict[str, None] = {}
    for prefix in prefixes:
        for path, source in norms.sources.items():
            if path.startswith(prefix):
                found.setdefault(source)
    return tuple(found)


CHART_LABELS = {
    "energy_mean_db": "1-min energy-mean level",
    "rms": "1-min r.m.s.",
    "mean": "1-min mean",
    "max": "1-min maximum",
}


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


async def shift_report(
    conn: AsyncConnection[Any],
    norms: Norms,
    alert_norms: AlertNorms,
    workplace: Row,
    enterprise: Row,
    shift: Shift,
    *,
    late_s: float,
) -> ShiftReport:
    refs = (await sensors_by_workplace(conn, [workplace["id"]]))[workplace["id"]]
    found = await stored_shift(conn, norms, workplace, shift, late_s)
    units = {s.code: s.unit for s in refs}
    ids = {s.code: s.id for s in refs}
    charts = await fetch_rollup(conn, list(ids.values()), shift.start, shift.end, "1 min")
    sections: list[SensorSection] = []
    skipped: list[tuple[str, str]] = []
    for s in found.sensors:
        if s["working_class"] is None and not s["samples"]:
            skipped.append((s["sensor"], s["basis"]))
            continue
        unit = units.get(s["sensor"], "")
        rollup = charts.get(ids.get(s["sensor"], -1))
        statistic = representative_statistic(s["quantity"])
        if rollup is not None and len(rollup):
            times = rollup.starts
            values = rollup.level(s["quantity"])
        else:
            times = np.empty(0, dtype="datetime64[us]")
            values = np.empty(0, dtype=np.float64)
        spec = SubjectSpec(
            enterprise=enterprise["code"],
            device="",
            sensor=s["sensor"],
            quantity=s["quantity"],
            unit=unit,
            substance=s["substance"],
        )
        lines = tuple(
            LimitMark(line.label, line.value, line.kind)
            for line in limit_lines(thresholds_for(spec, norms, alert_norms), unit)
        )
        sections.append(
            SensorSection(
                sensor=s["sensor"],
                quantity=s["quantity"],
                unit=unit,
                substance=s["substance"],
                samples=int(s["samples"]),
                metrics={k: _finite(v) for k, v in s["metrics"].items()},
                working_class=s["working_class"],
                factor=s["factor"],
                basis=s["basis"],
                insufficient=bool(s["insufficient_data"]),
                chart_label=CHART_LABELS[statistic],
                chart_times=times,
                chart_values=values,
                lines=lines,
            )
        )
    factors = tuple(
        FactorRow(
            f["factor"],
            f["working_class"],
            int(f["B"]),
            float(f["B_continuous"]),
            f["source"],
            f["basis"],
        )
        for f in found.factors
    )
    # ПР of this very shift, from the stored assessment above.
    risk = await workplace_risk(
        conn,
        norms,
        workplace,
        shift.day,
        shift.day,
        late_s=late_s,
        basis=found,
        basis_known=True,
    )
    summary: RiskSummary | None = None
    if risk.risk is not None:
        summary = RiskSummary(
            pr=risk.risk.pr,
            level=risk.risk.level,
            level_name=risk.risk.level_name,
            protection_class=risk.risk.protection_class,
            indicators={c.indicator: c.value for c in risk.risk.contributions},
            explanation=risk.risk.explanation,
            level_names={
                lang: names[risk.risk.level - 1]
                for lang, names in (
                    ("en", norms.risk.level_names),
                    ("ru", norms.risk.level_names_ru),
                    ("kk", norms.risk.level_names_kz),
                )
                if len(names) >= risk.risk.level
            },
        )
    alerts = await alerts_during(
        conn, enterprise["code"], workplace["code"], shift.start, shift.end
    )
    return ShiftReport(
        enterprise=enterprise["code"],
        enterprise_name=enterprise["name"],
        workplace=workplace["code"],
        workplace_name=workplace["name"],
        profession=workplace["profession"],
        headcount=int(workplace["headcount"]),
        timezone=workplace["timezone"],
        shift_date=shift.day.isoformat(),
        shift_number=shift.number,
        start=shift.start,
        end=shift.end,
        working_class=found.working_class,
        b=found.b,
        b_continuous=found.b_continuous,
        rule=found.detail.get("rule"),
        deciding_factors=tuple(found.deciding_factors),
        explanation=found.explanation or found.note,
        sensors=tuple(sections),
        factors=factors,
        risk=summary,
        risk_note=risk.reason,
        alerts=tuple(
            AlertRow(
                x["opened_at"],
                x["severity"],
                x["kind"],
                x["state"],
                x["sensor"],
                x["message"],
                x["acknowledged_by"],
                x["resolved_at"],
            )
            for x in alerts
        ),
        norms=f"{norms.name} {norms.version}",
        generated_at=datetime.now(UTC),
        skipped=tuple(skipped),
        status=found.status,
        coverage_min=found.coverage_min,
        insufficient_data=found.insufficient_data,
        instruments=tuple(await instruments_of(conn, workplace["id"])),
        norms_description=norms.description,
        norms_references=norms_references(norms, [(s.quantity, s.substance) for s in sections]),
    )
