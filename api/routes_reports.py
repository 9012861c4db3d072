"""Shift reports of a workplace as PDF, CSV or Excel."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.auth import Reader
from api.deps import ConnDep, Day, NormsDep, SettingsDep, WorkplaceId
from api.models import error_responses
from api.routes_exposure import ShiftNumber, pick_shift
from application.assessments import schedule_of
from application.report_files import (
    FORMATS,
    MEDIA_TYPES,
    Language,
    ReportFormat,
    ReportRenderer,
    pick_language,
)
from application.reports import shift_report
from store import catalog

router = APIRouter(prefix="/api/v1", tags=["reports"], responses=error_responses())


@router.get(
    "/workplaces/{workplace_id}/report",
    response_class=Response,
    responses={
        200: {
            "content": {MEDIA_TYPES[f].split(";")[0]: {} for f in FORMATS},
            "description": "the report file (Content-Disposition: attachment)",
        },
        404: {"description": "no such workplace, or one of another tenant"},
    },
)
async def workplace_report(
    workplace_id: WorkplaceId,
    request: Request,
    conn: ConnDep,
    norms: NormsDep,
    settings: SettingsDep,
    token: Reader,
    day: Annotated[Day, Query(alias="date")] = None,
    number: Annotated[ShiftNumber, Query(alias="shift")] = None,
    fmt: Annotated[
        ReportFormat, Query(alias="format", description="pdf (charts), csv or xlsx")
    ] = "pdf",
    lang: Annotated[
        Language | None,
        Query(description="kk, ru or en (default: the first of them in Accept-Language, else en)"),
    ] = None,
    layout: Annotated[
        Literal["long", "wide"],
        Query(description="CSV only: one row per figure (long) or per sensor (wide)"),
    ] = "long",
) -> Response:
    """The shift report of a workplace (default: the latest finished shift): per-sensor charts
    of the shift (one point per minute from the rollups, with the limits), metrics, classes per
    factor, the combined class, В, ПР of the shift, its alerts, the instruments with their
    calibration, the method and norms applied, and a signature block."""
    workplace = await catalog.require(conn, "workplace", workplace_id, token.scope)
    enterprise = await catalog.require(conn, "enterprise", workplace["enterprise_id"], token.scope)
    chosen = pick_shift(schedule_of(workplace), day, number)
    report = await shift_report(
        conn,
        norms,
        request.app.state.alert_norms,
        workplace,
        enterprise,
        chosen,
        late_s=settings.ingest_max_past_s,
    )
    # Rendering is CPU work (matplotlib): off the event loop. The renderer is a surface of its
    # own (dashboards.reports), handed to the app by the composition root.
    render: ReportRenderer = request.app.state.render_report
    language = lang or pick_language(request.headers.get("accept-language"), "en")
    body = await asyncio.to_thread(render, report, fmt, lang=language, wide=layout == "wide")
    return Response(
        body,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{report.file_stem()}.{fmt}"'},
    )
