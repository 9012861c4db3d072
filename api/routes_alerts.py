"""Alerts: list and filter, acknowledge, resolve, the live stream (SSE), preferences, webhooks.

People's transitions are checked against the lifecycle rules (``analytics.alerts.next_state``),
written with their audit entry in one transaction, then published on the alert topic so that
the engine (which stops escalating) and every live stream learn them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from analytics.alerts import AlertKind, ResolvedBecause, TransitionError, next_state
from api.alert_stream import AlertHub
from api.auth import Admin, Reader, Writer
from api.deps import ConnDep
from api.models import error_responses
from store.alerts import (
    Preference,
    add_webhook,
    alert_history,
    delete_webhook,
    get_alert,
    get_preference,
    list_alerts,
    list_webhooks,
    lock_alert,
    record_of,
    set_preference,
    write_transitions,
)
from store.auth import TokenInfo
from store.catalog import enterprise_codes
from vocabulary.protocol.alerts import SEVERITIES, AlertMessage, wanted
from vocabulary.webhook_url import check_webhook_url

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], responses=error_responses())


async def _visible(conn: Any, token: TokenInfo) -> set[str] | None:
    """Enterprise codes whose alerts the token may see (None: all)."""
    return await enterprise_codes(conn, token.scope)


def _narrow(asked: list[str] | None, visible: set[str] | None) -> list[str] | None:
    if visible is None:
        return asked
    return sorted(visible if asked is None else visible & set(asked))


SeverityName = Literal["info", "warning", "high", "critical"]
StateFilter = Literal["open", "acknowledged", "resolved", "active"]


class AlertPublic(BaseModel):
    alert_id: str
    enterprise: str
    device: str
    sensor: str | None
    sensor_id: int | None
    workplace: str | None
    quantity: str | None
    substance: str | None
    kind: str
    severity: SeverityName
    state: Literal["open", "acknowledged", "resolved"]
    value: float | None = Field(description="latest value, in `unit`")
    unit: str
    threshold: float | None = Field(description="threshold, in `threshold_unit`")
    threshold_unit: str
    time_left_s: float | None = Field(description="seconds until the limit (projections)")
    message: str
    opened_at: datetime
    updated_at: datetime
    escalations: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_comment: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None
    ack_action: str | None = Field(default=None, description="what was done, when acknowledged")
    resolution_cause: str | None = Field(default=None, description="the cause, when resolved")


class AlertEventPublic(BaseModel):
    transition: str
    state: str
    severity: str
    at: datetime
    recorded_at: datetime
    actor: str | None
    comment: str | None
    reason: str | None
    value: float | None
    message: str
    source: str
    action: str | None = None


class AlertDetail(AlertPublic):
    history: list[AlertEventPublic]


class AlertList(BaseModel):
    items: list[AlertPublic]
    limit: int
    offset: int


EnterpriseCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Subscriber = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class Action(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"by": "aigerim", "comment": "gas at the face", "action": "evacuated the face"}
            ]
        }
    )

    by: Subscriber = Field(description="who acts (user name)")
    comment: str | None = Field(default=None, max_length=2000, pattern=r"^[^\x00]*$")
    action: str | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^[^\x00]*\S[^\x00]*$",
        description="acknowledge: the action taken (required for high and critical alerts)",
    )
    cause: str | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^[^\x00]*\S[^\x00]*$",
        description="resolve: what caused the alert",
    )


class PreferencePublic(BaseModel):
    subscriber_kind: Literal["user", "role"]
    subscriber: str
    min_severity: SeverityName = "info"
    kinds: list[AlertKind] | None = Field(default=None, description="null: every kind")


class PreferenceUpdate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"min_severity": "critical", "kinds": ["ceiling"]}]}
    )

    min_severity: SeverityName = "info"
    kinds: list[AlertKind] | None = None


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.org/qorgau-hook",
                    "secret": "a-long-shared-webhook-secret",
                    "min_severity": "high",
                }
            ]
        }
    )

    url: Annotated[str, AfterValidator(check_webhook_url)] = Field(
        pattern=r"^https?://[^\x00-\x20\x7f]+$",
        max_length=2000,
        description="http or https URL with a valid host (IDNA names allowed) that receives "
        "the alerts as signed JSON POSTs",
    )
    secret: str = Field(
        min_length=16, max_length=200, pattern=r"^[^\x00]+$", description="HMAC-SHA256 key"
    )
    enterprise: EnterpriseCode | None = Field(default=None, description="null: every enterprise")
    min_severity: SeverityName = "info"
    kinds: list[AlertKind] | None = None
    subscriber_kind: Literal["user", "role"] | None = Field(
        default=None, description="owner whose preferences also narrow what the hook receives"
    )
    subscriber: Subscriber | None = None


class WebhookPublic(BaseModel):
    id: int
    url: str
    enterprise: str | None
    min_severity: str = Field(description="effective: the hook's own, raised by its owner's")
    kinds: list[str] | None
    subscriber_kind: str | None = None
    subscriber: str | None = None
    last_error: str | None = Field(
        default=None,
        description="why the last failed delivery failed (invalid URL, refused by the "
        "receiver, gave up after the retries); current when `last_error_at` is later than "
        "`last_delivered_at`",
    )
    last_error_at: datetime | None = None
    last_delivered_at: datetime | None = None


def _hub(request: Request) -> AlertHub | None:
    hub: AlertHub | None = getattr(request.app.state, "alert_hub", None)
    return hub


@router.get("", response_model=AlertList)
async def alerts(
    conn: ConnDep,
    token: Reader,
    state: Annotated[StateFilter | None, Query(description="active = open or acknowledged")] = None,
    unacknowledged: Annotated[bool, Query(description="only open, unacknowledged alerts")] = False,
    kind: Annotated[list[AlertKind] | None, Query()] = None,
    min_severity: SeverityName | None = None,
    enterprise: Annotated[list[EnterpriseCode] | None, Query()] = None,
    sensor_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    since: Annotated[datetime | None, Query(description="opened at or after (with zone)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> AlertList:
    states: list[str] | None = None
    if unacknowledged:
        states = ["open"]
    elif state == "active":
        states = ["open", "acknowledged"]
    elif state is not None:
        states = [state]
    enterprises = _narrow(enterprise, await _visible(conn, token))
    if enterprises is not None and not enterprises:
        return AlertList(items=[], limit=limit, offset=offset)
    found = await list_alerts(
        conn,
        enterprises=enterprises,
        states=states,
        kinds=[k.value for k in kind] if kind else None,
        min_severity=min_severity,
        sensor_id=sensor_id,
        since=since,
        limit=limit,
        offset=offset,
    )
    return AlertList(items=[AlertPublic(**r) for r in found], limit=limit, offset=offset)


def _sse(message: AlertMessage) -> str:
    data = message.model_dump_json()
    return f"id: {message.alert_id}:{message.transition}\nevent: alert\ndata: {data}\n\n"


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "alert transitions"}},
)
async def stream(
    request: Request,
    conn: ConnDep,
    token: Reader,
    enterprise: Annotated[list[EnterpriseCode] | None, Query()] = None,
    kind: Annotated[list[AlertKind] | None, Query()] = None,
    min_severity: SeverityName | None = None,
    subscriber: Annotated[
        Subscriber | None, Query(description="apply this user's (or role's) stored preferences")
    ] = None,
    subscriber_kind: Literal["user", "role"] = "user",
) -> StreamingResponse:
    """Server-Sent Events: every alert transition as it happens (``event: alert``, JSON data as
    on the MQTT alert topics), filtered by the query and the subscriber's preferences."""
    hub = _hub(request)
    if hub is None:
        raise HTTPException(503, "the live alert stream is off (QORGAU_API_ALERT_STREAM)")
    visible = _narrow(enterprise, await _visible(conn, token))
    pref: Preference | None = None
    if subscriber:
        pref = await get_preference(conn, subscriber_kind, subscriber)
    kinds = tuple(k.value for k in kind) if kind else None
    if pref is not None and pref.kinds is not None:
        kinds = tuple(k for k in pref.kinds if kinds is None or k in kinds)
    floor = min_severity
    if pref is not None and (
        floor is None or SEVERITIES.index(pref.min_severity) > SEVERITIES.index(floor)
    ):
        floor = pref.min_severity  # type: ignore[assignment]
    keepalive = request.app.state.settings.api_sse_keepalive_s
    queue = hub.subscribe()

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n: connected\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), keepalive)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if message is None:
                    return
                if visible is not None and message.enterprise not in visible:
                    continue
                if wanted(message, floor, kinds):
                    yield _sse(message)
        finally:
            hub.unsubscribe(queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/preferences/{subscriber_kind}/{subscriber}", response_model=PreferencePublic)
async def preference(
    subscriber_kind: Literal["user", "role"], subscriber: Subscriber, conn: ConnDep, token: Admin
) -> PreferencePublic:
    found = await get_preference(conn, subscriber_kind, subscriber)
    if found is None:
        return PreferencePublic(subscriber_kind=subscriber_kind, subscriber=subscriber)
    return PreferencePublic(
        subscriber_kind=subscriber_kind,
        subscriber=subscriber,
        min_severity=found.min_severity,
        kinds=[AlertKind(k) for k in found.kinds] if found.kinds is not None else None,
    )


@router.put("/preferences/{subscriber_kind}/{subscriber}", response_model=PreferencePublic)
async def update_preference(
    subscriber_kind: Literal["user", "role"],
    subscriber: Subscriber,
    body: PreferenceUpdate,
    conn: ConnDep,
    token: Admin,
) -> PreferencePublic:
    await set_preference(
        conn,
        Preference(
            subscriber_kind,
            subscriber,
            body.min_severity,
            tuple(k.value for k in body.kinds) if body.kinds is not None else None,
        ),
    )
    return PreferencePublic(
        subscriber_kind=subscriber_kind, subscriber=subscriber, **body.model_dump()
    )


@router.get("/webhooks", response_model=list[WebhookPublic])
async def webhooks(conn: ConnDep, token: Admin) -> list[WebhookPublic]:
    return [
        WebhookPublic(
            id=h.id,
            url=h.url,
            enterprise=h.enterprise,
            min_severity=h.min_severity,
            kinds=list(h.kinds) if h.kinds is not None else None,
            subscriber_kind=h.subscriber_kind,
            subscriber=h.subscriber,
            last_error=h.last_error,
            last_error_at=h.last_error_at,
            last_delivered_at=h.last_delivered_at,
        )
        for h in await list_webhooks(conn, active_only=False)
    ]


@router.post("/webhooks", response_model=WebhookPublic, status_code=201)
async def create_webhook(body: WebhookCreate, conn: ConnDep, token: Admin) -> WebhookPublic:
    kinds = [k.value for k in body.kinds] if body.kinds is not None else None
    ident = await add_webhook(
        conn,
        url=body.url,
        secret=body.secret,
        enterprise=body.enterprise,
        min_severity=body.min_severity,
        kinds=kinds,
        subscriber_kind=body.subscriber_kind,
        subscriber=body.subscriber,
    )
    return WebhookPublic(
        id=ident,
        url=body.url,
        enterprise=body.enterprise,
        min_severity=body.min_severity,
        kinds=kinds,
        subscriber_kind=body.subscriber_kind,
        subscriber=body.subscriber,
    )


@router.delete("/webhooks/{webhook_id}", status_code=204)
async def remove_webhook(webhook_id: int, conn: ConnDep, token: Admin) -> None:
    if not await delete_webhook(conn, webhook_id):
        raise HTTPException(404, f"no webhook {webhook_id}")


@router.get("/{alert_id}", response_model=AlertDetail)
async def alert(alert_id: UUID, conn: ConnDep, token: Reader) -> AlertDetail:
    found = await _find(conn, str(alert_id), await _visible(conn, token))
    history = await alert_history(conn, str(alert_id))
    return AlertDetail(**found, history=[AlertEventPublic(**h) for h in history])


async def _find(conn: Any, alert_id: str, visible: set[str] | None) -> dict[str, Any]:
    found = await get_alert(conn, alert_id)
    if found is None or (visible is not None and found["enterprise"] not in visible):
        raise HTTPException(404, f"no alert {alert_id}")
    return found


async def _act(
    request: Request,
    conn: Any,
    alert_id: str,
    action: Literal["acknowledge", "resolve"],
    body: Action,
    token: TokenInfo,
) -> AlertPublic:
    now = datetime.now(UTC)
    visible = await _visible(conn, token)
    async with conn.transaction():
        found = await _find(conn, alert_id, visible)
        # Lock the row: the engine or another person may be resolving it right now.
        await lock_alert(conn, alert_id)
        found = await _find(conn, alert_id, visible)
        try:
            new = next_state(found["state"], action)
        except TransitionError as exc:
            raise HTTPException(409, str(exc)) from None
        if (
            action == "acknowledge"
            and found["severity"] in ("high", "critical")
            and not body.action
        ):
            raise HTTPException(
                422, f"a {found['severity']} alert is acknowledged with `action`: what was done"
            )
        message = AlertMessage(
            alert_id=alert_id,
            transition="acknowledged" if new == "acknowledged" else "resolved",
            state=new,
            kind=found["kind"],
            severity=found["severity"],
            enterprise=found["enterprise"],
            device=found["device"],
            sensor=found["sensor"],
            sensor_id=found["sensor_id"],
            workplace=found["workplace"],
            quantity=found["quantity"],
            substance=found["substance"],
            value=found["value"],
            unit=found["unit"],
            threshold=found["threshold"],
            threshold_unit=found["threshold_unit"],
            message=f"{new} by {body.by}" + (f": {body.comment}" if body.comment else ""),
            at=now,
            opened_at=found["opened_at"],
            sent_at=now,
            reason=ResolvedBecause.BY_PERSON if new == "resolved" else None,
            actor=body.by,
            comment=body.comment,
            action=body.action if new == "acknowledged" else body.cause,
            escalations=found["escalations"],
            source="api",
        )
        record = record_of(message)
        await write_transitions(conn, [record])
    hub = _hub(request)
    if hub is not None:
        await hub.publish(message)
    updated = await _find(conn, alert_id, visible)
    return AlertPublic(**updated)


@router.post("/{alert_id}/acknowledge", response_model=AlertPublic)
async def acknowledge_alert(
    alert_id: UUID, body: Action, request: Request, conn: ConnDep, token: Writer
) -> AlertPublic:
    """Someone has seen the alert and is acting on it: escalation stops."""
    return await _act(request, conn, str(alert_id), "acknowledge", body, token)


@router.post("/{alert_id}/resolve", response_model=AlertPublic)
async def resolve_alert(
    alert_id: UUID, body: Action, request: Request, conn: ConnDep, token: Writer
) -> AlertPublic:
    """Close the alert by hand; a new one is raised only after the condition has cleared."""
    return await _act(request, conn, str(alert_id), "resolve", body, token)
