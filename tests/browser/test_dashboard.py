"""The built-in dashboard in a real headless Chromium against a running API, database and
broker: it loads cleanly, a reading published to the broker reaches its chart, and a person's
acknowledgement reaches a second browser."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page

from tests.live_support import NOISE, World, live_world, noise

pytestmark = [pytest.mark.anyio, pytest.mark.services, pytest.mark.browser]

# "Within 2 s" is the bound of the wait, not a measured latency.
LIVE_BOUND_MS = 2000


class Console:
    """Errors a page reported: console.error messages and uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} at {message.location}")


async def signed_in(browser: Browser, world: World, token: str) -> tuple[Page, Console]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    console = Console(page)
    await page.goto(world.base + "/")
    await page.fill("#token", token)
    await page.click("#sign-in button[type=submit]")
    await page.wait_for_selector("#nav:not([hidden])")
    return page, console


async def noise_chart_id(world: World, page: Page) -> str:
    sensor = await page.evaluate(
        """async ([path, token]) => {
            const r = await fetch(path, {headers: {Authorization: `Bearer ${token}`}});
            return (await r.json()).sensors;
        }""",
        [f"/api/v1/workplaces/{world.workplace_id}/live/exposure", world.officer],
    )
    ids: list[Any] = [s["sensor_id"] for s in sensor if s["sensor"] == NOISE]
    return str(ids[0])


async def test_pages_load_without_console_errors_and_look_right(
    browser: Browser,
    pg_url: str,
    mqtt_url: str,
    schema: str,
    topic_prefix: str,
    artifacts: Path,
) -> None:
    async with live_world(pg_url, mqtt_url, schema, topic_prefix) as world:
        await world.alert()
        page, console = await signed_in(browser, world, world.officer)
        await page.wait_for_selector("#workplaces tbody tr")
        assert "Longwall face" in await page.inner_text("#workplaces")

        await page.click("#workplaces a.button")
        await page.wait_for_selector("#exposure article")
        # The page's policy forbids eval, so waits are selectors, not predicates.
        await page.wait_for_selector("#charts figure.chart")
        await page.wait_for_selector("figure.chart[data-points='0']", state="detached")
        await page.wait_for_selector("#alert-feed li[data-state=open]")
        await page.wait_for_selector(".live-dot[data-state=live]")
        summary = await page.inner_text("#summary")
        assert "harmfulness index В" in summary
        labels = await page.locator("figure.chart figcaption b").all_inner_texts()
        assert "Noise LAeq, dB(A)" in labels
        assert any(label.startswith("Gas: carbon monoxide, mg/m³") for label in labels)
        cards = await page.inner_text("#exposure")
        assert "LEX,8h so far" in cards
        assert "dB(A)" in cards
        assert "m/s²" in cards
        await page.screenshot(path=str(artifacts / "dashboard-workplace.png"), full_page=True)

        await page.click("nav a[href='#/alerts']")
        # The workplace page has an alert feed too: wait for the alerts page's own.
        await page.wait_for_selector("h1:text-is('Alerts')")
        await page.wait_for_selector("#alert-feed li")
        await page.screenshot(path=str(artifacts / "dashboard-alerts.png"))
        await page.click("nav a[href='#/']")
        await page.wait_for_selector(".kz-map")
        await page.screenshot(path=str(artifacts / "dashboard-map.png"))
        assert console.errors == []


async def test_a_reading_published_to_the_broker_reaches_the_chart(
    browser: Browser, pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    async with live_world(pg_url, mqtt_url, schema, topic_prefix) as world:
        page, console = await signed_in(browser, world, world.officer)
        await page.goto(f"{world.base}/#/workplace/{world.workplace_id}")
        await page.wait_for_selector(".title-row .live-dot[data-state=live]")
        await world.watching()
        chart = f"figure.chart[data-sensor-id='{await noise_chart_id(world, page)}']"
        assert await page.get_attribute(chart, "data-last") != "97.75"

        await world.publish([noise(datetime.now(UTC), [97.75])])
        await page.wait_for_selector(f"{chart}[data-last='97.75']", timeout=LIVE_BOUND_MS)
        assert "latest 97.8\u00a0dB(A)" in await page.inner_text(f"{chart} .latest")
        assert console.errors == []


async def test_an_acknowledgement_reaches_a_second_browser(
    browser: Browser, pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    async with live_world(pg_url, mqtt_url, schema, topic_prefix) as world:
        ident = await world.alert(severity="critical")
        officer, officer_console = await signed_in(browser, world, world.officer)
        other, other_console = await signed_in(browser, world, world.admin)
        row = f"#alert-feed li[data-alert-id='{ident}']"
        for page in (officer, other):
            await page.goto(f"{world.base}/#/alerts")
            await page.wait_for_selector(f"{row}[data-state=open]")
            await page.wait_for_selector(".feed .live-dot[data-state=live]")

        async def action_taken(dialog: Dialog) -> None:  # asked for high and critical alerts
            await dialog.accept("evacuated the face")

        officer.once("dialog", action_taken)
        await officer.click(f"{row} button:has-text('Acknowledge')")
        await officer.wait_for_selector(f"{row}[data-state=acknowledged]")
        await other.wait_for_selector(f"{row}[data-state=acknowledged]", timeout=5000)
        assert "acknowledged by" in await other.inner_text(row)
        assert officer_console.errors == []
        assert other_console.errors == []
