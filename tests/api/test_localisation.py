"""Languages through the HTTP API: the page's catalogues as JSON (the same .po files Python
reads), each token's chosen language before the browser's Accept-Language, messages for people
in that language, and the registry's coordinates reaching the digital map; the per-shift
history carries the stored per-sensor metrics its charts draw."""

from __future__ import annotations

import pytest

from application.localisation import LOCALES, messages, page_formats
from store.auth import Role
from tests.api.conftest import Api, make_tenant
from tests.api.test_risk import DAY, write_shift

pytestmark = [pytest.mark.anyio, pytest.mark.services]


async def test_the_page_catalogues_are_the_po_files(api: Api) -> None:
    for locale in LOCALES:
        response = await api.http.get(f"/i18n/{locale}.json")
        assert response.status_code == 200
        body = response.json()
        assert body["messages"] == messages(locale)
        assert body["formats"] == page_formats(locale)
    assert (await api.http.get("/i18n/de.json")).status_code == 422
    keys = {
        locale: set((await api.http.get(f"/i18n/{locale}.json")).json()["messages"])
        for locale in LOCALES
    }
    assert keys["kk"] == keys["ru"] == keys["en"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [("ru-RU,ru;q=0.9,kk;q=0.8", "ru"), ("kk", "kk"), ("en-GB", "en"), ("de", "kk"), (None, "kk")],
)
async def test_the_index_negotiates_the_browser_language(
    api: Api, header: str | None, expected: str
) -> None:
    headers = {"Accept-Language": header} if header else {}
    index = (await api.http.get("/i18n/index.json", headers=headers)).json()
    assert index["locale"] == expected
    assert [entry["code"] for entry in index["locales"]] == list(LOCALES)
    assert index["substances"]["CO"] == "carbon monoxide"
    assert set(index["level_names"]) == set(LOCALES)


async def test_messages_for_people_follow_accept_language(api: Api) -> None:
    # No header: a program, answered in English; a header naming no language served: the default.
    for headers, expected in (({}, "en"), ({"Accept-Language": "de"}, "kk")):
        answer = await api.http.get("/api/v1/me", headers=headers)
        assert answer.headers["content-language"] == expected
    for locale in LOCALES:
        answer = await api.http.get("/api/v1/me", headers={"Accept-Language": locale})
        assert answer.status_code == 401
        assert answer.headers["content-language"] == locale
        assert (
            answer.json()["detail"]
            == messages(locale)["missing bearer token: send `Authorization: Bearer <token>`"]
        )
    scoring = await api.token(Role.SCORING)
    forbidden = await api.http.get(
        "/api/v1/enterprises",
        headers={"Authorization": f"Bearer {scoring}", "Accept-Language": "ru"},
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"].startswith("токену с ролью scoring")


async def test_a_token_keeps_its_language_before_accept_language(api: Api) -> None:
    admin = api.tokens["admin"]
    assert (await api.ok("GET", "/api/v1/me", admin))["locale"] is None
    chosen = await api.ok("PUT", "/api/v1/me/locale", admin, json={"locale": "kk"})
    assert chosen == {"locale": "kk"}
    assert (await api.ok("GET", "/api/v1/me", admin))["locale"] == "kk"
    headers = {"Authorization": f"Bearer {admin}", "Accept-Language": "en"}
    missing = await api.http.get("/api/v1/workplaces/987654/exposure", headers=headers)
    assert missing.status_code == 404
    assert missing.headers["content-language"] == "kk"
    assert missing.json()["detail"] == messages("kk")["no {noun} with id {id}"].format(
        noun=messages("kk")["workplace"], id=987654
    )
    refused = await api.call("PUT", "/api/v1/me/locale", admin, json={"locale": "de"})
    assert refused.status_code == 422
    await api.ok("PUT", "/api/v1/me/locale", admin, json={"locale": None})
    missing = await api.http.get("/api/v1/workplaces/987654/exposure", headers=headers)
    assert missing.headers["content-language"] == "en"


async def test_coordinates_reach_the_map(api: Api) -> None:
    tenant = await make_tenant(api, "ent-geo", "Karaganda")
    admin = api.tokens["admin"]
    path = f"/api/v1/enterprises/{tenant.enterprise['id']}"
    both = await api.ok("PATCH", path, admin, json={"latitude": 49.8, "longitude": 73.1})
    assert (both["latitude"], both["longitude"]) == (49.8, 73.1)
    one = await api.call(
        "POST",
        "/api/v1/enterprises",
        admin,
        json={"code": "half", "name": "Half", "latitude": 43.2},
    )
    assert one.status_code == 422
    off_earth = await api.call("PATCH", path, admin, json={"latitude": 91})
    assert off_earth.status_code == 422
    # Clearing one coordinate would leave half a position: refused, both stay.
    half = await api.call("PATCH", path, admin, json={"latitude": None})
    assert half.status_code == 422
    (found,) = (await api.ok("GET", "/api/v1/map", admin))["enterprises"]
    assert (found["latitude"], found["longitude"]) == (
        49.8,
        (await api.ok("GET", path, admin))["longitude"],
    )


async def test_the_shift_history_carries_the_stored_sensor_metrics(api: Api) -> None:
    tenant = await make_tenant(api, "ent-h", "Almaty")
    await write_shift(api, tenant.sensor["id"], 90.0)
    path = f"/api/v1/workplaces/{tenant.workplace['id']}"
    history = await api.ok(
        "GET",
        f"{path}/exposure/history",
        tenant.officer,
        params={"from": DAY.isoformat(), "to": DAY.isoformat()},
    )
    exposure = await api.ok(
        "GET", f"{path}/exposure", tenant.officer, params={"date": DAY.isoformat()}
    )
    (shift,) = history["shifts"]
    assert shift["sensors"] == exposure["sensors"]
    assert shift["sensors"][0]["metrics"]["lex8h_db"] is not None
