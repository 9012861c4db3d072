"""Versioned column sets of the exports for risk scoring and insurers.

A column set never changes once published: a new column, a renamed one or a changed meaning
makes a new set (``v2``) beside the old one. Empty cells (JSON null) mean "not available", with
the reason in ``unscored_reason`` for workplaces.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from analytics import Norms
from api.models_risk import EnterpriseRiskPublic
from application.scoring import EnterpriseResult, tariff_for

ENTERPRISE_COLUMNS: tuple[str, ...] = (
    "enterprise_code",
    "enterprise_name",
    "region",
    "activity_code",
    "activity_risk_class",
    "period_from",
    "period_to",
    "workplaces_scored",
    "workplaces_unscored",
    "headcount_scored",
    "mean_pr",
    "level",
    "level_name",
    "share_level_1",
    "share_level_2",
    "share_level_3",
    "share_level_4",
    "share_level_5",
    "base_rate_pct",
    "tariff_coefficient",
    "tariff_pct",
    "norms_version",
)

WORKPLACE_COLUMNS: tuple[str, ...] = (
    "enterprise_code",
    "region",
    "activity_risk_class",
    "workplace_code",
    "workplace_name",
    "profession",
    "headcount",
    "period_from",
    "period_to",
    "b",
    "b_class",
    "b_date",
    "b_shift",
    "b_deciding_factors",
    "t",
    "ob",
    "siz",
    "z",
    "pr",
    "level",
    "level_name",
    "protection_class",
    "tariff_pct",
    "unscored_reason",
    "norms_version",
)

# v2: v1 and whether each figure rests on enough data (a result from too little data always
# says so), the status of the shift В comes from and its lowest coverage.
ENTERPRISE_COLUMNS_V2: tuple[str, ...] = (*ENTERPRISE_COLUMNS, "not_enough_data")
WORKPLACE_COLUMNS_V2: tuple[str, ...] = (
    *WORKPLACE_COLUMNS,
    "b_not_enough_data",
    "b_coverage_min",
    "b_status",
)
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "v1": (ENTERPRISE_COLUMNS, WORKPLACE_COLUMNS),
    "v2": (ENTERPRISE_COLUMNS_V2, WORKPLACE_COLUMNS_V2),
}

Cell = str | int | float | bool | None


class ExportPublic(BaseModel):
    columns_version: str = Field(description="column set of `rows`; v1 is stable")
    columns: list[str]
    period_from: date
    period_to: date
    generated_at: datetime
    norms: dict[str, str]
    rows: list[dict[str, Cell]] = Field(description="one object per row, keys = `columns`")


def enterprise_row(e: EnterpriseRiskPublic, norms: Norms) -> dict[str, Cell]:
    row: dict[str, Cell] = {
        "enterprise_code": e.enterprise,
        "enterprise_name": e.name,
        "region": e.region,
        "activity_code": e.activity_code,
        "activity_risk_class": e.activity_risk_class,
        "period_from": e.period_from.isoformat(),
        "period_to": e.period_to.isoformat(),
        "workplaces_scored": e.workplaces_scored,
        "workplaces_unscored": e.workplaces_unscored,
        "headcount_scored": e.headcount_scored,
        "mean_pr": e.mean_pr,
        "level": e.level,
        "level_name": e.level_name,
        "base_rate_pct": None if e.tariff is None else e.tariff.base_rate_pct,
        "tariff_coefficient": None if e.tariff is None else e.tariff.coefficient,
        "tariff_pct": None if e.tariff is None else e.tariff.tariff_pct,
        "norms_version": f"{norms.name} {norms.version}",
        "not_enough_data": e.not_enough_data,
    }
    for n in range(1, 6):
        row[f"share_level_{n}"] = e.share_by_level.get(n) if e.level is not None else None
    return row


def workplace_rows(result: EnterpriseResult, norms: Norms) -> list[dict[str, Cell]]:
    rows: list[dict[str, Cell]] = []
    for w in result.workplaces:
        wp = w.workplace
        basis = w.basis
        risk = w.risk
        tariff = None if risk is None else tariff_for(result.enterprise, risk.level, norms).tariff
        values: dict[str, Any] = {
            "enterprise_code": wp["enterprise"],
            "region": wp["region"],
            "activity_risk_class": wp["activity_risk_class"],
            "workplace_code": wp["code"],
            "workplace_name": wp["name"],
            "profession": wp["profession"],
            "headcount": wp["headcount"],
            "period_from": result.first.isoformat(),
            "period_to": result.last.isoformat(),
            "b": None if basis is None else basis.b,
            "b_class": None if basis is None else basis.working_class,
            "b_date": None if basis is None else basis.shift.day.isoformat(),
            "b_shift": None if basis is None else basis.shift.number,
            "b_deciding_factors": None if basis is None else " ".join(basis.deciding_factors),
            "pr": None if risk is None else round(risk.pr, 6),
            "level": None if risk is None else risk.level,
            "level_name": None if risk is None else risk.level_name,
            "protection_class": None if risk is None else risk.protection_class,
            "tariff_pct": None if tariff is None else round(tariff.tariff_pct, 6),
            "unscored_reason": w.reason,
            "norms_version": f"{norms.name} {norms.version}",
            "b_not_enough_data": None if basis is None else basis.insufficient_data,
            "b_coverage_min": None if basis is None else basis.coverage_min,
            "b_status": None if basis is None else basis.status,
        }
        for name in ("T", "Ob", "SIZ", "Z"):
            entry = w.indicators.get(name)
            values[name.lower()] = None if entry is None else entry["value"]
        rows.append({c: values.get(c) for c in WORKPLACE_COLUMNS_V2})
    return rows
