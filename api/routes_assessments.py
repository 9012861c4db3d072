"""Assessors' inputs per workplace: ПР indicators Т, Об, СИЗ, З and classes of unmeasured
factors, each with who assessed it, when, and on what evidence."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth import Reader, Writer
from api.deps import ConnDep, Limit, Offset, WorkplaceId
from api.errors import not_found_response
from api.models import error_responses
from api.models_risk import (
    FactorClassCreate,
    FactorClassesPublic,
    FactorClassPublic,
    IndicatorCreate,
    IndicatorPublic,
    IndicatorsPublic,
)
from store import assessments, catalog

router = APIRouter(prefix="/api/v1", tags=["assessments"], responses=error_responses())

NOT_FOUND = not_found_response("workplace")


@router.post(
    "/workplaces/{workplace_id}/indicators",
    status_code=201,
    response_model=IndicatorPublic,
    responses=NOT_FOUND,
)
async def add_indicator(
    workplace_id: WorkplaceId, body: IndicatorCreate, conn: ConnDep, token: Writer
) -> IndicatorPublic:
    """Enter one ПР indicator (Т, Об, СИЗ or З) for the workplace; the entry with the latest
    `assessed_on` is the one in force."""
    await catalog.require(conn, "workplace", workplace_id, token.scope)
    row = await assessments.add_indicator(
        conn, workplace_id, **body.model_dump(), entered_by=token.id
    )
    return IndicatorPublic.model_validate(row)


@router.get(
    "/workplaces/{workplace_id}/indicators", response_model=IndicatorsPublic, responses=NOT_FOUND
)
async def list_indicators(
    workplace_id: WorkplaceId,
    conn: ConnDep,
    token: Reader,
    limit: Limit = 100,
    offset: Offset = 0,
) -> IndicatorsPublic:
    await catalog.require(conn, "workplace", workplace_id, token.scope)
    current = (await assessments.current_indicators(conn, [workplace_id])).get(workplace_id, {})
    history = await assessments.indicator_history(conn, workplace_id, limit=limit, offset=offset)
    return IndicatorsPublic(
        current={k: IndicatorPublic.model_validate(v) for k, v in current.items()},
        missing=[i for i in assessments.INDICATORS if i not in current],
        history=[IndicatorPublic.model_validate(r) for r in history],
    )


@router.post(
    "/workplaces/{workplace_id}/factor-classes",
    status_code=201,
    response_model=FactorClassPublic,
    responses=NOT_FOUND,
)
async def add_factor_class(
    workplace_id: WorkplaceId, body: FactorClassCreate, conn: ConnDep, token: Writer
) -> FactorClassPublic:
    """Enter the class of a factor sensors don't measure (microclimate, lighting, heaviness,
    intensity, …); it joins the combination that gives the workplace class and В."""
    await catalog.require(conn, "workplace", workplace_id, token.scope)
    values = body.model_dump()
    values["factor"] = body.factor.value
    row = await assessments.add_factor(conn, workplace_id, **values, entered_by=token.id)
    return FactorClassPublic.model_validate(row)


@router.get(
    "/workplaces/{workplace_id}/factor-classes",
    response_model=FactorClassesPublic,
    responses=NOT_FOUND,
)
async def list_factor_classes(
    workplace_id: WorkplaceId,
    conn: ConnDep,
    token: Reader,
    limit: Limit = 100,
    offset: Offset = 0,
) -> FactorClassesPublic:
    await catalog.require(conn, "workplace", workplace_id, token.scope)
    current = (await assessments.current_factors(conn, [workplace_id])).get(workplace_id, {})
    history = await assessments.factor_history(conn, workplace_id, limit=limit, offset=offset)
    return FactorClassesPublic(
        current={k: FactorClassPublic.model_validate(v) for k, v in current.items()},
        history=[FactorClassPublic.model_validate(r) for r in history],
    )
