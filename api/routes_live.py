"""The shift in progress of one workplace: running exposure, and a live stream (SSE) of its
readings straight from the broker with the running exposure pushed beside them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Literal

import psycopg
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from analytics import Norms
from analytics.alerts import AlertNorms
from api.auth import Reader
from api.deps import ConnDep, NormsDep, WorkplaceId
from api.errors import not_found_response
from api.live import LiveReadings, ReadingsHub
from api.models import error_responses
from api.models_risk import ShiftRef
from api.settings import ApiSettings
from application.assessments import SensorRef
from application.running import RunningExposure, running_exposure
from store import catalog
from store.catalog import Row
from store.connection import DatabaseError
from vocabulary.protocol import readings_topic

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["live"], responses=error_responses())
NOT_FOUND = not_found_response("workplace")


class LimitLinePublic(BaseModel):
    label: str = Field(description="what the line is, with its value and unit")
    value: float = Field(description="in the sensor's unit")
    kind: Literal["action", "limit", "short_term", "ceiling", "floor"] = Field(
        description="action level or first alarm, limit (LEX,8h, A(8) or ПДК_сс), ПДК_max, "
        "alarm ceiling, or low alarm (oxygen)"
    )


class RunningMetricPublic(BaseModel):
    metric: str = Field(description="LEX,8h, TWA or A(8)")
    unit: str
    so_far: float | None = Field(description="exposure received so far, as a daily value")
    projected: float | None = Field(description="at the end of the shift at the current rate")
    action_level: float | None
    limit: float | None
    rate_window_s: float = Field(description="the current rate is the mean of this window")
    measured_s: float
    time_to_limit_s: float | None = Field(
        description="seconds from `at` until the running value reaches the limit at the "
        "current rate; 0 if reached, null if not within this shift"
    )
    at: datetime = Field(description="the latest reading: the figures are as of then")


class LiveSensorPublic(BaseModel):
    sensor_id: int
    sensor: str
    device: str
    quantity: str
    unit: str
    substance: str | None
    samples: int = Field(description="readings stored in this shift so far")
    latest_at: datetime | None
    latest_value: float | None
    running: RunningMetricPublic | None
    lines: list[LimitLinePublic] = Field(description="limits to draw on the sensor's chart")
    working_class: str | None = Field(description="class if the shift goes on as so far")
    note: str


class LiveExposurePublic(BaseModel):
    workplace_id: int
    workplace: str
    workplace_name: str
    enterprise: str
    timezone: str = Field(description="the enterprise's IANA time zone (shift times are local)")
    shift: ShiftRef
    at: datetime
    running: bool = Field(description="false once the shift has ended")
    elapsed_s: float
    sensors: list[LiveSensorPublic]
    working_class: str | None = Field(
        description="combined class if the rest of the shift goes like its measured part"
    )
    B: int | None
    B_continuous: float | None
    deciding_factors: list[str]
    explanation: str
    not_enough_data: bool = Field(
        description="the shift so far covers less than the norms' minimum: class and В are "
        "provisional"
    )
    coverage_min: float | None = Field(description="lowest sensor coverage (0..1) so far")
    assessed_at: datetime | None = Field(
        description="when the stored assessment of this shift was computed"
    )


def _num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 6)


def live_public(
    workplace: Row, enterprise: str, devices: dict[int, str], found: RunningExposure
) -> LiveExposurePublic:
    s = found.shift
    return LiveExposurePublic(
        workplace_id=workplace["id"],
        workplace=workplace["code"],
        workplace_name=workplace["name"],
        enterprise=enterprise,
        timezone=workplace["timezone"],
        shift=ShiftRef(
            date=s.day, shift=s.number, start=s.start, end=s.end, duration_s=s.duration_s
        ),
        at=found.at,
        running=found.running,
        elapsed_s=round(found.elapsed_s, 3),
        sensors=[
            LiveSensorPublic(
                sensor_id=r.sensor.id,
                sensor=r.sensor.code,
                device=devices.get(r.sensor.id, ""),
                quantity=r.sensor.quantity,
                unit=r.sensor.unit,
                substance=r.sensor.substance,
                samples=r.samples,
                latest_at=r.latest_at,
                latest_value=_num(r.latest_value),
                running=None
                if r.running is None
                else RunningMetricPublic(
                    metric=r.running.metric,
                    unit=r.running.unit,
                    so_far=_num(r.running.so_far),
                    projected=_num(r.running.projected),
                    action_level=_num(r.running.action_level),
                    limit=_num(r.running.limit),
                    rate_window_s=r.running.rate_window_s,
                    measured_s=round(r.running.measured_s, 3),
                    time_to_limit_s=r.running.time_to_limit_s,
                    at=r.running.at,
                ),
                lines=[LimitLinePublic(label=x.label, value=x.value, kind=x.kind) for x in r.lines],
                working_class=r.working_class,
                note=r.note,
            )
            for r in found.sensors
        ],
        working_class=found.working_class,
        B=found.b,
        B_continuous=_num(found.b_continuous),
        deciding_factors=list(found.deciding_factors),
        explanation=found.explanation,
        not_enough_data=found.insufficient_data,
        coverage_min=_num(found.coverage_min),
        assessed_at=found.assessed_at,
    )


class _Channels:
    """The workplace's sensors as the broker names them: which device topics to watch and
    which channel is which sensor."""

    def __init__(self, workplace: Row, sensors: list[Row], prefix: str) -> None:
        self.workplace = workplace
        self.refs = [
            SensorRef(s["id"], s["code"], s["quantity"], s["unit"], s["substance"]) for s in sensors
        ]
        self.ids = {(s["device"], s["code"]): int(s["id"]) for s in sensors}
        self.devices = {int(s["id"]): s["device"] for s in sensors}
        self.enterprise = sensors[0]["enterprise"] if sensors else ""
        self.topics = sorted(
            {readings_topic(prefix, s["enterprise"], s["device"]) for s in sensors}
        )

    def event(self, readings: LiveReadings) -> str | None:
        found = []
        for channel in readings.channels:
            sensor_id = self.ids.get((readings.device, channel.sensor))
            if sensor_id is None or not channel.values:
                continue
            found.append(
                {
                    "sensor_id": sensor_id,
                    "sensor": channel.sensor,
                    "unit": channel.unit,
                    "times": channel.times_ms,
                    "values": channel.values,
                }
            )
        if not found:
            return None
        data = json.dumps({"device": readings.device, "seq": readings.seq, "sensors": found})
        return f"event: readings\ndata: {data}\n\n"


async def _channels(conn: ConnDep, workplace_id: int, token: Reader, prefix: str) -> _Channels:
    workplace = await catalog.require(conn, "workplace", workplace_id, token.scope)
    sensors = await catalog.page(
        conn, "sensor", token.scope, filters={"workplace_id": workplace_id}, limit=1000
    )
    channels = _Channels(workplace, sensors.items, prefix)
    if not channels.enterprise:
        enterprise = await catalog.require(
            conn, "enterprise", workplace["enterprise_id"], token.scope
        )
        channels.enterprise = enterprise["code"]
    return channels


async def _exposure(
    conn: ConnDep, norms: Norms, alert_norms: AlertNorms, channels: _Channels, late_s: float
) -> LiveExposurePublic:
    found = await running_exposure(
        conn,
        norms,
        alert_norms,
        channels.workplace,
        channels.enterprise,
        late_s=late_s,
        sensors=channels.refs,
    )
    return live_public(channels.workplace, channels.enterprise, channels.devices, found)


@router.get(
    "/workplaces/{workplace_id}/live/exposure",
    response_model=LiveExposurePublic,
    responses=NOT_FOUND,
)
async def live_exposure(
    workplace_id: WorkplaceId, request: Request, conn: ConnDep, norms: NormsDep, token: Reader
) -> LiveExposurePublic:
    """The shift in progress (or the latest shift, once it has ended): per sensor the running
    LEX,8h / TWA / A(8) so far, its projection to the end of the shift at the current rate
    against the action level and limit, the time left to the limit, the lines its chart is drawn
    against; the class and В if the shift goes on as it has so far."""
    settings: ApiSettings = request.app.state.settings
    channels = await _channels(conn, workplace_id, token, settings.topic_prefix)
    return await _exposure(
        conn, norms, request.app.state.alert_norms, channels, settings.ingest_max_past_s
    )


@router.get(
    "/workplaces/{workplace_id}/live",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: readings` (each readings message of the workplace's "
            "sensors as the broker delivers it, times in ms since the epoch) and `event: "
            "exposure` (the running exposure, as `/live/exposure`, every "
            "`QORGAU_API_LIVE_EXPOSURE_S`)",
        },
        **NOT_FOUND,
    },
)
async def live(
    workplace_id: WorkplaceId, request: Request, conn: ConnDep, norms: NormsDep, token: Reader
) -> StreamingResponse:
    """Server-Sent Events for the workplace page: readings as they reach the broker (before
    ingest stores them) and the running exposure. Authorised like every route, with the
    `Authorization` header (the dashboard reads the stream with `fetch`, not `EventSource`)."""
    settings: ApiSettings = request.app.state.settings
    channels = await _channels(conn, workplace_id, token, settings.topic_prefix)
    hub: ReadingsHub | None = getattr(request.app.state, "readings_hub", None)
    if hub is None:
        raise HTTPException(503, "the live readings stream is off (QORGAU_API_LIVE_STREAM)")
    alert_norms: AlertNorms = request.app.state.alert_norms
    pool = request.app.state.pool

    async def exposure_event() -> str | None:
        # A connection of its own for each update: the stream may last for hours and must
        # not hold one in between.
        try:
            async with pool.connection() as own:
                found = await _exposure(
                    own, norms, alert_norms, channels, settings.ingest_max_past_s
                )
        except (psycopg.Error, DatabaseError) as exc:  # the readings go on without the database
            log.warning("live exposure of workplace %s: %s", workplace_id, exc)
            return None
        except Exception:  # a fault of ours: on the log in full, and the readings go on
            log.exception("live exposure of workplace %s failed", workplace_id)
            return None
        return f"event: exposure\ndata: {found.model_dump_json()}\n\n"

    events = _events(
        hub, channels, exposure_event, settings.api_live_exposure_s, settings.api_sse_keepalive_s
    )
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    hub: ReadingsHub,
    channels: _Channels,
    exposure_event: Callable[[], Awaitable[str | None]],
    every: float,
    keepalive: float,
) -> AsyncIterator[str]:
    """The SSE stream of one workplace: its readings as they come, the running exposure every
    ``every`` seconds, a keep-alive comment after ``keepalive`` seconds of silence."""
    loop = asyncio.get_running_loop()
    async with hub.watch(channels.topics) as queue:
        yield "retry: 2000\n: connected\n\n"
        first = await exposure_event()
        if first:
            yield first
        due = loop.time() + every
        while True:
            wait = max(min(keepalive, due - loop.time()), 0.0)
            got: LiveReadings | bool | None = False
            with contextlib.suppress(TimeoutError):
                got = await asyncio.wait_for(queue.get(), wait)
            if got is None:
                return
            if isinstance(got, LiveReadings):
                text = channels.event(got)
                if text:
                    yield text
            if loop.time() >= due:
                update = await exposure_event()
                if update:
                    yield update
                due = loop.time() + every
            elif got is False:
                yield ": keepalive\n\n"
