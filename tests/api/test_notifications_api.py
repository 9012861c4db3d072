"""Notification settings and the alert timeline through the API: a safety officer manages their
own enterprise's recipients, routes and escalation policy; acknowledging a high alert needs the
action taken; the timeline (JSON and CSV) tells who was told, when, through which channel, who
acknowledged with what action and who resolved with what cause."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

import pytest

from ingest.alerting.metrics import AlertMetrics
from ingest.alerting.notifications.sender import NotificationSender
from ingest.alerting.notifications.settings import NotificationSettings
from store.alerts import record_of, write_transitions
from store.connection import ReconnectingConnection, connect_async
from tests.api.conftest import Api, make_tenant
from tests.notify_support import SmtpSink
from tests.support import scalar
from vocabulary.protocol.alerts import AlertMessage

pytestmark = [pytest.mark.anyio, pytest.mark.services]

N = "/api/v1/notifications"


async def test_a_safety_officer_manages_their_own_enterprise(api: Api) -> None:
    a = await make_tenant(api, "ent-a", "Almaty")
    b = await make_tenant(api, "ent-b", "Karaganda")
    created = await api.ok(
        "POST",
        f"{N}/recipients",
        a.officer,
        json={
            "enterprise": "ent-a",
            "name": "Dana, director",
            "language": "en",
            "channels": [
                {"channel": "sms", "address": "+7 701 123 45 67"},
                {"channel": "telegram", "address": "-100200300"},
            ],
            "on_call": {"start": "20:00", "end": "08:00"},
        },
    )
    assert created["channels"][0]["address"] == "+77011234567"
    listed = await api.ok("GET", f"{N}/recipients", a.officer)
    assert {r["enterprise"] for r in listed} == {"ent-a"}
    assert {r["name"] for r in listed} == {"officer of ent-a", "Dana, director"}
    (night,) = [r for r in listed if r["name"] == "Dana, director"]
    assert night["on_call"] == {"start": "20:00:00", "end": "08:00:00"}

    bad = await api.call(
        "POST",
        f"{N}/recipients",
        a.officer,
        json={
            "enterprise": "ent-a",
            "name": "x",
            "channels": [{"channel": "email", "address": "no"}],
        },
    )
    assert bad.status_code == 422
    assert "not an email address" in bad.text
    other = await api.call(
        "POST",
        f"{N}/routes",
        a.officer,
        json={"enterprise": "ent-a", "recipient_id": b.recipient_id},
    )
    assert other.status_code == 404  # B's recipient does not exist for A

    route = await api.ok(
        "POST",
        f"{N}/routes",
        a.officer,
        json={
            "enterprise": "ent-a",
            "recipient_id": created["id"],
            "level": 2,
            "min_severity": "critical",
            "workplace": a.workplace["code"],
        },
    )
    assert route["level"] == 2
    policy = await api.ok(
        "PUT",
        f"{N}/policies/ent-a",
        a.officer,
        json={"escalate_after_min": 5, "reminder_every_min": 0.5, "notify_on_resolve": True},
    )
    assert policy["reminder_every_min"] == 0.5
    assert (await api.ok("GET", f"{N}/policies/ent-a", a.officer))["escalate_after_min"] == 5
    # The list holds the enterprises' policies the token manages: A's officer sees A's alone.
    assert await api.ok("GET", f"{N}/policies", a.officer) == [policy]
    everyone = await api.ok("GET", f"{N}/policies", api.tokens["admin"])
    assert {p["enterprise"] for p in everyone} == {"ent-a", b.enterprise["code"]}


async def test_acknowledge_needs_the_action_and_the_timeline_tells_the_whole_story(
    api: Api,
) -> None:
    a = await make_tenant(api, "ent-a", "Almaty")
    smtp = SmtpSink()
    smtp.start()
    alert_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    try:
        opened = AlertMessage(
            alert_id=alert_id,
            transition="opened",
            state="open",
            kind="ceiling",
            severity="high",
            enterprise="ent-a",
            device=a.device["code"],
            workplace=a.workplace["code"],
            message="gas",
            at=now,
            opened_at=now,
            sent_at=now,
        )
        conn = await connect_async(api.pg_url, api.schema, autocommit=True)
        async with conn:
            await write_transitions(conn, [record_of(opened)])
        settings = NotificationSettings(
            notify_smtp_host="127.0.0.1", notify_smtp_port=smtp.port, notify_smtp_starttls=False
        )
        db = ReconnectingConnection(api.pg_url, api.schema, retry_max_s=1, purpose="test")
        notifier = NotificationSender(db, settings, AlertMetrics(), enterprises=["ent-a"])
        try:
            while await notifier.step():
                pass
        finally:
            await notifier.close()
        assert [m.to for m in smtp.mails] == [["hse@ent-a.kz"]]
    finally:
        smtp.stop()

    path = f"/api/v1/alerts/{alert_id}"
    refused = await api.call(
        "POST", f"{path}/acknowledge", a.officer, json={"by": "aigerim", "comment": "seen"}
    )
    assert refused.status_code == 422
    assert "action" in refused.json()["detail"]
    acked = await api.ok(
        "POST",
        f"{path}/acknowledge",
        a.officer,
        json={"by": "aigerim", "comment": "seen", "action": "evacuated the face"},
    )
    assert acked["ack_action"] == "evacuated the face"
    done = scalar(
        api.pg_url, api.schema, "SELECT done FROM alert_escalations WHERE alert_id = %s", [alert_id]
    )
    assert done is True  # acknowledging ended the escalation
    resolved = await api.ok(
        "POST", f"{path}/resolve", a.officer, json={"by": "ivan", "cause": "a leaking valve"}
    )
    assert resolved["resolution_cause"] == "a leaking valve"

    story = await api.ok("GET", f"{path}/timeline", a.officer)
    events = [(e["event"], e["who"]) for e in story["entries"]]
    assert events == [
        ("opened", None),
        ("notified", "officer of ent-a"),
        ("acknowledged", "aigerim"),
        ("resolved", "ivan"),
    ]
    notified = story["entries"][1]
    assert (notified["channel"], notified["address"], notified["result"]) == (
        "email",
        "hse@ent-a.kz",
        "sent",
    )
    assert "evacuated the face" in story["entries"][2]["detail"]
    assert "a leaking valve" in story["entries"][3]["detail"]

    exported = await api.call("GET", f"{path}/timeline?format=csv", a.officer)
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["event"] for r in table] == [e[0] for e in events]
    assert table[1]["address"] == "hse@ent-a.kz"
    outsider = await make_tenant(api, "ent-b", "Karaganda")
    hidden = await api.call("GET", f"{path}/timeline", outsider.officer)
    assert hidden.status_code == 404
