"""Shift reports: what the report of one shift of one workplace contains, gathered from the same
places as the rest of the API (``assess_shift`` for metrics, classes and В; ``workplace_risk``
for ПР; the minute rollups for the charts; the alerts table), then rendered by
``dashboards.reports``. Used by ``GET /api/v1/workplaces/{id}/report`` and ``qorgau report``."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
from psycopg import AsyncConnection

from analytics import Norms
from analytics.alerts import AlertNorms, SubjectSpec, thresholds_for
from api.exposure import assess_shift, insufficient, workplace_sensors
from api.history import ShiftMemo
from api.running import limit_lines
from api.scoring import workplace_risk
from api.shifts import Shift
from dashboards.reports import (
    AlertRow,
    FactorRow,
    LimitMark,
    RiskSummary,
    SensorSection,
    ShiftReport,
)
from store.alerts import alerts_during
from store.catalog import Row
from store.rollups import fetch_rollup, representative_statistic

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
) -> ShiftReport:
    sensors = await workplace_sensors(conn, workplace["id"])
    found = await assess_shift(conn, norms, workplace, shift, sensors=sensors)
    a = found.assessment
    ids = dict(found.sensor_ids)
    units = {s.code: s.unit for s in sensors}
    charts = await fetch_rollup(conn, list(ids.values()), shift.start, shift.end, "1 min")
    flagged = set(insufficient(found))
    sections: list[SensorSection] = []
    for s in a.sensors if a is not None else ():
        unit = units.get(s.sensor, "")
        rollup = charts.get(ids.get(s.sensor, -1))
        statistic = representative_statistic(s.quantity)
        if rollup is not None and len(rollup):
            times = rollup.starts
            values = rollup.level(s.quantity)
        else:
            times = np.empty(0, dtype="datetime64[us]")
            values = np.empty(0, dtype=np.float64)
        spec = SubjectSpec(enterprise=enterprise["code"], device="", sensor=s.sensor,
                           quantity=s.quantity, unit=unit, substance=s.substance)  # fmt: skip
        lines = tuple(
            LimitMark(line.label, line.value, line.kind)
            for line in limit_lines(thresholds_for(spec, norms, alert_norms), unit)
        )
        sections.append(
            SensorSection(
                sensor=s.sensor,
                quantity=s.quantity,
                unit=unit,
                substance=s.substance,
                samples=found.samples.get(s.sensor, 0),
                metrics={k: _finite(v) for k, v in s.metrics.items()},
                working_class=None if s.working_class is None else s.working_class.value,
                factor=s.factor,
                basis=s.basis,
                insufficient=s.sensor in flagged,
                chart_label=CHART_LABELS[statistic],
                chart_times=times,
                chart_values=values,
                lines=lines,
            )
        )
    factors = tuple(
        FactorRow(f.factor, f.working_class.value, f.b, float(f.b_continuous),
                  "measured" if f.sensors else "entered", f.basis)
        for f in (a.factors if a is not None else ())
    )  # fmt: skip
    # ПР of this very shift, from the assessment above (not computed twice).
    risk = await workplace_risk(
        conn, norms, workplace, shift.day, shift.day, memo=ShiftMemo(0), shifts=[found]
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
        )
    alerts = await alerts_during(conn, enterprise["code"], workplace["code"], shift.start,
                                 shift.end)  # fmt: skip
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
        working_class=None if a is None or a.working_class is None else a.working_class.value,
        b=found.b,
        b_continuous=found.b_continuous,
        rule=None if a is None or a.combination is None else a.combination.rule,
        deciding_factors=()
        if a is None or a.combination is None
        else tuple(a.combination.deciding),
        explanation=found.note if a is None else a.explanation,
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
        skipped=tuple((s.sensor.code, s.reason) for s in found.skipped),
    )
