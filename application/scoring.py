"""ПР of workplaces and the integral risk of enterprises: В from the stored shift assessments,
Т/Об/СИЗ/З from assessors, everything else (formula, levels, tariff, PPE, guarantees) from
``analytics``.

В of a period is the В of its worst stored shift (sufficiently covered shifts first, then the
highest В, then the highest continuous В): ПР should not fall because a quiet day followed a
loud one. A single shift can be asked for instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np
from psycopg import AsyncConnection

from analytics import (
    EnterpriseRisk,
    Norms,
    NormsError,
    RiskAssessment,
    Tariff,
    enterprise_risk,
    insurance_tariff,
    occupational_risks,
    ppe_for_factor,
    risk_score,
    social_guarantees,
)
from application.assessments import AssessedShift, stored_shift, worst_shifts
from application.schedule import Shift
from store import catalog
from store.assessments import INDICATORS, current_indicators
from store.catalog import Row, Scope
from store.shift_assessments import ScoringColumns, scoring_columns

# Which PPE matrix of the norms profile serves which measured factor.
_PPE_GROUP_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("noise", "noise"),
    ("chemical:", "gas"),
    ("dust:", "dust"),
    ("vibration_whole_body", "vibration_whole_body"),  # before the hand-arm prefix
    ("vibration", "vibration"),
)


@dataclass(frozen=True, slots=True)
class WorkplaceRisk:
    workplace: Row
    first: date
    last: date
    basis: AssessedShift | None  # the shift В is taken from
    indicators: Mapping[str, Row]
    risk: RiskAssessment | None
    reason: str | None  # why there is no ПР


@dataclass(frozen=True, slots=True)
class TariffResult:
    tariff: Tariff | None
    source: str  # "enterprise" or "norms"
    note: str | None


@dataclass(frozen=True, slots=True)
class Ppe:
    factor: str
    group: str
    working_class: str
    level: int
    recommendation: str


def _missing(indicators: Mapping[str, Row]) -> list[str]:
    return [name for name in INDICATORS if name not in indicators]


async def workplace_risk(
    conn: AsyncConnection[Any],
    norms: Norms,
    workplace: Row,
    first: date,
    last: date,
    *,
    late_s: float,
    shift: Shift | None = None,
    indicators: Mapping[str, Row] | None = None,
    basis: AssessedShift | None = None,
    basis_known: bool = False,
) -> WorkplaceRisk:
    """ПР of ``workplace`` with В from the stored assessment of ``shift``, or of the worst
    stored shift of ``first..last`` (``basis``, when the caller has it: ``basis_known``)."""
    if indicators is None:
        indicators = (await current_indicators(conn, [workplace["id"]], on=last)).get(
            workplace["id"], {}
        )
    if not basis_known:
        if shift is not None:
            basis = await stored_shift(conn, norms, workplace, shift, late_s)
        else:
            basis = (await worst_shifts(conn, [workplace["id"]], first, last)).get(workplace["id"])
    (found,) = score(norms, [(workplace, basis, indicators)], first, last)
    return found


def _why_unscored(
    workplace: Row,
    basis: AssessedShift | None,
    indicators: Mapping[str, Row],
    first: date,
    last: date,
) -> str | None:
    return why_unscored(int(workplace["id"]), basis is not None, _missing(indicators), first, last)


def why_unscored(
    workplace_id: int, has_b: bool, missing: Sequence[str], first: date, last: date
) -> str | None:
    """Why a workplace has no ПР over ``first..last`` (None: it has one)."""
    reasons = []
    if not has_b:
        reasons.append(
            f"no В: no shift between {first} and {last} has a class (no readings of an "
            "assessable sensor and no entered factor classes)"
        )
    if missing:
        reasons.append(
            f"indicators not entered: {', '.join(missing)} (POST "
            f"/api/v1/workplaces/{workplace_id}/indicators)"
        )
    return "; ".join(reasons) or None


def score(
    norms: Norms,
    inputs: Sequence[tuple[Row, AssessedShift | None, Mapping[str, Row]]],
    first: date,
    last: date,
) -> list[WorkplaceRisk]:
    """ПР of each (workplace, shift В comes from, indicators in force), computed over arrays
    for all that can be scored. Pure."""
    found: list[WorkplaceRisk] = []
    ready: list[int] = []
    for workplace, basis, indicators in inputs:
        if basis is not None and basis.b is None:
            basis = None
        reason = _why_unscored(workplace, basis, indicators, first, last)
        if reason is None:
            ready.append(len(found))
        found.append(WorkplaceRisk(workplace, first, last, basis, indicators, None, reason))

    def column(name: str) -> list[float]:
        values = []
        for k in ready:
            w = found[k]
            if name == "B":
                values.append(float(w.basis.b or 0) if w.basis is not None else 0.0)
            else:
                values.append(float(w.indicators[name]["value"]))
        return values

    if ready:
        risks = occupational_risks(
            column("B"), column("T"), column("Ob"), column("SIZ"), column("Z"), norms
        )
        for k, risk in zip(ready, risks, strict=True):
            found[k] = replace(found[k], risk=risk)
    return found


def tariff_for(enterprise: Row, level: int, norms: Norms) -> TariffResult:
    """Insurance tariff of an enterprise at a risk level: its own base rate when set, else the
    base rate of its activity's risk class in the norms profile."""
    if enterprise.get("base_rate_pct") is not None:
        return TariffResult(
            insurance_tariff(
                level,
                norms,
                base_rate_pct=float(enterprise["base_rate_pct"]),
            ),
            "enterprise",
            None,
        )
    risk_class = enterprise.get("activity_risk_class")
    if risk_class is None:
        return TariffResult(
            None, "norms", "set the enterprise's activity_risk_class or base_rate_pct"
        )
    try:
        return TariffResult(
            insurance_tariff(level, norms, activity_class=int(risk_class)), "norms", None
        )
    except NormsError as exc:
        return TariffResult(None, "norms", str(exc))


def ppe_for(basis: AssessedShift | None, level: int, norms: Norms) -> list[Ppe]:
    """PPE per measured factor, chosen by that factor's own class (and, for noise, the
    workplace's risk level as in the seed): ``analytics.ppe_for_factor``."""
    if basis is None:
        return []
    found = []
    for factor in basis.factors:
        name = str(factor["factor"])
        group = next((g for p, g in _PPE_GROUP_BY_PREFIX if name.startswith(p)), None)
        if group is None or group not in norms.risk.ppe:
            continue
        row, text = ppe_for_factor(group, str(factor["working_class"]), level, norms)
        found.append(Ppe(name, group, str(factor["working_class"]), row, text))
    return found


def guarantees_for(level: int, norms: Norms) -> list[str]:
    return list(social_guarantees(level, norms))


@dataclass(frozen=True, slots=True)
class EnterpriseResult:
    enterprise: Row
    first: date
    last: date
    workplaces: list[WorkplaceRisk]
    integral: EnterpriseRisk | None
    tariff: TariffResult | None


async def enterprise_risks(
    conn: AsyncConnection[Any],
    norms: Norms,
    workplaces: Sequence[Row],
    first: date,
    last: date,
    *,
    late_s: float,
) -> list[EnterpriseResult]:
    """Integral risk of each enterprise that ``workplaces`` (rows of
    :func:`store.catalog.workplaces_of`) belong to, in the order they come, from the stored
    shift assessments (one query for the worst shift of every workplace)."""
    ids = [w["id"] for w in workplaces]
    indicators = await current_indicators(conn, ids, on=last)
    basis = await worst_shifts(conn, ids, first, last, detail=False)
    scored = score(
        norms,
        [(w, basis.get(w["id"]), indicators.get(w["id"], {})) for w in workplaces],
        first,
        last,
    )
    by_enterprise: dict[int, tuple[Row, list[WorkplaceRisk]]] = {}
    for w, result in zip(workplaces, scored, strict=True):
        by_enterprise.setdefault(w["enterprise_id"], (w, []))[1].append(result)
    found = []
    for enterprise, results in by_enterprise.values():
        scored = [r for r in results if r.risk is not None and r.workplace["headcount"] > 0]
        integral = None
        tariff = None
        if scored:
            integral = enterprise_risk(
                [r.risk.pr for r in scored if r.risk is not None],
                [float(r.workplace["headcount"]) for r in scored],
                norms,
            )
            tariff = tariff_for(enterprise, integral.level, norms)
        found.append(EnterpriseResult(enterprise, first, last, results, integral, tariff))
    return found


@dataclass(frozen=True, slots=True)
class EnterpriseSummary:
    """What the map, the enterprise's integral risk and the enterprise export show."""

    enterprise: Row  # enterprise_id, enterprise, enterprise_name, region, activity_code, …
    first: date
    last: date
    integral: EnterpriseRisk | None
    tariff: TariffResult | None
    scored: int
    unscored: dict[str, str]  # workplace code → why it has no ПР
    not_enough_data: list[str]  # scored workplaces whose В rests on too little data


def enterprise_summaries(
    norms: Norms,
    enterprises: Sequence[Row],
    columns: ScoringColumns,
    first: date,
    last: date,
) -> list[EnterpriseSummary]:
    """The map's figures for every enterprise of ``enterprises`` (rows as
    :func:`enterprise_row` makes them) from the columns of all their workplaces at once: ПР of
    every scorable workplace over arrays, then each enterprise's integral risk. Pure."""
    b = columns.b
    ind = columns.indicators
    scorable = np.isfinite(b) & np.all([np.isfinite(ind[k]) for k in INDICATORS], axis=0)
    pr = np.full(b.shape, np.nan)
    if scorable.any():
        pr[scorable] = risk_score(
            b[scorable],
            ind["T"][scorable],
            ind["Ob"][scorable],
            ind["SIZ"][scorable],
            ind["Z"][scorable],
            norms,
        )
    counted = scorable & (columns.headcount > 0)
    wanted = np.array([int(e["enterprise_id"]) for e in enterprises], dtype=np.int64)
    lows = np.searchsorted(columns.enterprise_id, wanted, side="left").tolist()
    highs = np.searchsorted(columns.enterprise_id, wanted, side="right").tolist()
    found = []
    for e, lo, hi in zip(enterprises, lows, highs, strict=True):
        part = slice(lo, hi)
        unscored: dict[str, str] = {}
        for k in np.flatnonzero(~counted[part]).tolist():
            k += lo
            missing = [name for name in INDICATORS if not np.isfinite(ind[name][k])]
            reason = why_unscored(
                int(columns.workplace_id[k]), bool(np.isfinite(b[k])), missing, first, last
            )
            unscored[columns.code[k]] = reason or "headcount 0"
        provisional = [
            columns.code[k + lo]
            for k in np.flatnonzero(scorable[part] & columns.not_enough_data[part]).tolist()
        ]
        integral = None
        tariff = None
        if counted[part].any():
            integral = enterprise_risk(
                pr[part][counted[part]], columns.headcount[part][counted[part]], norms
            )
            tariff = tariff_for(e, integral.level, norms)
        found.append(
            EnterpriseSummary(
                e, first, last, integral, tariff, hi - lo - len(unscored), unscored, provisional
            )
        )
    return found


async def enterprise_map(
    conn: AsyncConnection[Any],
    norms: Norms,
    scope: Scope,
    filters: Mapping[str, Any],
    first: date,
    last: date,
) -> list[EnterpriseSummary]:
    """Integral risk of every enterprise in ``scope`` passing ``filters`` (enterprise columns),
    enterprises without workplaces included, ordered by id: two queries whatever their number."""
    everyone = await catalog.page(conn, "enterprise", scope, filters=dict(filters), limit=100_000)
    columns = await scoring_columns(conn, scope, filters, first, last)
    rows = sorted((enterprise_row(e) for e in everyone.items), key=lambda r: r["enterprise_id"])
    return enterprise_summaries(norms, rows, columns, first, last)


def enterprise_row(e: Row) -> Row:
    """An enterprise row of the registry as the scoring results name its fields."""
    return {
        "enterprise_id": e["id"],
        "enterprise": e["code"],
        "enterprise_name": e["name"],
        **{k: e[k] for k in ("region", "activity_code", "activity_risk_class")},
        "base_rate_pct": e["base_rate_pct"],
    }
