"""Webhook signatures and delivery with retries (no network: an httpx mock transport)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from ingest.alerting.metrics import AlertMetrics
from ingest.alerting.webhooks import SIGNATURE_HEADER, WebhookDispatcher, signature, verify
from ingest.alerting.wire import AlertMessage
from store.alerts import Webhook

pytestmark = pytest.mark.anyio


def test_signature_verifies_and_rejects_tampering_and_replays() -> None:
    body = b'{"alert_id": "x"}'
    header = signature("s3cret-s3cret-s3cret", 1_800_000_000, body)
    assert header.startswith("t=1800000000,v1=")
    assert verify("s3cret-s3cret-s3cret", header, body, now=1_800_000_010)
    assert not verify("s3cret-s3cret-s3cret", header, body + b" ", now=1_800_000_010)
    assert not verify("other-secret-other", header, body, now=1_800_000_010)
    assert not verify("s3cret-s3cret-s3cret", header, body, now=1_800_009_000)
    assert not verify("s3cret-s3cret-s3cret", "garbage", body, now=1_800_000_010)


def _message(kind: str = "ceiling", severity: str = "critical") -> AlertMessage:
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    return AlertMessage(
        alert_id="6f0b7c52-3c1e-4d7a-9a55-2b4f1f0d6a11", transition="opened", state="open",
        kind=kind, severity=severity, enterprise="acme", device="d", message="m", at=now,  # type: ignore[arg-type]
        opened_at=now, sent_at=now,
    )  # fmt: skip


async def test_delivery_retries_until_the_receiver_accepts_and_filters_by_preference() -> None:
    calls: list[httpx.Request] = []

    def respond(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503 if len(calls) < 3 else 200)

    hooks = [
        Webhook(1, "acme", "http://receiver/hook", "s3cret-s3cret-s3cret", "high", ("ceiling",)),
        Webhook(2, "other", "http://receiver/other", "x" * 16, "info", None),
    ]

    async def load() -> list[Webhook]:
        return hooks

    metrics = AlertMetrics()
    dispatcher = WebhookDispatcher(
        load, metrics, retry_base_s=0.01, refresh_s=0.05, transport=httpx.MockTransport(respond)
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(dispatcher.run(stop))
    while not dispatcher.hooks:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    dispatcher.submit(_message())
    dispatcher.submit(_message(kind="trend", severity="warning"))  # not wanted by hook 1
    for _ in range(500):
        if metrics.webhooks.labels("delivered")._value.get() >= 1:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await runner
    assert len(calls) == 3
    assert {str(c.url) for c in calls} == {"http://receiver/hook"}
    last = calls[-1]
    assert verify(
        "s3cret-s3cret-s3cret", last.headers[SIGNATURE_HEADER], last.content, now=last_time(last)
    )


def last_time(request: httpx.Request) -> float:
    return float(request.headers[SIGNATURE_HEADER].split(",")[0][2:])
