"""Webhooks through the API: a URL that cannot be delivered to is refused when the webhook is
created, and the list shows what became of each webhook's deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from store.alerts import record_webhook_outcome
from store.connection import connect_async
from tests.api.conftest import Api

pytestmark = [pytest.mark.anyio, pytest.mark.services]

HOOKS = "/api/v1/alerts/webhooks"
SECRET = "a-long-shared-webhook-secret"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://☕.example/hook", "IDNA"),
        ("http://xn--a.example/hook", "IDNA"),
        ("http://-bad.example/hook", "host name"),
        ("http://receiver:99999/hook", "port"),
        ("ftp://receiver/hook", "http"),
    ],
)
async def test_an_undeliverable_url_is_a_clear_422(api: Api, url: str, says: str) -> None:
    response = await api.call(
        "POST", HOOKS, api.tokens["admin"], json={"url": url, "secret": SECRET}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("invalid request: url: ")
    assert says in response.json()["detail"]
    assert await api.ok("GET", HOOKS, api.tokens["admin"]) == []


async def test_the_list_shows_the_last_error_and_the_last_delivery(api: Api) -> None:
    admin = api.tokens["admin"]
    created = await api.ok(
        "POST", HOOKS, admin, json={"url": "https://exämple.kz/hook", "secret": SECRET}
    )
    assert created["url"] == "https://exämple.kz/hook"
    (fresh,) = await api.ok("GET", HOOKS, admin)
    assert (fresh["last_error"], fresh["last_error_at"], fresh["last_delivered_at"]) == (
        None,
        None,
        None,
    )

    t0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    conn = await connect_async(api.pg_url, api.schema, autocommit=True)
    async with conn:
        await record_webhook_outcome(conn, created["id"], t0, None)
        await record_webhook_outcome(
            conn, created["id"], t0 + timedelta(minutes=5), "gave up after 8 attempts: HTTP 503"
        )
        # Deliveries in flight end in any order: an older outcome does not hide a newer one.
        await record_webhook_outcome(conn, created["id"], t0 - timedelta(minutes=1), "HTTP 500")
        await record_webhook_outcome(conn, created["id"], t0 - timedelta(minutes=2), None)
    (hook,) = await api.ok("GET", HOOKS, admin)
    assert hook["last_error"] == "gave up after 8 attempts: HTTP 503"
    assert datetime.fromisoformat(hook["last_error_at"]) == t0 + timedelta(minutes=5)
    assert datetime.fromisoformat(hook["last_delivered_at"]) == t0
