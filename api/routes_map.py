"""Integral risk of enterprises, the digital map, and the exports for risk scoring and insurers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from psycopg import AsyncConnection

from analytics import Norms
from api.auth import AnyRole, Reader
from api.deps import ConnDep, Day, EnterpriseId, NormsDep, SettingsDep
from api.exports import COLUMNS, ExportPublic, enterprise_row, workplace_rows
from api.models import error_responses
from api.models_risk import EnterpriseRiskPublic, MapPublic
from api.routes_exposure import resolve_period, tariff_public
from application.scoring import (
    EnterpriseResult,
    EnterpriseSummary,
    enterprise_map,
    enterprise_risks,
)
from store import catalog
from store.auth import TokenInfo

router = APIRouter(
    prefix="/api/v1", tags=["enterprise risk, map and exports"], responses=error_responses()
)

Region = Annotated[str | None, Query(max_length=100, description="only this region")]
RiskClass = Annotated[
    int | None, Query(ge=1, le=22, description="only this activity risk class (1..22)")
]
ActivityCode = Annotated[
    str | None, Query(max_length=20, description="only this economic activity code (ОКЭД)")
]
ColumnSet = Annotated[
    Literal["v1", "v2"],
    Query(
        description="column set; each is stable once published. v2 adds whether a figure "
        "rests on enough data, the status and coverage of the shift В comes from"
    ),
]
Format = Annotated[Literal["json", "csv"], Query(description="json or csv")]

# Map and exports cover every enterprise the caller sees; their default period ends today in
# the country's zone (Kazakhstan keeps one zone since 2024).
COUNTRY_ZONE = "Asia/Almaty"


def enterprise_public(result: EnterpriseSummary) -> EnterpriseRiskPublic:
    e = result.enterprise
    integral = result.integral
    return EnterpriseRiskPublic(
        enterprise_id=e["enterprise_id"],
        enterprise=e["enterprise"],
        name=e["enterprise_name"],
        region=e["region"],
        activity_code=e["activity_code"],
        activity_risk_class=e["activity_risk_class"],
        latitude=e.get("latitude"),
        longitude=e.get("longitude"),
        period_from=result.first,
        period_to=result.last,
        mean_pr=None if integral is None else round(integral.mean_pr, 6),
        level=None if integral is None else integral.level,
        level_name=None if integral is None else integral.level_name,
        headcount_scored=0.0 if integral is None else integral.headcount,
        headcount_by_level={} if integral is None else dict(integral.headcount_by_level),
        share_by_level={}
        if integral is None
        else {k: round(v, 6) for k, v in integral.share_by_level.items()},
        workplaces_not_enough_data=result.not_enough_data,
        not_enough_data=bool(result.not_enough_data),
        workplaces_scored=result.scored,
        workplaces_unscored=len(result.unscored),
        unscored=result.unscored,
        tariff=tariff_public(result.tariff),
        tariff_note=None if result.tariff is None else result.tariff.note,
    )


async def _workplace_results(
    conn: AsyncConnection[Any],
    norms: Norms,
    token: TokenInfo,
    filters: dict[str, Any],
    first: date,
    last: date,
    late_s: float,
) -> list[EnterpriseResult]:
    """Every workplace's ПР in the caller's scope, enterprise by enterprise (the export)."""
    workplaces = await catalog.workplaces_of(
        conn, token.scope, {f"e.{k}": v for k, v in filters.items()}
    )
    return await enterprise_risks(conn, norms, workplaces, first, last, late_s=late_s)


@router.get(
    "/enterprises/{enterprise_id}/risk",
    response_model=EnterpriseRiskPublic,
    responses={404: {"description": "no such enterprise, or one of another tenant"}},
)
async def enterprise_risk_route(
    enterprise_id: EnterpriseId,
    conn: ConnDep,
    norms: NormsDep,
    settings: SettingsDep,
    token: Reader,
    first: Annotated[Day, Query(alias="from")] = None,
    last: Annotated[Day, Query(alias="to")] = None,
) -> EnterpriseRiskPublic:
    """Integral risk of the enterprise: headcount-weighted mean ПР of its scored workplaces,
    its level, the headcount per level and the insurance tariff at that level."""
    enterprise = await catalog.require(conn, "enterprise", enterprise_id, token.scope)
    first, last = resolve_period(enterprise["timezone"], first, last, settings.api_history_max_days)
    (result,) = await enterprise_map(conn, norms, token.scope, {"id": enterprise_id}, first, last)
    return enterprise_public(result)


@router.get("/map", response_model=MapPublic)
async def risk_map(
    conn: ConnDep,
    norms: NormsDep,
    settings: SettingsDep,
    token: AnyRole,
    region: Region = None,
    activity_risk_class: RiskClass = None,
    activity_code: ActivityCode = None,
    first: Annotated[Day, Query(alias="from")] = None,
    last: Annotated[Day, Query(alias="to")] = None,
) -> MapPublic:
    """The digital map: every enterprise the caller may see, placed on a risk level by the
    headcount-weighted mean ПР of its workplaces, with the distribution over levels."""
    first, last = resolve_period(COUNTRY_ZONE, first, last, settings.api_history_max_days)
    filters = {
        "region": region,
        "activity_risk_class": activity_risk_class,
        "activity_code": activity_code,
    }
    results = await enterprise_map(conn, norms, token.scope, filters, first, last)
    enterprises = [enterprise_public(r) for r in results]
    levels = len(norms.risk.level_thresholds) + 1
    by_level = dict.fromkeys(range(1, levels + 1), 0)
    for e in enterprises:
        if e.level is not None:
            by_level[e.level] += 1
    return MapPublic(
        period_from=first,
        period_to=last,
        enterprises=enterprises,
        enterprises_by_level=by_level,
        unscored_enterprises=sum(1 for e in enterprises if e.level is None),
    )


def _export(
    kind: str,
    version: str,
    columns: tuple[str, ...],
    rows: list[dict[str, Any]],
    fmt: str,
    meta: dict[str, Any],
) -> Response:
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="qorgau-{kind}-{version}.csv"',
                "X-Qorgau-Export-Columns": version,
            },
        )
    body = ExportPublic(
        columns_version=version,
        columns=list(columns),
        rows=[{c: row.get(c) for c in columns} for row in rows],
        **meta,
    )
    return Response(
        body.model_dump_json(),
        media_type="application/json",
        headers={"X-Qorgau-Export-Columns": version},
    )


_EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON (`format=json`) or CSV with a header row (`format=csv`)",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ExportPublic"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


@router.get("/export/enterprises", response_class=Response, responses=_EXPORT_RESPONSES)
async def export_enterprises(
    conn: ConnDep,
    norms: NormsDep,
    settings: SettingsDep,
    token: AnyRole,
    format: Format = "json",
    columns: ColumnSet = "v2",
    region: Region = None,
    activity_risk_class: RiskClass = None,
    first: Annotated[Day, Query(alias="from")] = None,
    last: Annotated[Day, Query(alias="to")] = None,
) -> Response:
    """One row per enterprise: integral ПР, level, headcount shares per level and insurance
    tariff. Columns of `v1` are listed in docs/api.md and never change meaning."""
    first, last = resolve_period(COUNTRY_ZONE, first, last, settings.api_history_max_days)
    filters = {"region": region, "activity_risk_class": activity_risk_class}
    results = await enterprise_map(conn, norms, token.scope, filters, first, last)
    rows = [enterprise_row(enterprise_public(r), norms) for r in results]
    meta = _meta(first, last, norms)
    return _export("enterprises", columns, COLUMNS[columns][0], rows, format, meta)


@router.get("/export/workplaces", response_class=Response, responses=_EXPORT_RESPONSES)
async def export_workplaces(
    conn: ConnDep,
    norms: NormsDep,
    settings: SettingsDep,
    token: AnyRole,
    format: Format = "json",
    columns: ColumnSet = "v2",
    region: Region = None,
    activity_risk_class: RiskClass = None,
    first: Annotated[Day, Query(alias="from")] = None,
    last: Annotated[Day, Query(alias="to")] = None,
) -> Response:
    """One row per workplace: В and which shift set it, Т, Об, СИЗ, З, ПР, level, protection
    class and the enterprise's tariff at the workplace's level. Columns: docs/api.md."""
    first, last = resolve_period(COUNTRY_ZONE, first, last, settings.api_history_max_days)
    filters = {"region": region, "activity_risk_class": activity_risk_class}
    results = await _workplace_results(
        conn, norms, token, filters, first, last, settings.ingest_max_past_s
    )
    rows = [row for r in results for row in workplace_rows(r, norms)]
    meta = _meta(first, last, norms)
    return _export("workplaces", columns, COLUMNS[columns][1], rows, format, meta)


def _meta(first: date, last: date, norms: Norms) -> dict[str, Any]:
    return {
        "period_from": first,
        "period_to": last,
        "generated_at": datetime.now(UTC),
        "norms": {"name": norms.name, "version": norms.version},
    }
