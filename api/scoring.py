"""ПР of workplaces and the integral risk of enterprises: В from exposure, Т/Об/СИЗ/З from
assessors, everything else (formula, levels, tariff, PPE, guarantees) from ``analytics``.

В of a period is the В of its worst shift (highest В, then highest continuous В): ПР should not
fall because a quiet day followed a loud one. A single shift can be asked for instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from psycopg import AsyncConnection

from analytics import (
    EnterpriseRisk,
    Norms,
    NormsError,
    RiskAssessment,
    Tariff,
    WorkingClass,
    enterprise_risk,
    insurance_tariff,
    occupational_risk,
    ppe_recommendation,
    social_guarantees,
)
from api.exposure import ShiftExposure, assess_shift, worst
from api.history import ShiftMemo, history, worst_of
from application.schedule import Shift
from store.assessments import INDICATORS, current_indicators
from store.catalog import Row

# Which PPE matrix of the norms profile serves which measured factor.
_PPE_GROUP_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("noise", "noise"),
    ("chemical:", "gas"),
    ("dust:", "dust"),
    ("vibration", "vibration"),
)


@dataclass(frozen=True, slots=True)
class WorkplaceRisk:
    workplace: Row
    first: date
    last: date
    basis: ShiftExposure | None
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
    memo: ShiftMemo,
    shift: Shift | None = None,
    indicators: Mapping[str, Row] | None = None,
    shifts: Sequence[ShiftExposure] | None = None,
) -> WorkplaceRisk:
    """ПР of ``workplace`` with В from ``shift``, or from the worst shift of ``first..last``
    (``shifts``, when the caller has them already)."""
    if indicators is None:
        indicators = (await current_indicators(conn, [workplace["id"]], on=last)).get(
            workplace["id"], {}
        )
    if shift is not None:
        basis: ShiftExposure | None = await assess_shift(conn, norms, workplace, shift)
        if basis is not None and basis.b is None:
            basis = None
    else:
        if shifts is None:
            shifts = await history(conn, norms, workplace, first, last, memo)
        basis = worst(shifts)
    reasons = []
    if basis is None or basis.b is None:
        reasons.append(
            f"no В: no shift between {first} and {last} has a class (no readings of an "
            "assessable sensor and no entered factor classes)"
        )
    missing = _missing(indicators)
    if missing:
        reasons.append(
            f"indicators not entered: {', '.join(missing)} (POST "
            f"/api/v1/workplaces/{workplace['id']}/indicators)"
        )
    if reasons:
        return WorkplaceRisk(workplace, first, last, basis, indicators, None, "; ".join(reasons))
    assert basis is not None
    assert basis.b is not None
    risk = occupational_risk(
        basis.b,
        indicators["T"]["value"],
        indicators["Ob"]["value"],
        indicators["SIZ"]["value"],
        indicators["Z"]["value"],
        norms,
    )
    return WorkplaceRisk(workplace, first, last, basis, indicators, risk, None)


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


def ppe_for(basis: ShiftExposure | None, level: int, norms: Norms) -> list[Ppe]:
    """PPE per measured factor: the matrix row of the workplace's risk level for a harmful
    factor (class 3.1 or above), the baseline row for a factor within its limit."""
    if basis is None or basis.assessment is None:
        return []
    found = []
    for factor in basis.assessment.factors:
        group = next((g for p, g in _PPE_GROUP_BY_PREFIX if factor.factor.startswith(p)), None)
        if group is None or group not in norms.risk.ppe:
            continue
        harmful = factor.working_class.rank >= WorkingClass.C3_1.rank
        at = level if harmful else 1
        found.append(
            Ppe(
                factor.factor,
                group,
                factor.working_class.value,
                at,
                ppe_recommendation(group, at, norms),
            )
        )
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
    memo: ShiftMemo,
) -> list[EnterpriseResult]:
    """Integral risk of each enterprise that ``workplaces`` (rows of
    :func:`store.catalog.workplaces_of`) belong to, in the order they come."""
    indicators = await current_indicators(conn, [w["id"] for w in workplaces], on=last)
    # Only the worst shift of each workplace counts here: screened, then assessed exactly.
    basis = await worst_of(conn, norms, workplaces, first, last, memo)
    by_enterprise: dict[int, tuple[Row, list[WorkplaceRisk]]] = {}
    for w in workplaces:
        worst_shift = basis[w["id"]]
        result = await workplace_risk(
            conn, norms, w, first, last, memo=memo, indicators=indicators.get(w["id"], {}),
            shifts=[] if worst_shift is None else [worst_shift],
        )  # fmt: skip
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
