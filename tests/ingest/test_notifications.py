"""Notifications against real servers: an SMTP server (aiosmtpd, STARTTLS and login) receiving
the mail, and a local HTTP server standing in for the Telegram Bot API, an SMS gateway and a
webhook receiver (outside services in production). Routing by scope, severity, kind and on-call
hours; a channel that is down delays and never loses; escalation deadlines survive a restart of
the sender; acknowledging stops escalation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time as wall
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from ingest.alerting.metrics import AlertMetrics
from ingest.alerting.notifications.sender import NotificationSender
from ingest.alerting.notifications.settings import NotificationSettings
from ingest.alerting.notifications.texts import Catalogues
from ingest.alerting.webhooks import SIGNATURE_HEADER, verify
from qorgau.localservices import scratch_dir
from store.alerts import AlertRecord, write_transitions
from store.connection import ReconnectingConnection, connect_async
from store.notifications import EscalationPolicy, Recipient, Route, save_recipient, set_policy
from store.notifications import add_route as store_add_route
from store.registry import upsert_device, upsert_enterprise, upsert_workplace
from tests.ingest.test_alerting import DEV, gas, register, rig
from tests.ingest.test_alerting import ENT as ENGINE_ENT
from tests.notify_support import SMTP_PASSWORD, SMTP_USER, SmtpSink, http_sink
from tests.support import eventually, rows, scalar
from tests.tls_support import make_certificates, needs_openssl

pytestmark = [pytest.mark.anyio, pytest.mark.services]

ENT = "kz-mine"
ALERT = "6f1c7a52-3a0e-5d7c-9a55-0c3f4f6b8e01"


async def world(pg_url: str, schema: str) -> None:
    """An enterprise with a site, a named workplace and a named device."""
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        ent = await upsert_enterprise(conn, ENT, "Karaganda mine No 3")
        wp = await upsert_workplace(conn, ent, "face-1", "Longwall face 12")
        await upsert_workplace(conn, ent, "face-2", "Development heading")
        await upsert_device(conn, ent, "dev-1", name="Gas monitor A", workplace_id=wp)
        site = await (
            await conn.execute(
                "INSERT INTO sites (enterprise_id, code, name) VALUES (%s, 'north', "
                "'North shaft') RETURNING id",
                [ent],
            )
        ).fetchone()
        assert site is not None
        await conn.execute("UPDATE workplaces SET site_id = %s WHERE id = %s", [site[0], wp])


def record(
    transition: str = "opened",
    *,
    alert_id: str = ALERT,
    severity: str = "critical",
    kind: str = "ceiling",
    workplace: str = "face-1",
    at: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
) -> AlertRecord:
    now = at or datetime.now(UTC)
    state = {"acknowledged": "acknowledged", "resolved": "resolved"}.get(transition, "open")
    return AlertRecord(
        alert_id=alert_id,
        transition=transition,
        state=state,
        enterprise=ENT,
        device="dev-1",
        sensor="dev-1.h2s",
        sensor_id=None,
        workplace=workplace,
        quantity="gas",
        substance="H2S",
        kind=kind,
        severity=severity,
        value=31.5,
        unit="mg/m3",
        threshold=20.0,
        threshold_unit="mg/m3",
        time_left_s=None,
        message="H2S above the ceiling",
        opened_at=now - timedelta(minutes=3),
        at=now,
        escalations=0,
        actor=actor,
        comment=None,
        reason=None,
        source="api" if actor else "engine",
        action=action,
    )


async def write(pg_url: str, schema: str, *records: AlertRecord) -> None:
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        await write_transitions(conn, list(records))


async def person(
    pg_url: str,
    schema: str,
    name: str,
    channels: list[tuple[str, str]],
    *,
    language: str = "ru",
    level: int = 0,
    on_call: tuple[time, time] | None = None,
    **route: Any,
) -> int:
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        ident = await save_recipient(
            conn,
            Recipient(
                id=0,
                enterprise=ENT,
                name=name,
                language=language,
                channels=tuple(channels),
                on_call_start=on_call[0] if on_call else None,
                on_call_end=on_call[1] if on_call else None,
            ),
        )
        await store_add_route(
            conn, Route(id=0, enterprise=ENT, recipient_id=ident, level=level, **route)
        )
    return ident


@contextlib.asynccontextmanager
async def sender(
    pg_url: str, schema: str, settings: NotificationSettings
) -> AsyncIterator[NotificationSender]:
    db = ReconnectingConnection(pg_url, schema, retry_max_s=1.0, purpose="test notifications")
    notifier = NotificationSender(db, settings, AlertMetrics(), enterprises=[ENT], retry_base_s=0.1)
    try:
        yield notifier
    finally:
        await notifier.close()


async def run_for(notifier: NotificationSender, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 10)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """A plain SMTP server (a local relay), running."""
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


def plain_smtp(smtp: SmtpSink, **more: Any) -> NotificationSettings:
    return NotificationSettings(
        notify_smtp_host="127.0.0.1",
        notify_smtp_port=smtp.port,
        notify_smtp_starttls=False,
        notify_smtp_from="alerts@qorgau.kz",
        notify_poll_s=0.1,
        notify_retry_max_s=0.3,
        **more,
    )


@needs_openssl
async def test_every_channel_delivers_a_text_the_person_understands(
    pg_url: str, schema: str
) -> None:
    tls = scratch_dir("qorgau-test-smtp-")
    make_certificates(tls)
    smtp = SmtpSink(tls_folder=tls)
    smtp.start()
    await world(pg_url, schema)
    try:
        async with http_sink() as http:
            await person(
                pg_url,
                schema,
                "Aigerim",
                [
                    ("email", "aigerim@mine.kz"),
                    ("telegram", "100200"),
                    ("sms", "+77011234567"),
                    ("webhook", f"{http.url}/hook"),
                ],
                language="kk",
                min_severity="high",
            )
            await person(pg_url, schema, "Ivan", [("email", "ivan@mine.kz")], language="ru")
            await write(pg_url, schema, record())
            # Planning the same transition again (a replay after a store retry) queues nothing.
            await write(pg_url, schema, record())
            assert scalar(pg_url, schema, "SELECT count(*) FROM alert_notifications") == 5

            settings = NotificationSettings(
                notify_smtp_host="127.0.0.1",
                notify_smtp_port=smtp.port,
                notify_smtp_starttls=True,
                notify_smtp_username=SMTP_USER,
                notify_smtp_password=SMTP_PASSWORD,
                notify_smtp_from="alerts@qorgau.kz",
                notify_smtp_ca_file=str(tls / "ca.pem"),
                notify_telegram_token="123:abc",
                notify_telegram_api_url=http.url,
                notify_sms_url=f"{http.url}/sms",
                notify_sms_fields='{"recipient": "$phone", "message": "$text", "from": "QORGAU"}',
                notify_sms_headers='{"X-Api-Key": "sms-key"}',
                notify_webhook_secret="a-long-notification-secret",
            )
            async with sender(pg_url, schema, settings) as notifier:
                while await notifier.step():
                    pass

            (kk_mail,) = smtp.to("aigerim@mine.kz")
            (ru_mail,) = smtp.to("ivan@mine.kz")
            assert smtp.logins  # STARTTLS, then login
            catalogues = Catalogues()
            gas_action = catalogues.gettext(
                "ru",
                "Leave the area now, put on the respirator and do not return until the air has "
                "been checked.",
            )
            for mail in (kk_mail, ru_mail):
                assert "Longwall face 12" in mail.message["Subject"]
                assert "North shaft" in mail.text
                assert "Karaganda mine No 3" in mail.text
                assert "31,5" in mail.text
                assert "20" in mail.text
                assert "мг/м³" in mail.text
                assert "Gas monitor A" in mail.text
                assert mail.message["From"] == "alerts@qorgau.kz"
            assert "Дабыл" in kk_mail.text
            assert "Тревога" in ru_mail.text
            assert gas_action in ru_mail.text
            assert catalogues.gettext("kk", "What to do: {action}").split(":")[0] in kk_mail.text

            (telegram,) = http.on("/bot123:abc/sendMessage")
            sent = json.loads(telegram.body)
            assert sent["chat_id"] == "100200"
            assert "Longwall face 12" in sent["text"]
            (sms,) = http.on("/sms")
            fields = json.loads(sms.body)
            assert fields["recipient"] == "+77011234567"
            assert fields["from"] == "QORGAU"
            assert "Longwall face 12" in fields["message"]
            assert sms.headers["x-api-key"] == "sms-key"
            (hook,) = http.on("/hook")
            header = hook.headers[SIGNATURE_HEADER.lower()]
            assert verify("a-long-notification-secret", header, hook.body, now=wall.time())
            assert json.loads(hook.body)["alert_id"] == ALERT

        attempts = rows(
            pg_url,
            schema,
            "SELECT n.channel, n.recipient, t.result FROM alert_notification_attempts t "
            "JOIN alert_notifications n ON n.id = t.notification_id ORDER BY n.channel",
        )
        assert sorted(attempts) == sorted(
            [
                ("email", "Aigerim", "sent"),
                ("email", "Ivan", "sent"),
                ("sms", "Aigerim", "sent"),
                ("telegram", "Aigerim", "sent"),
                ("webhook", "Aigerim", "sent"),
            ]
        )
    finally:
        smtp.stop()


async def test_routes_pick_people_by_scope_severity_kind_and_on_call_hours(
    pg_url: str, schema: str
) -> None:
    await world(pg_url, schema)
    # Hours around the enterprise's local time now (wide: PostgreSQL's and Python's zone data
    # may differ by the 2024 change of Kazakhstan's zone).
    now_local = datetime.now(UTC).astimezone(ZoneInfo("Asia/Almaty"))
    off = ((now_local + timedelta(hours=3)).time(), (now_local + timedelta(hours=6)).time())
    on = ((now_local - timedelta(hours=2)).time(), (now_local + timedelta(hours=2)).time())
    names = {
        "site": await person(pg_url, schema, "site", [("email", "s@x")], site="north"),
        "other-site": await person(pg_url, schema, "other-site", [("email", "o@x")], site="south"),
        "face-1": await person(pg_url, schema, "face-1", [("email", "f@x")], workplace="face-1"),
        "face-2": await person(pg_url, schema, "face-2", [("email", "g@x")], workplace="face-2"),
        "critical-only": await person(
            pg_url, schema, "critical-only", [("email", "c@x")], min_severity="critical"
        ),
        "noise-only": await person(
            pg_url, schema, "noise-only", [("email", "n@x")], kinds=("projected_exposure",)
        ),
        "off-duty": await person(pg_url, schema, "off-duty", [("email", "d@x")], on_call=off),
        "on-duty": await person(pg_url, schema, "on-duty", [("email", "u@x")], on_call=on),
        "level-1": await person(pg_url, schema, "level-1", [("email", "l@x")], level=1),
    }
    assert len(names) == 9
    await write(pg_url, schema, record(severity="high"))
    told = {r[0] for r in rows(pg_url, schema, "SELECT recipient FROM alert_notifications")}
    assert told == {"site", "face-1", "on-duty"}
    # A rise to critical reaches who it now concerns, and no one twice.
    await write(pg_url, schema, record("escalated", severity="critical"))
    told_twice = rows(pg_url, schema, "SELECT recipient FROM alert_notifications")
    assert sorted(r[0] for r in told_twice) == ["critical-only", "face-1", "on-duty", "site"]


async def test_a_channel_down_for_a_while_delays_and_loses_nothing(
    pg_url: str, schema: str
) -> None:
    await world(pg_url, schema)
    smtp = SmtpSink()  # not started: the mail server is down
    for i in range(5):
        await person(pg_url, schema, f"p{i}", [("email", f"p{i}@mine.kz")])
    alerts = [f"6f1c7a52-3a0e-5d7c-9a55-0c3f4f6b8e1{i}" for i in range(3)]
    await write(pg_url, schema, *(record(alert_id=a) for a in alerts))

    def retried() -> tuple[int, int]:
        found = rows(
            pg_url,
            schema,
            "SELECT count(*), count(DISTINCT notification_id) "
            "FROM alert_notification_attempts WHERE result = 'retry'",
        )[0]
        return int(found[0]), int(found[1])

    async with sender(pg_url, schema, plain_smtp(smtp)) as notifier:
        started = wall.monotonic()
        stop = asyncio.Event()
        task = asyncio.create_task(notifier.run(stop))
        await eventually(lambda: retried()[0] >= 15 + 3, what="three probes of the channel")
        stop.set()
        await asyncio.wait_for(task, 10)
        elapsed = wall.monotonic() - started
        attempts, tried = retried()
        # Every one tried once; then the channel is paused and one notification at a time
        # probes it (pauses of at least 0.1 s here), rather than all 15 every 0.3 s.
        assert tried == 15
        assert attempts - 15 <= elapsed / 0.1 + 1
        assert not smtp.mails
        smtp.start()
        try:
            stop = asyncio.Event()
            task = asyncio.create_task(notifier.run(stop))
            await eventually(lambda: len(smtp.mails) >= 15, what="the 15 mails")
            await asyncio.sleep(0.5)  # nothing more comes
            stop.set()
            await asyncio.wait_for(task, 10)
        finally:
            smtp.stop()
    assert len(smtp.mails) == 15
    assert len({(tuple(m.to), m.message["Message-ID"]) for m in smtp.mails}) == 15
    states = rows(pg_url, schema, "SELECT state, count(*) FROM alert_notifications GROUP BY 1")
    assert states == [("sent", 15)]
    errors = rows(
        pg_url,
        schema,
        "SELECT DISTINCT error FROM alert_notification_attempts WHERE result = 'retry'",
    )
    assert all("SMTP" in e[0] or "onnect" in e[0] for e in errors), errors


async def test_escalation_deadlines_survive_a_restart_and_stop_at_acknowledgement(
    pg_url: str, schema: str, smtp: SmtpSink
) -> None:
    await world(pg_url, schema)
    await person(pg_url, schema, "shift supervisor", [("email", "sup@mine.kz")], level=0)
    await person(pg_url, schema, "safety officer", [("email", "hse@mine.kz")], level=1)
    await person(pg_url, schema, "director", [("email", "dir@mine.kz")], level=2)
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        await set_policy(conn, EscalationPolicy(ENT, escalate_after_s=2))
    await write(pg_url, schema, record())
    settings = plain_smtp(smtp)
    async with sender(pg_url, schema, settings) as first:
        await run_for(first, 0.5)
    assert [m.to for m in smtp.mails] == [["sup@mine.kz"]]
    due = scalar(pg_url, schema, "SELECT due_at FROM alert_escalations")
    # The engine is down when the deadline passes; a new one acts on it when it starts.
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.5)
    async with sender(pg_url, schema, settings) as second:
        await run_for(second, 0.5)
    assert sorted(m.to[0] for m in smtp.mails) == ["hse@mine.kz", "sup@mine.kz", "sup@mine.kz"]
    (escalated,) = smtp.to("hse@mine.kz")
    assert "Передано вам" in escalated.text
    reminded = smtp.to("sup@mine.kz")[1]
    assert "Напоминание" in reminded.text
    late = scalar(
        pg_url,
        schema,
        "SELECT max(extract(epoch FROM sent_at - due_at)) FROM alert_notifications "
        "WHERE event = 'escalation'",
    )
    assert late > 0  # sent after the deadline it waited for, never before

    # Acknowledged: the director is never told.
    await write(
        pg_url, schema, record("acknowledged", actor="Aigerim", action="evacuated the face")
    )
    async with sender(pg_url, schema, settings) as third:
        await run_for(third, 2.5)
    assert not smtp.to("dir@mine.kz")
    assert scalar(pg_url, schema, "SELECT done FROM alert_escalations") is True


async def test_resolving_tells_everyone_who_was_told_when_the_policy_asks(
    pg_url: str, schema: str, smtp: SmtpSink
) -> None:
    await world(pg_url, schema)
    await person(pg_url, schema, "supervisor", [("email", "sup@mine.kz")], language="en")
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        await set_policy(conn, EscalationPolicy(ENT, notify_on_resolve=True))
    await write(pg_url, schema, record())
    await write(pg_url, schema, record("resolved", actor="Ivan", action="valve closed"))
    async with sender(pg_url, schema, plain_smtp(smtp)) as notifier:
        while await notifier.step():
            pass
    texts = [m.text for m in smtp.to("sup@mine.kz")]
    assert len(texts) == 2
    assert any(t.startswith("Resolved: ceiling exceeded") for t in texts), texts


async def test_two_senders_at_once_send_each_notification_once(
    pg_url: str, schema: str, smtp: SmtpSink
) -> None:
    """Engines own disjoint enterprises, so one sender serves each notification; even two
    senders of one enterprise (a misconfiguration) share the outbox without a double send."""
    await world(pg_url, schema)
    for i in range(6):
        await person(pg_url, schema, f"p{i}", [("email", f"p{i}@mine.kz")])
    alerts = [f"6f1c7a52-3a0e-5d7c-9a55-0c3f4f6b8e2{i}" for i in range(5)]
    await write(pg_url, schema, *(record(alert_id=a) for a in alerts))
    async with (
        sender(pg_url, schema, plain_smtp(smtp)) as one,
        sender(pg_url, schema, plain_smtp(smtp)) as other,
    ):
        one.batch = other.batch = 3  # many small rounds, so that the two interleave
        stop = asyncio.Event()
        both = [asyncio.create_task(one.run(stop)), asyncio.create_task(other.run(stop))]
        await eventually(lambda: len(smtp.mails) >= 30, what="the 30 mails")
        await asyncio.sleep(0.5)  # nothing more comes
        stop.set()
        await asyncio.wait_for(asyncio.gather(*both), 10)
    assert len(smtp.mails) == 30
    assert len({m.message["Message-ID"] for m in smtp.mails}) == 30
    assert scalar(pg_url, schema, "SELECT count(*) FROM alert_notification_attempts") == 30


async def test_the_engine_restarted_mid_escalation_escalates_on_time(
    pg_url: str,
    mqtt_url: str,
    schema: str,
    topic_prefix: str,
    smtp: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole engine (``qorgau alerts``) raises a real alert from a reading, tells level 0,
    is stopped before the escalation deadline and started again after it: the new engine
    escalates to level 1 from the stored deadline."""

    for name, value in {
        "QORGAU_NOTIFY_SMTP_HOST": "127.0.0.1",
        "QORGAU_NOTIFY_SMTP_PORT": str(smtp.port),
        "QORGAU_NOTIFY_SMTP_STARTTLS": "false",
        "QORGAU_NOTIFY_POLL_S": "0.1",
    }.items():
        monkeypatch.setenv(name, value)
    await register(pg_url, schema, [(f"{DEV}.h2s", "gas", "mg/m3", "H2S")])
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        for level, address in enumerate(("sup@mine.kz", "hse@mine.kz")):
            ident = await save_recipient(
                conn, Recipient(0, ENGINE_ENT, address, "en", (("email", address),))
            )
            await store_add_route(conn, Route(0, ENGINE_ENT, ident, level=level))
        await set_policy(conn, EscalationPolicy(ENGINE_ENT, escalate_after_s=3))

    async with rig(pg_url, mqtt_url, schema, topic_prefix, with_ingest=False) as r:
        await r.publish([gas(f"{DEV}.h2s", datetime.now(UTC), np.array([60.0]))])
        await eventually(lambda: bool(smtp.to("sup@mine.kz")), what="the level-0 mail")
    assert not smtp.to("hse@mine.kz")
    due = scalar(pg_url, schema, "SELECT due_at FROM alert_escalations")
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.5)
    async with rig(pg_url, mqtt_url, schema, topic_prefix, with_ingest=False):
        await eventually(lambda: bool(smtp.to("hse@mine.kz")), what="the escalation mail")
    (escalated,) = smtp.to("hse@mine.kz")
    assert escalated.text.startswith("Escalated to you")
    assert "Longwall face" in escalated.text  # the workplace's name, not its code
