"""Webhook URLs, signatures and delivery with retries and recorded outcomes (no network: an
httpx mock transport)."""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import UTC, datetime

import httpx
import pytest

from ingest.alerting.metrics import AlertMetrics
from ingest.alerting.webhooks import (
    SIGNATURE_HEADER,
    WebhookDispatcher,
    signature,
    verify,
)
from store.alerts import Webhook
from vocabulary.protocol.alerts import AlertMessage
from vocabulary.webhook_url import check_webhook_url

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
        alert_id="6f0b7c52-3c1e-4d7a-9a55-2b4f1f0d6a11",
        transition="opened",
        state="open",
        kind=kind,
        severity=severity,
        enterprise="acme",
        device="d",
        message="m",
        at=now,
        opened_at=now,
        sent_at=now,
    )


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


@pytest.mark.parametrize(
    "url",
    [
        "https://receiver.example.org/qorgau-hook",
        "http://receiver:8080/hook?x=1",
        "http://exämple.kz/hook",  # IDNA: sent as xn--exmple-cua.kz
        "http://xn--exmple-cua.kz/hook",
        "http://10.0.0.5:9000/",
        "http://[::1]:8080/hook",
        "http://hook_receiver/",  # a container service name
        "http://user:pass@receiver/hook",
    ],
)
def test_deliverable_urls_pass(url: str) -> None:
    assert check_webhook_url(url) == url
    assert httpx.URL(url).host  # what delivery will parse


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://receiver/hook", "http:// or https://"),
        ("mailto:officer@example.org", "http:// or https://"),
        ("http:///hook", "no host"),
        ("http://☕.example/hook", "IDNA"),
        ("http://xn--a.example/hook", "IDNA"),
        ("http://xn--zz-.example/hook", "not valid"),
        ("http://-bad.example/hook", "not valid"),
        ("http://a..b/hook", "not valid"),
        ("http://%zz.example/", "not valid"),
        ("http://receiver:0/hook", "port"),
        ("http://receiver:99999/hook", "port"),
        ("http://" + "a" * 64 + ".example/", "not valid"),
    ],
)
def test_undeliverable_urls_are_refused_with_the_reason(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        check_webhook_url(url)


class _Outcomes:
    def __init__(self) -> None:
        self.recorded: list[tuple[int, str | None]] = []

    async def __call__(self, hook_id: int, at: datetime, error: str | None) -> None:
        assert at.tzinfo is not None
        self.recorded.append((hook_id, error))


async def _dispatch(
    hooks: list[Webhook],
    transport: httpx.AsyncBaseTransport,
    messages: int,
    outcomes: _Outcomes,
    *,
    max_attempts: int = 2,
) -> AlertMetrics:
    """Run a dispatcher over ``hooks`` until every delivery of ``messages`` messages has an
    outcome, with unretrieved task exceptions turned into test failures."""
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))

    async def load() -> list[Webhook]:
        return hooks

    metrics = AlertMetrics()
    dispatcher = WebhookDispatcher(
        load,
        metrics,
        record=outcomes,
        retry_base_s=0.01,
        refresh_s=0.05,
        max_attempts=max_attempts,
        transport=transport,
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(dispatcher.run(stop))
    try:
        while not dispatcher.hooks:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        for _ in range(messages):
            dispatcher.submit(_message())
        for _ in range(1000):
            if len(outcomes.recorded) >= messages * len(hooks):
                break
            await asyncio.sleep(0.01)
        stop.set()
        await runner
        gc.collect()  # a task exception nobody retrieved is reported when the task is freed
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert unretrieved == []
    return metrics


async def test_an_invalid_stored_url_is_recorded_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[httpx.Request] = []
    # Stored before URLs were checked at creation: httpx itself cannot even encode its host.
    hook = Webhook(7, "acme", "http://xn--a.example/hook", "s3cret-s3cret-s3cret", "info", None)
    outcomes = _Outcomes()

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    with caplog.at_level(logging.DEBUG, logger="ingest.alerting.webhooks"):
        metrics = await _dispatch([hook], httpx.MockTransport(answer), 3, outcomes)
    assert calls == []
    assert len(outcomes.recorded) == 3
    assert all(hook_id == 7 and "invalid URL" in (err or "") for hook_id, err in outcomes.recorded)
    assert metrics.webhooks.labels("failed")._value.get() == 3
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "invalid URL" in warnings[0].getMessage()


async def test_a_library_error_of_no_known_kind_is_an_outcome_not_a_lost_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def explode(request: httpx.Request) -> httpx.Response:
        raise UnicodeError("label too long")  # what idna raises from deep inside a request

    hook = Webhook(3, None, "http://receiver/hook", "s3cret-s3cret-s3cret", "info", None)
    outcomes = _Outcomes()
    with caplog.at_level(logging.WARNING, logger="ingest.alerting.webhooks"):
        await _dispatch([hook], httpx.MockTransport(explode), 1, outcomes)
    assert outcomes.recorded == [(3, "unexpected error: UnicodeError: label too long")]
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.exc_info is not None, "the traceback of an error of no known kind"


async def test_refusals_give_up_and_successes_are_recorded() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response({"/gone": 404, "/down": 503}.get(request.url.path, 204))

    hooks = [
        Webhook(1, None, "http://receiver/gone", "s3cret-s3cret-s3cret", "info", None),
        Webhook(2, None, "http://receiver/down", "s3cret-s3cret-s3cret", "info", None),
        Webhook(3, None, "http://receiver/ok", "s3cret-s3cret-s3cret", "info", None),
    ]
    outcomes = _Outcomes()
    metrics = await _dispatch(hooks, httpx.MockTransport(respond), 1, outcomes, max_attempts=3)
    assert dict(outcomes.recorded) == {
        1: "refused by the receiver: HTTP 404",
        2: "gave up after 3 attempts: HTTP 503",
        3: None,
    }
    assert metrics.webhooks.labels("retried")._value.get() == 2


class _BrokenStore(_Outcomes):
    async def __call__(self, hook_id: int, at: datetime, error: str | None) -> None:
        await super().__call__(hook_id, at, error)
        raise OSError("the database is away")


async def test_a_store_outage_is_one_warning_not_one_per_delivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = Webhook(5, None, "http://receiver/ok", "s3cret-s3cret-s3cret", "info", None)
    outcomes = _BrokenStore()
    with caplog.at_level(logging.DEBUG, logger="ingest.alerting.webhooks"):
        metrics = await _dispatch(
            [hook], httpx.MockTransport(lambda r: httpx.Response(200)), 4, outcomes
        )
    assert outcomes.recorded == [(5, None)] * 4
    assert metrics.webhooks.labels("delivered")._value.get() == 4
    unrecorded = [r for r in caplog.records if "could not record" in r.getMessage()]
    assert [r.levelno for r in unrecorded].count(logging.WARNING) == 1
    assert len(unrecorded) == 4
