"""What a hostile or careless client can make the API do: bodies over the size limit (declared or
chunked) answered 413 before they are parsed, bounded 422 answers, conflicts that tell nothing
of another tenant, safe headers on every answer, and /docs that work without internet."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Literal

import httpx
import pytest
import uvicorn

from api.app import DOCS_ASSETS, create_app
from api.settings import ApiSettings
from dashboards.reports import render as render_report
from qorgau.demo import EmbeddedServer
from qorgau.localservices import free_port
from store.auth import Role
from tests.api.conftest import Api, in_process, make_tenant
from tests.support import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.services]

SMALL_LIMIT = 4096


@pytest.fixture
async def small(pg_url: str, schema: str) -> AsyncIterator[Api]:
    """An API whose body limit is a few KiB, so that tests need not send megabytes."""
    settings = ApiSettings(
        database_url=pg_url,
        database_schema=schema,
        api_alert_stream=False,
        api_live_stream=False,
        api_max_body_bytes=SMALL_LIMIT,
        api_max_validation_errors=7,
    )
    async with in_process(settings) as (app, http):
        client = Api(app, http, pg_url, schema)
        client.tokens["admin"] = await client.token(Role.ADMIN)
        yield client


def test_the_default_body_limit_is_one_mebibyte() -> None:
    assert ApiSettings().api_max_body_bytes == 1024 * 1024


def _enterprise(code: str, size: int = 0) -> bytes:
    """An enterprise to create, as JSON padded with trailing blanks to ``size`` bytes."""
    return json.dumps({"code": code, "name": f"{code} LLP"}).encode().ljust(size)


async def _post(api: Api, path: str, content: bytes | AsyncIterator[bytes]) -> httpx.Response:
    """POST raw bytes as the admin (the body exactly as given, no JSON encoding by httpx)."""
    headers = {
        "Authorization": f"Bearer {api.tokens['admin']}",
        "Content-Type": "application/json",
    }
    return await api.http.post(path, content=content, headers=headers)


async def _enterprise_codes(api: Api) -> set[str]:
    listed = await api.ok("GET", "/api/v1/enterprises", api.tokens["admin"])
    return {e["code"] for e in listed["items"]}


async def test_a_declared_body_over_the_limit_is_refused_unparsed(small: Api) -> None:
    body = _enterprise("too-big", size=SMALL_LIMIT + 1)
    assert len(body) > SMALL_LIMIT
    response = await _post(small, "/api/v1/enterprises", body)
    assert response.status_code == 413
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert str(SMALL_LIMIT) in response.json()["detail"]
    assert "QORGAU_API_MAX_BODY_BYTES" in response.json()["detail"]
    assert "too-big" not in await _enterprise_codes(small)

    fits = _enterprise("fits", size=SMALL_LIMIT)
    assert len(fits) <= SMALL_LIMIT
    created = await _post(small, "/api/v1/enterprises", fits)
    assert created.status_code == 201, created.text


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_a_chunked_body_over_the_limit_is_refused_too(small: Api) -> None:
    # An async iterator has no length: httpx sends it with Transfer-Encoding: chunked.
    big = _enterprise("chunked-big", size=3 * SMALL_LIMIT)
    response = await _post(small, "/api/v1/enterprises", _chunks(big, 1000))
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert "chunked-big" not in await _enterprise_codes(small)

    # The same path under the limit: the body is read whole and reaches the route.
    fine = _enterprise("chunked-fine", size=SMALL_LIMIT // 2)
    created = await _post(small, "/api/v1/enterprises", _chunks(fine, 700))
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "chunked-fine LLP"


async def test_many_bad_fields_give_a_small_422(small: Api) -> None:
    long_key = "k" * 1000
    unknown = {f"x{n}": n for n in range(150)}
    body = {"code": "ok-code", "name": "N", long_key: 1, **unknown}
    encoded = json.dumps(body).encode()
    assert len(encoded) <= SMALL_LIMIT
    response = await _post(small, "/api/v1/enterprises", encoded)
    assert response.status_code == 422
    answer = response.json()
    assert answer["error_count"] == 1 + len(unknown)
    assert len(answer["errors"]) == 7  # api_max_validation_errors of the fixture
    assert f"and {answer['error_count'] - 5} more" in answer["detail"]
    # The input is never mirrored: the long key appears only clipped, values not at all.
    assert long_key not in response.text
    assert len(response.content) < 4 * 1024
    for error in answer["errors"]:
        assert set(error) == {"loc", "msg", "type"}


async def test_a_taken_device_code_tells_nothing_of_its_owner(api: Api) -> None:
    a = await make_tenant(api, "ent-a", "Almaty")
    b = await make_tenant(api, "ent-b", "Karaganda")
    taken_by_a = a.device["code"]

    foreign = await api.call(
        "POST",
        f"/api/v1/enterprises/{b.enterprise['id']}/devices",
        b.officer,
        json={"code": taken_by_a},
    )
    assert foreign.status_code == 409
    detail = foreign.json()["detail"]
    for leak in (taken_by_a, "ent-a", "Key (", "=(", "constraint", "devices_code"):
        assert leak not in detail, (leak, detail)
    assert "a device with this code already exists" in detail

    # B's own taken code gets the very same answer: a 409 does not say whose the code is.
    own = await api.call(
        "POST",
        f"/api/v1/enterprises/{b.enterprise['id']}/devices",
        b.officer,
        json={"code": b.device["code"]},
    )
    assert own.status_code == 409
    assert own.json() == foreign.json()

    # A's device seen from B stays a 404 like a missing one.
    probe = await api.call(
        "PATCH", f"/api/v1/devices/{a.device['id']}", b.officer, json={"name": "mine now"}
    )
    missing = await api.call("PATCH", "/api/v1/devices/999999", b.officer, json={"name": "x"})
    assert probe.status_code == missing.status_code == 404
    assert probe.json()["detail"] == missing.json()["detail"].replace("999999", str(a.device["id"]))


async def test_other_taken_codes_say_which_kind_without_values(api: Api) -> None:
    a = await make_tenant(api, "ent-a", "Almaty")
    eid = a.enterprise["id"]
    cases = {
        "/api/v1/enterprises": {"code": "ent-a", "name": "again"},
        f"/api/v1/enterprises/{eid}/sites": {"code": a.site["code"], "name": "again"},
        f"/api/v1/enterprises/{eid}/workplaces": {"code": a.workplace["code"], "name": "again"},
        f"/api/v1/devices/{a.device['id']}/sensors": {
            "code": a.sensor["code"],
            "quantity": "noise_laeq",
            "unit": "dB(A)",
        },
    }
    for path, body in cases.items():
        response = await api.call("POST", path, api.tokens["admin"], json=body)
        assert response.status_code == 409, (path, response.text)
        detail = response.json()["detail"]
        assert body["code"] not in detail
        assert "Key (" not in detail
        noun = re.sub(r"e?s$", "", path.rsplit("/", 1)[-1])
        assert noun in detail, (noun, detail)


async def test_answers_carry_nosniff_and_tenant_data_is_not_cached(api: Api) -> None:
    admin = api.tokens["admin"]
    for response in (
        await api.call("GET", "/api/v1/enterprises", admin),
        await api.call("GET", "/api/v1/me", admin),
        await api.call("GET", "/api/v1/enterprises", None),  # 401
        await api.call("GET", "/api/v1/enterprises/999999", admin),  # 404
        await api.call("POST", "/api/v1/enterprises", admin, json={"code": ""}),  # 422
    ):
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert response.headers["cache-control"] == "no-store", response.url
    health = await api.http.get("/health")
    assert health.headers["x-content-type-options"] == "nosniff"
    # The dashboard's page keeps the caching it chose itself.
    page = await api.http.get("/")
    assert page.headers["cache-control"] == "no-cache"


async def test_docs_load_nothing_from_outside(api: Api) -> None:
    for page in ("/docs", "/redoc"):
        html = (await api.http.get(page)).text
        sources = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
        sources += re.findall(r"""url:\s*["']([^"']+)["']""", html)
        assert sources, page
        for source in sources:
            assert not re.match(r"^(https?:)?//", source), (page, source)
        for asset in (s for s in sources if s.startswith(DOCS_ASSETS)):
            served = await api.http.get(asset)
            assert served.status_code == 200, asset
            assert len(served.content) > 1000, asset
    swagger = (await api.http.get("/docs")).text
    assert f"{DOCS_ASSETS}/swagger-ui-bundle.js" in swagger
    assert "/openapi.json" in swagger


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_a_real_server_refuses_big_bodies_and_keeps_serving(
    pg_url: str, schema: str, http: Literal["httptools", "h11"]
) -> None:
    """Through uvicorn (both of its HTTP parsers) and a socket: the limit holds for both
    framings, the client gets the 413 and not a reset connection, and the server keeps
    answering."""
    app = create_app(
        ApiSettings(
            database_url=pg_url,
            database_schema=schema,
            api_alert_stream=False,
            api_live_stream=False,
            api_max_body_bytes=SMALL_LIMIT,
        ),
        render_report=render_report,
    )
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, http=http)
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, what="API start")
        admin = Api(app, httpx.AsyncClient(), pg_url, schema)
        token = await admin.token(Role.ADMIN)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=1)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
            big = _enterprise("wire-big", size=3 * SMALL_LIMIT)
            declared = await client.post("/api/v1/enterprises", content=big, headers=headers)
            chunked = await client.post(
                "/api/v1/enterprises", content=_chunks(big, 512), headers=headers
            )
            assert (declared.status_code, chunked.status_code) == (413, 413)
            assert chunked.request.headers["transfer-encoding"] == "chunked"
            fine = await client.post(
                "/api/v1/enterprises",
                content=_chunks(_enterprise("wire-fine", size=SMALL_LIMIT), 512),
                headers=headers,
            )
            assert fine.status_code == 201, fine.text
            assert (await client.get("/health")).status_code == 200
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
