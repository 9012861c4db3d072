"""Notifications on the dashboard in a real headless Chromium, in Russian: an alert's timeline
shows whom it notified through which channel with what result, and who acknowledged it with
what action (acknowledged on the page), in the enterprise's zone, with its CSV; the
enterprise's page lists the recipient, route and escalation policy made through the API and
adds a recipient through its form.

Screenshots are kept in test-artifacts/screenshots/."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Dialog

from application.localisation import AUTONYMS, messages
from store.connection import connect_async
from store.notifications import record_attempt, take_due
from tests.browser.test_languages import PHONE, no_horizontal_overflow, open_page, sign_in
from tests.live_support import ENTERPRISE, World, live_world

pytestmark = [pytest.mark.anyio, pytest.mark.services, pytest.mark.browser]

LOCALE = "ru"
RECIPIENT = "Айгерим Сейткали"
ACTION = "вывели людей из забоя"


async def set_up_notifications(world: World) -> dict[str, object]:
    """A recipient with an email address, a route to her for warnings and above, and an
    escalation policy, made through the API as a safety officer; returns the recipient."""
    headers = {"Authorization": f"Bearer {world.officer}"}
    async with httpx.AsyncClient(base_url=world.base, headers=headers) as http:
        made = await http.post(
            "/api/v1/notifications/recipients",
            json={
                "enterprise": ENTERPRISE,
                "name": RECIPIENT,
                "language": "kk",
                "channels": [{"channel": "email", "address": "aigerim@mine.kz"}],
            },
        )
        assert made.status_code == 201, made.text
        recipient: dict[str, object] = made.json()
        route = await http.post(
            "/api/v1/notifications/routes",
            json={
                "enterprise": ENTERPRISE,
                "recipient_id": recipient["id"],
                "min_severity": "warning",
            },
        )
        assert route.status_code == 201, route.text
        policy = await http.put(
            f"/api/v1/notifications/policies/{ENTERPRISE}",
            json={"escalate_after_min": 10, "reminder_every_min": 15, "max_reminders": 3},
        )
        assert policy.status_code == 200, policy.text
    return recipient


async def deliver_queued_email(world: World) -> None:
    """Do what the sender does once the mail server accepts: take the queued notification and
    record a sent attempt."""
    conn = await connect_async(world.pg_url, world.schema, autocommit=True)
    async with conn:
        (taken,) = await take_due(conn, [ENTERPRISE], channels=["email"])
        await record_attempt(
            conn, taken.id, at=datetime.now(UTC), result="sent", error=None, duration_ms=12.0
        )


async def test_the_timeline_and_the_notifications_section(
    browser: Browser, pg_url: str, mqtt_url: str, schema: str, topic_prefix: str, shots: Path
) -> None:
    texts = messages(LOCALE)
    async with live_world(pg_url, mqtt_url, schema, topic_prefix) as world:
        await set_up_notifications(world)
        ident = await world.alert(severity="critical")
        await deliver_queued_email(world)
        context, page, console = await open_page(
            browser, world, LOCALE, {"width": 1300, "height": 1000}
        )
        await sign_in(page, world.officer)
        headers = {"Authorization": f"Bearer {world.officer}"}
        async with httpx.AsyncClient(base_url=world.base, headers=headers) as http:
            officer = (await http.get("/api/v1/me")).json()["name"]
            (enterprise,) = (await http.get("/api/v1/enterprises")).json()["items"]

        row = f"#alert-feed li[data-alert-id='{ident}']"
        await page.goto(f"{world.base}/#/alerts")
        await page.wait_for_selector(f"{row}[data-state=open]")
        await page.click(f"{row} button[data-action=timeline]")
        notified = f"{row} .timeline tr[data-event=notified]"
        await page.wait_for_selector(notified)
        cells = await page.locator(f"{notified} td").all_inner_texts()
        assert cells[2:5] == [RECIPIENT, f"{texts['email']}\naigerim@mine.kz", texts["sent"]], cells
        # Times are the enterprise's (Asia/Almaty), whatever the browser's zone (UTC here).
        async with httpx.AsyncClient(base_url=world.base, headers=headers) as http:
            story = (await http.get(f"/api/v1/alerts/{ident}/timeline")).json()
        raised_at = datetime.fromisoformat(story["entries"][0]["at"])
        local = raised_at.astimezone(ZoneInfo(enterprise["timezone"])).strftime("%H:%M:%S")
        raised = await page.inner_text(f"{row} .timeline tr[data-event=opened]")
        assert local in raised
        assert texts["raised"] in raised

        async def action_taken(dialog: Dialog) -> None:
            assert dialog.message == texts["Action taken (required for high and critical alerts)"]
            await dialog.accept(ACTION)

        page.once("dialog", action_taken)
        await page.click(f"{row} button[data-action=acknowledge]")
        # The row is redrawn acknowledged, its timeline still open and read again.
        acknowledged = f"{row}[data-state=acknowledged] .timeline tr[data-event=acknowledged]"
        await page.wait_for_selector(acknowledged)
        assert await page.inner_text(f"{acknowledged} td.actor") == officer
        assert ACTION in await page.inner_text(f"{acknowledged} td.detail")
        await page.screenshot(path=str(shots / f"alert-timeline-{LOCALE}.png"), full_page=True)
        await page.set_viewport_size(PHONE)  # the table scrolls inside its box
        assert await no_horizontal_overflow(page)
        await page.screenshot(
            path=str(shots / f"phone-alert-timeline-{LOCALE}.png"), full_page=True
        )
        await page.set_viewport_size({"width": 1300, "height": 1000})

        async with page.expect_download() as waiting:
            await page.click(f"{row} button[data-action=timeline-csv]")
        saved = Path(await (await waiting.value).path())
        csv = await asyncio.to_thread(saved.read_text, encoding="utf-8")
        assert csv.splitlines()[0] == "at,event,who,channel,address,result,severity,detail"
        assert f"acknowledged,{officer}" in csv
        assert ACTION in csv

        await page.goto(f"{world.base}/#/enterprise/{enterprise['id']}")
        recipients = "#notifications #recipients"
        await page.wait_for_selector(f"{recipients} tbody tr")
        listed = await page.inner_text(recipients)
        assert RECIPIENT in listed
        assert "aigerim@mine.kz" in listed
        assert AUTONYMS["kk"] in listed  # her language, by its own name
        routes = await page.inner_text("#notifications #routes")
        assert RECIPIENT in routes
        assert texts["when raised"] in routes
        policy = await page.inner_text("#escalation-policy")
        assert "10" in policy
        assert "15" in policy

        await page.fill("#recipient-form input[name=name]", "Дежурный диспетчер")
        await page.select_option("#recipient-form select[name=channel]", "sms")
        await page.fill("#recipient-form input[name=address]", "+77011234567")
        await page.click("#recipient-form button[type=submit]")
        await page.wait_for_selector(f"{recipients} tbody tr >> nth=1")
        listed = await page.inner_text(recipients)
        assert "Дежурный диспетчер" in listed
        assert f"{texts['SMS']}: +77011234567" in listed
        await page.screenshot(path=str(shots / f"notifications-{LOCALE}.png"), full_page=True)
        await page.set_viewport_size(PHONE)
        assert await no_horizontal_overflow(page)
        await page.set_viewport_size({"width": 1300, "height": 1000})

        assert console.errors == []

        # A wrong address is refused with the API's reason, and nothing is added.
        await page.fill("#recipient-form input[name=name]", "Никто")
        await page.select_option("#recipient-form select[name=channel]", "email")
        await page.fill("#recipient-form input[name=address]", "not-an-address")
        await page.click("#recipient-form button[type=submit]")
        await page.wait_for_selector("#recipient-form .error:not(:empty)")
        assert "not-an-address" in await page.inner_text("#recipient-form .error")
        assert await page.locator(f"{recipients} tbody tr").count() == 2
        # The browser logs the refused request itself; nothing else went wrong.
        assert len(console.errors) == 1
        assert "422" in console.errors[0]
        assert "/api/v1/notifications/recipients" in console.errors[0]
        await context.close()
