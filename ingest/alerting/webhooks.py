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
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx

from ingest.alerting.errors import DB_ERRORS, HTTP_LIBRARY_ERRORS
from ingest.alerting.metrics import AlertMetrics
from ingest.alerting.notifications.channels import (
    SIGNATURE_HEADER,
    DeliveryError,
    post_signed,
    signature,
)
from store.alerts import Webhook
from vocabulary.backoff import backoff_delay_s
from vocabulary.protocol.alerts import AlertMessage, wanted
from vocabulary.webhook_url import check_webhook_url

log = logging.getLogger(__name__)

__all__ = ["SIGNATURE_HEADER", "WebhookDispatcher", "signature", "verify"]

# Longest error text kept on a webhook (an HTTP library's message can quote a whole URL).
_ERROR_CHARS = 500

#: Records the outcome of one delivery on the webhook: its id, when, and the error (None:
#: delivered). ``store.alerts.record_webhook_outcome`` on a connection.
OutcomeRecorder = Callable[[int, datetime, str | None], Awaitable[None]]


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
    """Delivers messages to the matching webhooks; never blocks the caller.

    Each delivery ends in exactly one outcome: delivered, or failed with a reason (an invalid
    URL, a refusal by the receiver, giving up after ``max_attempts``). A failure is counted,
    recorded on the webhook through ``record`` and logged as a warning once while it repeats
    (the same reason for the same webhook again is logged at debug level); a delivery task
    never ends in an exception that nobody retrieves.
    """

    def __init__(
        self,
        load: Callable[[], Awaitable[list[Webhook]]],
        metrics: AlertMetrics,
        *,
        record: OutcomeRecorder | None = None,
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
        self._record = record
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
        # The reason last logged as a warning per webhook, so that a broken receiver does not
        # log one warning per alert.
        self._warned: dict[int, str] = {}
        self._record_failing = False

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the webhook list fresh until ``stop``; then finish deliveries in flight briefly."""
        async with httpx.AsyncClient(timeout=self.timeout_s, transport=self.transport) as client:
            self._client = client
            try:
                while not stop.is_set():
                    try:
                        self.hooks = await self._load()
                    except DB_ERRORS as exc:  # keep the last list; the database may be back soon
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
            task = asyncio.create_task(self._deliver(hook, message), name=f"webhook-{hook.id}")
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        """A delivery task that failed of an error ``_deliver`` does not know (a bug) is
        logged with its traceback here, not lost until the task is freed."""
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        self.metrics.webhooks.labels("failed").inc()
        log.error("%s: delivery failed", task.get_name(), exc_info=task.exception())

    async def _deliver(self, hook: Webhook, message: AlertMessage) -> None:
        """One delivery with its outcome counted, logged and recorded; never raises (but for
        cancellation at shutdown)."""
        unexpected: BaseException | None = None
        try:
            problem = await self._attempts(hook, message)
        except HTTP_LIBRARY_ERRORS as exc:  # of no known kind: still one outcome, not a lost task
            unexpected = exc
            problem = f"unexpected error: {type(exc).__name__}: {exc}"
        if problem is None:
            self.metrics.webhooks.labels("delivered").inc()
            self._warned.pop(hook.id, None)
        else:
            self.metrics.webhooks.labels("failed").inc()
            problem = problem.replace("\x00", "")[:_ERROR_CHARS]
            if self._warned.get(hook.id) != problem:
                self._warned[hook.id] = problem
                log.warning(
                    "webhook %s: alert %s not delivered: %s (recorded on the webhook; the same "
                    "error again is logged at debug level)",
                    hook.id,
                    message.alert_id,
                    problem,
                    exc_info=unexpected,  # the traceback of an error of no known kind
                )
            else:
                log.debug(
                    "webhook %s: alert %s not delivered: %s", hook.id, message.alert_id, problem
                )
        await self._note(hook, problem)

    async def _note(self, hook: Webhook, problem: str | None) -> None:
        if self._record is None:
            return
        at = datetime.fromtimestamp(self.clock(), UTC)
        try:
            await self._record(hook.id, at, problem)
        except DB_ERRORS as exc:  # the database may be away; the log and the metric still tell
            # One warning per outage, not one per delivery.
            level = logging.DEBUG if self._record_failing else logging.WARNING
            self._record_failing = True
            log.log(level, "webhook %s: could not record the delivery outcome: %s", hook.id, exc)
        else:
            self._record_failing = False

    async def _attempts(self, hook: Webhook, message: AlertMessage) -> str | None:
        """Deliver with retries; None when delivered, else why not."""
        try:
            check_webhook_url(hook.url)
        except ValueError as exc:  # stored before URLs were checked at creation
            return f"invalid URL: {exc}"
        body = message.payload()
        problem = "not attempted: the dispatcher is stopping"
        for attempt in range(1, self.max_attempts + 1):
            client = self._client
            if client is None:
                return problem
            try:
                async with self._limit:
                    await post_signed(
                        client,
                        hook.url,
                        hook.secret,
                        body,
                        key=f"{message.alert_id}:{message.transition}",
                        clock=self.clock,
                        detail=False,
                    )
                return None
            except DeliveryError as exc:
                problem = str(exc)
                if exc.permanent:
                    return f"refused by the receiver: {problem}"
            if attempt == self.max_attempts:
                break
            self.metrics.webhooks.labels("retried").inc()
            delay = backoff_delay_s(attempt, base_s=self.retry_base_s, cap_s=self.retry_max_s)
            log.debug("webhook %s: %s; retrying in %.1f s", hook.id, problem, delay)
            await asyncio.sleep(delay)
        return f"gave up after {self.max_attempts} attempts: {problem}"
