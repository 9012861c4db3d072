"""The dashboard in Kazakh, Russian and English in a real headless Chromium: the browser's
language picks the page's, the switcher changes every visible text and is remembered, the map
shows the enterprises on Kazakhstan's regions, the sign-in page hides the navigation and says
when a token is refused, and nothing is wider than a 390 px phone.

Screenshots of the map, a workplace and the alert feed in each language are kept in
test-artifacts/screenshots/ (README, Dashboards and reports)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, ViewportSize

from application.localisation import LOCALES, messages
from tests.browser.test_dashboard import Console
from tests.live_support import World, live_world
from tests.support import assess_now

pytestmark = [pytest.mark.anyio, pytest.mark.services, pytest.mark.browser]

# The browser's language list as a Russian-speaking user in Kazakhstan has it, per page locale.
BROWSER_LANGUAGES = {"kk": "kk-KZ", "ru": "ru-RU", "en": "en-GB"}
PHONE: ViewportSize = {"width": 390, "height": 844}


async def place_enterprises(world: World) -> int:
    """Give the live world's enterprise a region and coordinates (Karaganda), and add a second,
    unscored one in Almaty; returns the first one's id."""
    headers = {"Authorization": f"Bearer {world.admin}"}
    async with httpx.AsyncClient(base_url=world.base, headers=headers) as http:
        (mine,) = (await http.get("/api/v1/enterprises")).json()["items"]
        patched = await http.patch(
            f"/api/v1/enterprises/{mine['id']}",
            json={"region": "Karaganda", "latitude": 49.8, "longitude": 73.1},
        )
        assert patched.status_code == 200, patched.text
        other = await http.post(
            "/api/v1/enterprises",
            json={
                "code": "alm-1",
                "name": "Almaty Works",
                "region": "Алматы",
                "latitude": 43.24,
                "longitude": 76.95,
                "activity_code": "24.10",
            },
        )
        assert other.status_code == 201, other.text
    return int(mine["id"])


@contextlib.asynccontextmanager
async def mapped_world(
    pg_url: str, mqtt_url: str, schema: str, prefix: str, **api_settings: Any
) -> AsyncIterator[World]:
    """The live world with its enterprise placed, a second one in Almaty and an open alert."""
    async with live_world(pg_url, mqtt_url, schema, prefix, **api_settings) as world:
        await place_enterprises(world)
        await world.alert()
        yield world


async def open_page(
    browser: Browser, world: World, locale: str | None, viewport: ViewportSize
) -> tuple[BrowserContext, Page, Console]:
    context = await browser.new_context(
        viewport=viewport, locale=BROWSER_LANGUAGES.get(locale or "", "en-GB")
    )
    page = await context.new_page()
    console = Console(page)
    await page.goto(world.base + "/")
    await page.wait_for_selector("#sign-in")
    return context, page, console


async def sign_in(page: Page, token: str) -> None:
    await page.fill("#token", token)
    await page.click("#sign-in button[type=submit]")
    await page.wait_for_selector("#nav:not([hidden])")


async def no_horizontal_overflow(page: Page) -> bool:
    width: int = await page.evaluate(
        "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
    )
    return width <= PHONE["width"]


async def test_each_language_in_its_browser_with_screenshots(
    browser: Browser, pg_url: str, mqtt_url: str, schema: str, topic_prefix: str, shots: Path
) -> None:
    async with mapped_world(pg_url, mqtt_url, schema, topic_prefix) as world:
        await assess_now(pg_url, schema)
        seen: dict[str, str] = {}
        for locale in LOCALES:
            texts = messages(locale)
            context, page, console = await open_page(
                browser, world, locale, {"width": 1300, "height": 1000}
            )
            assert await page.get_attribute("html", "lang") == locale
            assert await page.inner_text("#sign-in h1") == texts["Sign in"]
            await sign_in(page, world.officer)
            await page.wait_for_selector(".kz-map a.point")
            assert await page.inner_text("nav a[href='#/']") == texts["Map"]
            assert await page.inner_text("h1") == texts["Digital map of enterprises"]
            seen[locale] = await page.inner_text("header.top")
            # One point per enterprise with coordinates that the token sees: its own only.
            assert await page.locator(".kz-map a.point").count() == 1
            await page.screenshot(path=str(shots / f"map-{locale}.png"), full_page=True)

            await page.click(".kz-map a.point")
            await page.wait_for_selector("#enterprise-name")
            await page.click("a[href^='#/workplace/']")
            await page.wait_for_selector("#charts figure.chart")
            await page.wait_for_selector("#history-table tbody tr")
            await page.wait_for_selector("#alert-feed li[data-state=open]")
            labels = await page.locator("#charts figcaption b").all_inner_texts()
            assert any(label.endswith(texts["dB(A)"]) for label in labels), labels
            assert texts["Past shifts"] in await page.inner_text("main")
            await page.screenshot(path=str(shots / f"workplace-{locale}.png"), full_page=True)

            await page.click("nav a[href='#/alerts']")
            # The workplace page has an alert feed too: wait for the alerts page's own.
            await page.wait_for_selector(f"h1:text-is('{texts['Alerts']}')")
            await page.wait_for_selector("#alert-feed li button[data-action=acknowledge]")
            assert texts["Acknowledge"] in await page.inner_text("#alert-feed")
            await page.screenshot(path=str(shots / f"alerts-{locale}.png"), full_page=True)
            assert console.errors == []
            await context.close()
        # The header reads differently in each language.
        assert len(set(seen.values())) == len(LOCALES)


async def test_the_switcher_changes_the_text_and_is_remembered(
    browser: Browser, pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    async with live_world(pg_url, mqtt_url, schema, topic_prefix) as world:
        context, page, console = await open_page(
            browser, world, "en", {"width": 1300, "height": 900}
        )
        await sign_in(page, world.officer)
        await page.wait_for_selector(".kz-map")
        assert await page.inner_text("nav a[href='#/alerts']") == messages("en")["Alerts"]
        for locale in ("ru", "kk"):
            await page.select_option("#lang", locale)
            await page.wait_for_selector(f"html[lang={locale}]")
            await page.wait_for_selector(
                f"h1:text-is('{messages(locale)['Digital map of enterprises']}')"
            )
            assert await page.inner_text("nav a[href='#/alerts']") == messages(locale)["Alerts"]
            assert await page.inner_text("#sign-out") == messages(locale)["Sign out"]
        # Stored on the token: the API answers the holder in Kazakh whatever the browser says.
        headers = {"Authorization": f"Bearer {world.officer}", "Accept-Language": "en"}
        async with httpx.AsyncClient(base_url=world.base, headers=headers) as http:
            assert (await http.get("/api/v1/me")).json()["locale"] == "kk"
            missing = await http.get("/api/v1/workplaces/999999/exposure")
            assert missing.headers["content-language"] == "kk"
        await page.reload()
        await page.wait_for_selector("html[lang=kk]")
        assert console.errors == []
        await context.close()


async def test_sign_in_page_hides_the_navigation_and_reports_a_refused_token(
    browser: Browser, pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    async with live_world(pg_url, mqtt_url, schema, topic_prefix) as world:
        context, page, _ = await open_page(browser, world, "ru", PHONE)
        assert not await page.is_visible("#nav")
        assert not await page.is_visible("#sign-out")
        assert await page.is_visible("#lang")
        assert await no_horizontal_overflow(page)
        # At "/" (no hash), where a refused token used to leave no message.
        await page.fill("#token", "qg_not-a-token")
        await page.click("#sign-in button[type=submit]")
        await page.wait_for_selector("#sign-in-error:not(:empty)")
        assert await page.inner_text("#sign-in-error") == messages("ru")["That token was refused."]
        assert not await page.is_visible("#nav")
        await context.close()


async def test_nothing_is_wider_than_a_390_px_phone(
    browser: Browser, pg_url: str, mqtt_url: str, schema: str, topic_prefix: str, shots: Path
) -> None:
    async with mapped_world(pg_url, mqtt_url, schema, topic_prefix) as world:
        context, page, console = await open_page(browser, world, "kk", PHONE)
        await sign_in(page, world.admin)
        await page.wait_for_selector(".kz-map a.point")
        assert await no_horizontal_overflow(page)
        # The admin sees both enterprises, each matched to its region's outline by name
        # ("Karaganda", "Алматы"), shown in Kazakh.
        assert await page.locator(".kz-map a.point").count() == 2
        table = await page.inner_text("#enterprises")
        assert messages("kk")["Karaganda Region"] in table
        assert messages("kk")["Almaty"] in table
        await page.select_option("#filter-region", "KZ.AC")
        await page.wait_for_selector("#enterprises tbody tr >> nth=0")
        assert await page.locator("#enterprises tbody tr").count() == 1
        assert await page.locator(".kz-map a.point").count() == 1
        await page.screenshot(path=str(shots / "phone-map-kk.png"), full_page=True)
        await page.goto(f"{world.base}/#/workplace/{world.workplace_id}")
        await page.wait_for_selector("#charts figure.chart")
        await page.wait_for_selector("#history-form")
        assert await no_horizontal_overflow(page)
        await page.screenshot(path=str(shots / "phone-workplace-kk.png"), full_page=True)
        await page.click("nav a[href='#/alerts']")
        await page.wait_for_selector("#alert-feed li")
        assert await no_horizontal_overflow(page)
        assert console.errors == []
        await context.close()


def png_tile() -> bytes:
    """A 256 × 256 PNG of one colour: what a tile server would answer."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 220, 240)).save(out, format="PNG")
    return out.getvalue()


async def test_tiles_when_configured(
    browser: Browser, pg_url: str, mqtt_url: str, schema: str, topic_prefix: str, shots: Path
) -> None:
    """With QORGAU_MAP_TILES_URL the map draws the tiles under the regions (the page's policy
    lets it load them from that server only); without it, none is asked for (the other tests)."""
    tiles = "http://tiles.test/{z}/{x}/{y}.png"
    async with mapped_world(
        pg_url,
        mqtt_url,
        schema,
        topic_prefix,
        map_tiles_url=tiles,
        map_tiles_attribution="© test tiles",
    ) as world:
        context, page, console = await open_page(
            browser, world, "en", {"width": 1300, "height": 900}
        )
        asked: list[str] = []
        body = png_tile()

        async def serve_tile(route: Route) -> None:
            asked.append(route.request.url)
            await route.fulfill(status=200, content_type="image/png", body=body)

        await context.route("http://tiles.test/**", serve_tile)
        await sign_in(page, world.officer)
        await page.wait_for_selector(".kz-map.with-tiles image.tile")
        shown = await page.locator(".kz-map image.tile").count()
        assert shown > 0
        await page.wait_for_selector(".legend .attribution")
        await page.screenshot(path=str(shots / "map-tiles-en.png"))
        assert len(set(asked)) == shown
        assert all(url.startswith("http://tiles.test/5/") for url in asked)
        assert console.errors == []
        await context.close()
