"""Webhooks: each alert transition POSTed as JSON, signed with HMAC-SHA256, retried with capped
backoff.

Signature: header ``X-Qorgau-Signature: t=<unix seconds>,v1=<hex>`` where
``hex = HMAC-SHA256(secret, "<t>." + body)``. A receiver recomputes it over the raw body, compares
in constant time and refuses a ``t`` far from its clock (replays); :func:`verify` does exactly
that. The alert id and transition identify a delivery, so a receiver can drop the duplicates a
retry after a lost response produces.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable

import httpx

from ingest.alerting.metrics import AlertMetrics
from ingest.alerting.wire import AlertMessage, wanted
from qorgau.backoff import backoff_delay_s
from store.alerts import Webhook

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Qorgau-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance_s: float = 300) -> bool:
    """Check a ``X-Qorgau-Signature`` header against the raw body (what a receiver does)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


class WebhookDispatcher:
    """Delivers messages to the matching webhooks; never blocks the caller."""

    def __init__(
        self,
        load: Callable[[], Awaitable[list[Webhook]]],
        metrics: AlertMetrics,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 8,
        retry_max_s: float = 60.0,
        refresh_s: float = 10.0,
        max_concurrent: int = 32,
        retry_base_s: float = 0.5,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._load = load
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.retry_max_s = retry_max_s
        self.refresh_s = refresh_s
        self.retry_base_s = retry_base_s
        self.clock = clock
        self.transport = transport
        self.hooks: list[Webhook] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(max_concurrent)
        self._client: httpx.AsyncClient | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the webhook list fresh until ``stop``; then finish deliveries in flight briefly."""
        async with httpx.AsyncClient(timeout=self.timeout_s, transport=self.transport) as client:
            self._client = client
            try:
                while not stop.is_set():
                    try:
                        self.hooks = await self._load()
                    except Exception as exc:  # keep the last list; the database may be back soon
                        log.warning("could not reload webhooks: %s", exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.refresh_s)
                if self._tasks:
                    await asyncio.wait(set(self._tasks), timeout=5.0)
            finally:
                for task in self._tasks:
                    task.cancel()
                self._client = None

    def submit(self, message: AlertMessage) -> None:
        for hook in self.hooks:
            if hook.enterprise is not None and hook.enterprise != message.enterprise:
                continue
            if not wanted(message, hook.min_severity, hook.kinds):
                continue
            task = asyncio.create_task(self._deliver(hook, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, hook: Webhook, message: AlertMessage) -> None:
        body = message.payload()
        for attempt in range(1, self.max_attempts + 1):
            client = self._client
            if client is None:
                return
            stamp = int(self.clock())
            try:
                async with self._limit:
                    response = await client.post(
                        hook.url,
                        content=body,
                        headers={
                            "Content-Type": "application/json",
                            SIGNATURE_HEADER: signature(hook.secret, stamp, body),
                            "X-Qorgau-Alert": f"{message.alert_id}:{message.transition}",
                        },
                    )
                if response.status_code < 300:
                    self.metrics.webhooks.labels("delivered").inc()
                    return
                problem = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    self.metrics.webhooks.labels("failed").inc()
                    log.warning(
                        "webhook %s refused alert %s: %s", hook.id, message.alert_id, problem
                    )
                    return
            except httpx.HTTPError as exc:
                problem = str(exc) or type(exc).__name__
            if attempt == self.max_attempts:
                break
            self.metrics.webhooks.labels("retried").inc()
            delay = backoff_delay_s(attempt, base_s=self.retry_base_s, cap_s=self.retry_max_s)
            log.info("webhook %s: %s; retrying in %.1f s", hook.id, problem, delay)
            await asyncio.sleep(delay)
        self.metrics.webhooks.labels("failed").inc()
        log.warning(
            "webhook %s gave up on alert %s after %d attempts",
            hook.id,
            message.alert_id,
            self.max_attempts,
        )
