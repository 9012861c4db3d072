"""Readings of one sensor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api.auth import Reader
from api.deps import ConnDep, SensorId, SettingsDep
from api.models import ReadingsPublic, error_responses
from api.models_registry import SensorPublic
from application.localisation import Message
from store import catalog
from store.readings import fetch_readings

router = APIRouter(prefix="/api/v1", tags=["readings"], responses=error_responses())


@router.get(
    "/sensors/{sensor_id}/readings",
    response_model=ReadingsPublic,
    responses={404: {"description": "no such sensor, or one of another tenant"}},
)
async def sensor_readings(
    sensor_id: SensorId,
    conn: ConnDep,
    settings: SettingsDep,
    token: Reader,
    start: Annotated[
        datetime | None,
        Query(alias="from", description="ISO 8601 with zone; default: `to` minus 1 hour"),
    ] = None,
    end: Annotated[
        datetime | None, Query(alias="to", description="ISO 8601 with zone; default: now")
    ] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=10_000_000, description="most readings to return")
    ] = None,
) -> ReadingsPublic:
    sensor = await catalog.require(conn, "sensor", sensor_id, token.scope)
    for name, value in (("from", start), ("to", end)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(
                422, Message("`{name}` needs a time zone, e.g. 2026-11-23T08:00:00Z", name=name)
            )
        if value is not None and not 1970 <= value.year <= 2200:
            raise HTTPException(
                422, Message("`{name}` must lie between the years 1970 and 2200", name=name)
            )
    end = end or datetime.now(UTC)
    start = start or end - timedelta(hours=1)
    if start >= end:
        raise HTTPException(422, Message("`from` must be earlier than `to`"))
    cap = min(limit or settings.api_max_points, settings.api_max_points)
    rows = await fetch_readings(conn, sensor_id, start, end, limit=cap + 1)
    truncated = len(rows) > cap
    rows = rows[:cap]
    return ReadingsPublic(
        sensor=SensorPublic.model_validate(sensor),
        unit=sensor["unit"],
        start=start,
        end=end,
        count=len(rows),
        truncated=truncated,
        times=[r.time for r in rows],
        values=[r.value for r in rows],
    )
