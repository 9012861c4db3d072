"""Who is told of alerts and how, and what became of it: recipients with their channels,
language and on-call hours, routes (enterprise, site or workplace; severity; kinds; escalation
level), each enterprise's escalation policy, and an alert's timeline (raised, notified whom
through which channel with each attempt's result, escalated, acknowledged, resolved) as JSON or
CSV.

Admins manage every enterprise's; a safety officer, their own enterprise's (objects of other
enterprises are 404, as everywhere). Inspectors read timelines of the enterprises they see.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import datetime, time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from analytics.alerts import AlertKind
from api.auth import Reader, Writer
from api.deps import ConnDep
from api.models import error_responses
from store.alerts import alert_history, get_alert
from store.auth import TokenInfo
from store.catalog import enterprise_codes
from store.notifications import (
    EscalationPolicy,
    Recipient,
    Route,
    add_route,
    delete_policy,
    delete_recipient,
    delete_route,
    get_policy,
    list_policies,
    list_recipients,
    list_routes,
    notification_log,
    recipient_enterprise,
    route_enterprise,
    save_recipient,
    set_policy,
)
from vocabulary.webhook_url import check_webhook_url

router = APIRouter(tags=["notifications"], responses=error_responses())

SeverityName = Literal["info", "warning", "high", "critical"]
EnterpriseCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
_PHONE = re.compile(r"^\+?[0-9]{7,15}$")
_CHAT = re.compile(r"^(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")


class ChannelAddress(BaseModel):
    channel: Literal["email", "telegram", "sms", "webhook"]
    address: str = Field(
        min_length=1,
        max_length=2000,
        description="email address; Telegram chat id (or @channel); phone number in "
        "international form (+7…); webhook URL",
    )

    @model_validator(mode="after")
    def _valid_address(self) -> ChannelAddress:
        a = self.address.strip()
        if self.channel == "email" and not _EMAIL.match(a):
            raise ValueError(f"{a!r} is not an email address")
        if self.channel == "sms" and not _PHONE.match(a.replace(" ", "")):
            raise ValueError(f"{a!r} is not a phone number: digits, optionally after +")
        if self.channel == "telegram" and not _CHAT.match(a):
            raise ValueError(f"{a!r} is not a Telegram chat id (a number) or @channel name")
        if self.channel == "webhook":
            check_webhook_url(a)
        self.address = a.replace(" ", "") if self.channel == "sms" else a
        return self


class OnCall(BaseModel):
    start: time = Field(description="local time of the enterprise")
    end: time = Field(description="local time; before start: the hours span midnight")


class RecipientIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "enterprise": "mine-01",
                    "name": "Aigerim Seitkali, shift supervisor",
                    "language": "kk",
                    "channels": [
                        {"channel": "email", "address": "aigerim@mine.kz"},
                        {"channel": "sms", "address": "+77011234567"},
                    ],
                    "on_call": {"start": "08:00", "end": "20:00"},
                }
            ]
        }
    )

    enterprise: EnterpriseCode
    name: Name
    language: Literal["kk", "ru", "en"] = "ru"
    channels: list[ChannelAddress] = Field(min_length=1, max_length=10)
    on_call: OnCall | None = Field(default=None, description="null: always")
    active: bool = True


class RecipientOut(RecipientIn):
    id: int


class RouteIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "enterprise": "mine-01",
                    "recipient_id": 1,
                    "level": 0,
                    "min_severity": "high",
                    "workplace": "face-1",
                }
            ]
        }
    )

    enterprise: EnterpriseCode
    recipient_id: int = Field(ge=1)
    level: int = Field(
        default=0, ge=0, le=9, description="0: told when raised; n: at the n-th escalation"
    )
    min_severity: SeverityName = "warning"
    kinds: list[AlertKind] | None = Field(default=None, description="null: every kind")
    site: EnterpriseCode | None = Field(default=None, description="site code; null: all")
    workplace: EnterpriseCode | None = Field(default=None, description="workplace code; null: all")


class RouteOut(RouteIn):
    id: int


class PolicyIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "escalate_after_min": 10,
                    "reminder_every_min": 15,
                    "max_reminders": 3,
                    "notify_on_resolve": True,
                }
            ]
        }
    )

    escalate_after_min: float = Field(
        default=10, gt=0, le=1440, description="minutes unacknowledged before the next level"
    )
    reminder_every_min: float | None = Field(
        default=None, gt=0, le=1440, description="after the last level, remind every … minutes"
    )
    max_reminders: int = Field(default=3, ge=0, le=100)
    notify_on_resolve: bool = Field(default=False, description="tell everyone told when resolved")


class PolicyOut(PolicyIn):
    enterprise: str


class TimelineEntry(BaseModel):
    at: datetime
    event: str = Field(
        description="opened, updated, escalated, acknowledged, resolved (the alert's transitions); "
        "notified, escalated_to, reminded, told_resolved (a notification attempt) or queued"
    )
    who: str | None = Field(description="who acted, or who was notified")
    channel: str | None = None
    address: str | None = None
    result: str | None = Field(default=None, description="sent, retry, failed, pending")
    severity: str | None = None
    detail: str | None = Field(default=None, description="comment, action, cause or error")


class Timeline(BaseModel):
    alert_id: str
    enterprise: str
    state: str
    entries: list[TimelineEntry]


async def _own(conn: Any, token: TokenInfo, enterprise: str, *, named_in_body: bool) -> None:
    """Refuse an enterprise the token may not manage: 404 when the path names it (as for any
    object of another tenant), 403 when the request body does."""
    visible = await enterprise_codes(conn, token.scope)
    if visible is not None and enterprise not in visible:
        if named_in_body:
            raise HTTPException(403, f"this token may not manage enterprise {enterprise}")
        raise HTTPException(404, f"no enterprise {enterprise}")


async def _seen(conn: Any, token: TokenInfo, enterprise: str | None, what: str) -> str:
    """``enterprise`` (of the object named ``what``) when the token sees it, else 404."""
    visible = await enterprise_codes(conn, token.scope)
    if enterprise is None or (visible is not None and enterprise not in visible):
        raise HTTPException(404, f"no {what}")
    return enterprise


async def _visible(conn: Any, token: TokenInfo) -> list[str] | None:
    visible = await enterprise_codes(conn, token.scope)
    return sorted(visible) if visible is not None else None


def _recipient_out(r: Recipient) -> RecipientOut:
    on_call = (
        OnCall(start=r.on_call_start, end=r.on_call_end)
        if r.on_call_start is not None and r.on_call_end is not None
        else None
    )
    return RecipientOut(
        id=r.id,
        enterprise=r.enterprise,
        name=r.name,
        language=r.language,
        channels=[ChannelAddress(channel=c, address=a) for c, a in r.channels],
        on_call=on_call,
        active=r.active,
    )


def _recipient(body: RecipientIn, ident: int = 0) -> Recipient:
    return Recipient(
        id=ident,
        enterprise=body.enterprise,
        name=body.name,
        language=body.language,
        channels=tuple((c.channel, c.address) for c in body.channels),
        on_call_start=body.on_call.start if body.on_call else None,
        on_call_end=body.on_call.end if body.on_call else None,
        active=body.active,
    )


@router.get("/api/v1/notifications/routes", response_model=list[RouteOut])
async def routes(conn: ConnDep, token: Writer) -> list[RouteOut]:
    return [
        RouteOut(
            id=r.id,
            enterprise=r.enterprise,
            recipient_id=r.recipient_id,
            level=r.level,
            min_severity=r.min_severity,
            kinds=[AlertKind(k) for k in r.kinds] if r.kinds is not None else None,
            site=r.site,
            workplace=r.workplace,
        )
        for r in await list_routes(conn, await _visible(conn, token))
    ]


@router.post("/api/v1/notifications/routes", response_model=RouteOut, status_code=201)
async def create_route(body: RouteIn, conn: ConnDep, token: Writer) -> RouteOut:
    await _own(conn, token, body.enterprise, named_in_body=True)
    if await _recipient_of(conn, token, body.recipient_id) != body.enterprise:
        raise HTTPException(422, "the recipient belongs to another enterprise")
    kinds = tuple(k.value for k in body.kinds) if body.kinds is not None else None
    ident = await add_route(
        conn,
        Route(
            id=0,
            enterprise=body.enterprise,
            recipient_id=body.recipient_id,
            level=body.level,
            min_severity=body.min_severity,
            kinds=kinds,
            site=body.site,
            workplace=body.workplace,
        ),
    )
    return RouteOut(id=ident, **body.model_dump())


@router.delete("/api/v1/notifications/routes/{route_id}", status_code=204)
async def remove_route(route_id: int, conn: ConnDep, token: Writer) -> None:
    await _seen(conn, token, await route_enterprise(conn, route_id), f"route {route_id}")
    await delete_route(conn, route_id)


@router.get("/api/v1/notifications/recipients", response_model=list[RecipientOut])
async def recipients(conn: ConnDep, token: Writer) -> list[RecipientOut]:
    return [_recipient_out(r) for r in await list_recipients(conn, await _visible(conn, token))]


@router.post("/api/v1/notifications/recipients", response_model=RecipientOut, status_code=201)
async def create_recipient(body: RecipientIn, conn: ConnDep, token: Writer) -> RecipientOut:
    await _own(conn, token, body.enterprise, named_in_body=True)
    ident = await save_recipient(conn, _recipient(body))
    return RecipientOut(id=ident, **body.model_dump())


async def _recipient_of(conn: Any, token: TokenInfo, recipient_id: int) -> str:
    enterprise = await recipient_enterprise(conn, recipient_id)
    return await _seen(conn, token, enterprise, f"recipient {recipient_id}")


@router.put("/api/v1/notifications/recipients/{recipient_id}", response_model=RecipientOut)
async def update_recipient(
    recipient_id: int, body: RecipientIn, conn: ConnDep, token: Writer
) -> RecipientOut:
    await _recipient_of(conn, token, recipient_id)
    await _own(conn, token, body.enterprise, named_in_body=True)
    await save_recipient(conn, _recipient(body, recipient_id))
    return RecipientOut(id=recipient_id, **body.model_dump())


@router.delete("/api/v1/notifications/recipients/{recipient_id}", status_code=204)
async def remove_recipient(recipient_id: int, conn: ConnDep, token: Writer) -> None:
    await _recipient_of(conn, token, recipient_id)
    await delete_recipient(conn, recipient_id)


def _policy_out(p: EscalationPolicy) -> PolicyOut:
    return PolicyOut(
        enterprise=p.enterprise,
        escalate_after_min=p.escalate_after_s / 60,
        reminder_every_min=p.reminder_every_s / 60 if p.reminder_every_s else None,
        max_reminders=p.max_reminders,
        notify_on_resolve=p.notify_on_resolve,
    )


@router.get("/api/v1/notifications/policies", response_model=list[PolicyOut])
async def policies(conn: ConnDep, token: Writer) -> list[PolicyOut]:
    """The escalation policies of the enterprises the token manages (none: no escalation)."""
    return [_policy_out(p) for p in await list_policies(conn, await _visible(conn, token))]


@router.get("/api/v1/notifications/policies/{enterprise}", response_model=PolicyOut)
async def policy(enterprise: EnterpriseCode, conn: ConnDep, token: Writer) -> PolicyOut:
    await _own(conn, token, enterprise, named_in_body=False)
    found = await get_policy(conn, enterprise)
    if found is None:
        raise HTTPException(404, f"enterprise {enterprise} has no escalation policy")
    return _policy_out(found)


@router.put("/api/v1/notifications/policies/{enterprise}", response_model=PolicyOut)
async def update_policy(
    enterprise: EnterpriseCode, body: PolicyIn, conn: ConnDep, token: Writer
) -> PolicyOut:
    await _own(conn, token, enterprise, named_in_body=False)
    stored = EscalationPolicy(
        enterprise=enterprise,
        escalate_after_s=max(1, round(body.escalate_after_min * 60)),
        reminder_every_s=(
            max(1, round(body.reminder_every_min * 60)) if body.reminder_every_min else None
        ),
        max_reminders=body.max_reminders,
        notify_on_resolve=body.notify_on_resolve,
    )
    await set_policy(conn, stored)
    return _policy_out(stored)


@router.delete("/api/v1/notifications/policies/{enterprise}", status_code=204)
async def remove_policy(enterprise: EnterpriseCode, conn: ConnDep, token: Writer) -> None:
    await _own(conn, token, enterprise, named_in_body=False)
    if not await delete_policy(conn, enterprise):
        raise HTTPException(404, f"enterprise {enterprise} has no escalation policy")


_NOTICE = {
    "raised": "notified",
    "escalation": "escalated_to",
    "reminder": "reminded",
    "resolved": "told_resolved",
}
TIMELINE_COLUMNS = ("at", "event", "who", "channel", "address", "result", "severity", "detail")


def _entries(history: list[dict[str, Any]], notes: list[dict[str, Any]]) -> list[TimelineEntry]:
    entries = [
        TimelineEntry(
            at=h["at"],
            event=h["transition"],
            who=h["actor"],
            severity=h["severity"],
            detail="; ".join(str(x) for x in (h["comment"], h.get("action"), h["reason"]) if x)
            or None,
        )
        for h in history
    ]
    for n in notes:
        common = {"who": n["recipient"], "channel": n["channel"], "address": n["address"]}
        event = _NOTICE.get(n["event"], n["event"])
        for attempt in n["attempts"]:
            entries.append(
                TimelineEntry(
                    at=datetime.fromisoformat(attempt["at"]),
                    event=event,
                    result=attempt["result"],
                    detail=attempt["error"],
                    **common,
                )
            )
        if not n["attempts"]:
            entries.append(
                TimelineEntry(at=n["created_at"], event="queued", result="pending", **common)
            )
    return sorted(entries, key=lambda e: e.at)


@router.get(
    "/api/v1/alerts/{alert_id}/timeline",
    response_model=Timeline,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def timeline(
    alert_id: uuid.UUID,
    conn: ConnDep,
    token: Reader,
    fmt: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Any:
    """The alert's whole story in time order: its transitions (who acknowledged, with what
    comment and action; who resolved, with what cause) and every notification attempt (whom,
    through which channel, with what result)."""
    found = await get_alert(conn, str(alert_id))
    await _seen(conn, token, found["enterprise"] if found else None, f"alert {alert_id}")
    assert found is not None
    entries = _entries(
        await alert_history(conn, str(alert_id)), await notification_log(conn, str(alert_id))
    )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=TIMELINE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(e.model_dump(mode="json") for e in entries)
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="qorgau-alert-{alert_id}.csv"'},
        )
    return Timeline(
        alert_id=str(alert_id),
        enterprise=found["enterprise"],
        state=found["state"],
        entries=entries,
    )
