"""Exposure, В and ПР of one workplace."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api.auth import Reader
from api.deps import ConnDep, Day, NormsDep, SettingsDep, WorkplaceId
from api.errors import UnprocessableError, not_found_response
from api.models import error_responses
from api.models_risk import (
    BSource,
    ContributionPublic,
    ExposureHistory,
    ExposurePublic,
    FactorExposure,
    IndicatorPublic,
    PpePublic,
    RiskPublic,
    SensorExposure,
    ShiftRef,
    ShiftSummary,
    TariffPublic,
)
from application.assessments import (
    AssessedShift,
    schedule_of,
    stored_period,
    stored_shift,
    worst,
)
from application.schedule import Schedule, Shift, last_finished, shift, today
from application.scoring import TariffResult, guarantees_for, ppe_for, tariff_for, workplace_risk
from store import catalog

router = APIRouter(prefix="/api/v1", tags=["exposure and risk"], responses=error_responses())

NOT_FOUND = not_found_response("workplace")
ShiftNumber = Annotated[
    int | None, Query(ge=1, le=6, description="shift of the day, from 1; default 1")
]


def _num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 6)


def resolve_period(
    zone: str, first: date | None, last: date | None, max_days: int
) -> tuple[date, date]:
    """``from``/``to`` of a request, defaulting to the 30 days ending today in ``zone``."""
    if last is None:
        last = today(Schedule.of([], 0, zone), datetime.now(UTC))
    if first is None:
        first = last - timedelta(days=29)
    if first > last:
        raise UnprocessableError("`from` must not be after `to`")
    if (last - first).days + 1 > max_days:
        raise UnprocessableError(
            f"the range covers {(last - first).days + 1} days; ask for at most {max_days}"
        )
    return first, last


def pick_shift(schedule: Schedule, day: date | None, number: int | None) -> Shift:
    if day is None and number is None:
        return last_finished(schedule, datetime.now(UTC))
    if day is None:
        raise UnprocessableError("give `date` with `shift`")
    return shift(schedule, day, number or 1)


def shift_ref(s: Shift) -> ShiftRef:
    return ShiftRef(date=s.day, shift=s.number, start=s.start, end=s.end, duration_s=s.duration_s)


def exposure_public(found: AssessedShift) -> ExposurePublic:
    d = found.detail
    return ExposurePublic(
        workplace_id=found.workplace_id,
        shift=shift_ref(found.shift),
        status=found.status,
        computed_at=found.computed_at,
        not_enough_data=found.insufficient_data,
        working_class=found.working_class,
        B=found.b,
        B_continuous=found.b_continuous,
        rule=d.get("rule"),
        deciding_factors=found.deciding_factors,
        coverage_min=found.coverage_min,
        insufficient_data=found.insufficient_sensors,
        sensors=[SensorExposure.model_validate(s) for s in found.sensors],
        factors=[FactorExposure.model_validate(f) for f in found.factors],
        mixture_index=dict(d.get("mixture_index", {})),
        explanation=found.explanation or found.note,
        classification_rule=d.get("classification_rule"),
        norms={"name": found.norms_profile, "version": found.norms_version},
    )


def shift_summary(found: AssessedShift) -> ShiftSummary:
    return ShiftSummary(
        date=found.shift.day,
        shift=found.shift.number,
        start=found.shift.start,
        status=found.status,
        not_enough_data=found.insufficient_data,
        working_class=found.working_class,
        B=found.b,
        B_continuous=found.b_continuous,
        deciding_factors=found.deciding_factors,
        coverage_min=found.coverage_min,
        insufficient_data=found.insufficient_sensors,
        note=found.note,
    )


def b_source(found: AssessedShift | None) -> BSource:
    if found is None:
        return BSource(
            date=None,
            shift=None,
            working_class=None,
            B_continuous=None,
            deciding_factors=[],
            insufficient_data=True,
            coverage_min=None,
            status=None,
            explanation="",
        )
    return BSource(
        date=found.shift.day,
        shift=found.shift.number,
        working_class=found.working_class,
        B_continuous=found.b_continuous,
        deciding_factors=found.deciding_factors,
        insufficient_data=found.insufficient_data,
        coverage_min=found.coverage_min,
        status=found.status,
        explanation=found.explanation,
    )


def tariff_public(result: TariffResult | None) -> TariffPublic | None:
    if result is None or result.tariff is None:
        return None
    t = result.tariff
    return TariffPublic(
        base_rate_pct=t.base_rate_pct,
        coefficient=t.coefficient,
        tariff_pct=round(t.tariff_pct, 6),
        activity_risk_class=t.activity_class,
        base_rate_source="enterprise" if result.source == "enterprise" else "norms",
        base_rate_reference=t.base_rate_reference,
        base_rate_is_default=t.base_rate_is_default,
    )


@router.get(
    "/workplaces/{workplace_id}/exposure", response_model=ExposurePublic, responses=NOT_FOUND
)
async def workplace_exposure(
    workplace_id: WorkplaceId,
    conn: ConnDep,
    norms: NormsDep,
    settings: SettingsDep,
    token: Reader,
    day: Annotated[Day, Query(alias="date")] = None,
    number: Annotated[ShiftNumber, Query(alias="shift")] = None,
) -> ExposurePublic:
    """The stored assessment of one shift: metrics per sensor (LEX,8h, A(8), TWA, 15-min
    maximum, coverage), class per factor, combined class, В discrete and continuous, its status
    (running, provisional, final) and whether the data were enough. Default: the latest
    finished shift."""
    workplace = await catalog.require(conn, "workplace", workplace_id, token.scope)
    chosen = pick_shift(schedule_of(workplace), day, number)
    return exposure_public(
        await stored_shift(conn, norms, workplace, chosen, settings.ingest_max_past_s)
    )


@router.get(
    "/workplaces/{workplace_id}/exposure/history",
    response_model=ExposureHistory,
    responses=NOT_FOUND,
)
async def workplace_exposure_history(
    workplace_id: WorkplaceId,
    conn: ConnDep,
    norms: NormsDep,
    settings: SettingsDep,
    token: Reader,
    first: Annotated[Day, Query(alias="from")] = None,
    last: Annotated[Day, Query(alias="to")] = None,
) -> ExposureHistory:
    """Class and В of every shift between `from` and `to` (local dates, inclusive; default the
    30 days ending today)."""
    workplace = await catalog.require(conn, "workplace", workplace_id, token.scope)
    schedule = schedule_of(workplace)
    first, last = resolve_period(schedule.timezone, first, last, settings.api_history_max_days)
    shifts = await stored_period(conn, norms, workplace, first, last, settings.ingest_max_past_s)
    top = worst(shifts)
    return ExposureHistory(
        workplace_id=workplace_id,
        date_from=first,
        date_to=last,
        shifts=[shift_summary(s) for s in shifts],
        worst=None if top is None else shift_summary(top),
        source="stored shift assessments (from the minute rollups)",
    )


@router.get("/workplaces/{workplace_id}/risk", response_model=RiskPublic, responses=NOT_FOUND)
async def workplace_risk_route(
    workplace_id: WorkplaceId,
    conn: ConnDep,
    norms: NormsDep,
    settings: SettingsDep,
    token: Reader,
    first: Annotated[Day, Query(alias="from")] = None,
    last: Annotated[Day, Query(alias="to")] = None,
    day: Annotated[Day, Query(alias="date", description="take В from this shift's date")] = None,
    number: Annotated[ShiftNumber, Query(alias="shift")] = None,
) -> RiskPublic:
    """ПР of the workplace with its explanation, risk level, protection class, insurance
    tariff, PPE per factor and social guarantees. В is that of the worst shift between `from`
    and `to` (default: the 30 days ending today), or of the shift given by `date`/`shift`."""
    workplace = await catalog.require(conn, "workplace", workplace_id, token.scope)
    enterprise = await catalog.require(conn, "enterprise", workplace["enterprise_id"], token.scope)
    schedule = schedule_of(workplace)
    chosen: Shift | None = None
    if day is not None or number is not None:
        if first is not None or last is not None:
            raise UnprocessableError("give either `date`/`shift` or `from`/`to`, not both")
        chosen = pick_shift(schedule, day, number)
        first = last = chosen.day
    else:
        first, last = resolve_period(schedule.timezone, first, last, settings.api_history_max_days)
    result = await workplace_risk(
        conn, norms, workplace, first, last, late_s=settings.ingest_max_past_s, shift=chosen
    )
    if result.risk is None:
        raise HTTPException(409, f"no ПР for workplace {workplace_id}: {result.reason}")
    risk = result.risk
    assert result.basis is not None
    assert result.basis.b is not None
    tariff = tariff_for(enterprise, risk.level, norms)
    return RiskPublic(
        workplace_id=workplace_id,
        enterprise_id=workplace["enterprise_id"],
        period_from=first,
        period_to=last,
        B=result.basis.b,
        B_source=b_source(result.basis),
        indicators={k: IndicatorPublic.model_validate(v) for k, v in result.indicators.items()},
        pr=round(risk.pr, 6),
        level=risk.level,
        level_name=risk.level_name,
        level_names={
            "en": risk.level_name,
            "ru": norms.risk.level_names_ru[risk.level - 1],
            "kz": norms.risk.level_names_kz[risk.level - 1],
        },
        protection_class=risk.protection_class,
        protection_name=risk.protection_name,
        contributions=[
            ContributionPublic(
                indicator=c.indicator,
                value=c.value,
                weight=c.weight,
                contribution=round(c.contribution, 6),
            )
            for c in risk.contributions
        ],
        explanation=risk.explanation,
        tariff=tariff_public(tariff),
        tariff_note=tariff.note,
        ppe=[
            PpePublic(
                factor=p.factor,
                ppe_group=p.group,
                working_class=p.working_class,
                level=p.level,
                recommendation=p.recommendation,
            )
            for p in ppe_for(result.basis, risk.level, norms)
        ],
        social_guarantees=guarantees_for(risk.level, norms),
        norms={"name": norms.name, "version": norms.version},
    )
