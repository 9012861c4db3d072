"""Delivery of the detectors' transitions, in this order of urgency:

- the **publisher** sends them to ``{prefix}/v1/{enterprise}/alerts/{kind}`` on the broker, in
  order, retrying while the broker is away;
- the **store writer** writes them to ``alerts``/``alert_events`` in batches, retrying while the
  database is away (the oldest dropped beyond ``QORGAU_ALERTS_STORE_BACKLOG_MAX``), never holding
  up detection, and wakes the notification sender once they are stored;
- the **webhook dispatcher** pushes them to subscribed URLs with retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from analytics.alerts import AlertEvent
from ingest.alerting.errors import DB_ERRORS
from ingest.alerting.metrics import AlertMetrics
from ingest.alerting.settings import AlertsSettings
from ingest.alerting.source import BrokerLink
from ingest.alerting.webhooks import WebhookDispatcher
from ingest.alerting.wire import from_event
from store.alerts import list_webhooks, record_of, record_webhook_outcome, write_transitions
from store.connection import ReconnectingConnection, is_connection_problem
from vocabulary.backoff import backoff_delay_s
from vocabulary.protocol.alerts import AlertMessage

log = logging.getLogger(__name__)

# Transitions written to the database in one statement at most.
_STORE_BATCH = 500
# Alerts published and awaiting their acknowledgement at once, at most.
_PUBLISH_WINDOW = 100


class AlertDelivery:
    def __init__(
        self,
        settings: AlertsSettings,
        metrics: AlertMetrics,
        db: ReconnectingConnection,
        *,
        publish_errors: tuple[type[BaseException], ...],
        stored: Callable[[], None],
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._db = db
        self._publish_errors = publish_errors
        self._stored = stored
        self._clock = clock
        self._outbox: asyncio.Queue[AlertMessage] = asyncio.Queue()
        self._store: deque[AlertMessage] = deque()
        self._store_wake = asyncio.Event()
        self._link: BrokerLink | None = None
        self._connected = asyncio.Event()
        self.webhooks = WebhookDispatcher(
            self._load_webhooks,
            metrics,
            record=self._record_webhook_outcome,
            timeout_s=settings.alerts_webhook_timeout_s,
            max_attempts=settings.alerts_webhook_max_attempts,
            retry_max_s=settings.alerts_webhook_retry_max_s,
            refresh_s=settings.alerts_webhook_refresh_s,
        )
        enterprises = settings.owned_enterprises()
        self._codes = sorted(enterprises) if enterprises is not None else None
        #: Every message published, for callers embedding the engine (tests, the demo).
        self.listeners: list[Callable[[AlertMessage], None]] = []

    # ------------------------------------------------------------------ the broker link

    def attach(self, link: BrokerLink) -> None:
        self._link = link
        self._connected.set()

    def detach(self) -> None:
        self._connected.clear()
        self._link = None

    @property
    def writes_pending(self) -> bool:
        """Transitions decided but not stored yet."""
        return bool(self._store)

    # ------------------------------------------------------------------ dispatch

    def dispatch(self, events: list[AlertEvent]) -> None:
        sent_at = datetime.fromtimestamp(self._clock(), UTC)
        for event in events:
            message = from_event(event, sent_at)
            self.metrics.transitions.labels(message.kind, message.transition).inc()
            self._outbox.put_nowait(message)
            self._store.append(message)
            if len(self._store) > self.settings.alerts_store_backlog_max:
                self._store.popleft()
                self.metrics.store_dropped.inc()
            self.webhooks.submit(message)
            for listener in self.listeners:
                listener(message)
            log.info(
                "alert %s %s: %s (%s) %s",
                message.alert_id,
                message.transition,
                message.kind,
                message.severity,
                message.message,
            )
        self.metrics.store_backlog.set(len(self._store))
        self._store_wake.set()

    # ------------------------------------------------------------------ publisher

    async def publisher_loop(self) -> None:
        """Publish the outbox in order, up to ``_PUBLISH_WINDOW`` alerts awaiting their
        acknowledgement at once (one round trip each, one after another, could not keep up with
        a burst of transitions). An alert leaves the outbox once acknowledged; the ones that
        failed are sent again, in order, before anything later is taken."""
        while True:
            pending = [await self._outbox.get()]
            while len(pending) < _PUBLISH_WINDOW and not self._outbox.empty():
                pending.append(self._outbox.get_nowait())
            while pending:
                await self._connected.wait()
                link = self._link
                if link is None:
                    await asyncio.sleep(0.05)
                    continue
                pending = await self._publish(link, pending)
                if pending:
                    await asyncio.sleep(0.2)

    async def _publish(self, link: BrokerLink, messages: list[AlertMessage]) -> list[AlertMessage]:
        """Publish ``messages`` (handed to the client in this order); return those that failed."""
        prefix = self.settings.topic_prefix
        outcomes = await asyncio.gather(
            *(link.publish(m.topic(prefix), m.payload()) for m in messages),
            return_exceptions=True,
        )
        failed: list[AlertMessage] = []
        errors: list[BaseException] = []
        for message, outcome in zip(messages, outcomes, strict=True):
            if outcome is None:
                self._outbox.task_done()
            elif isinstance(outcome, self._publish_errors):
                failed.append(message)
                errors.append(outcome)
            else:
                raise outcome  # a bug, not the broker: fail loudly
        if failed:
            self.metrics.publish_failures.inc(len(failed))
            log.warning(
                "could not publish %d alerts, the first %s (%s); retrying",
                len(failed),
                failed[0].alert_id,
                errors[0],
            )
        return failed

    async def drain_outbox(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), timeout_s)

    # ------------------------------------------------------------------ store writer

    async def store_loop(self) -> None:
        attempt = 0
        while True:
            if not self._store:
                self._store_wake.clear()
                await self._store_wake.wait()
                continue
            batch = [self._store[i] for i in range(min(_STORE_BATCH, len(self._store)))]
            try:
                conn = await self._db.get()
                await write_transitions(conn, [record_of(m) for m in batch])
            except DB_ERRORS as exc:
                attempt += 1
                self.metrics.db_retries.inc()
                self._db.discard()
                delay = backoff_delay_s(attempt, cap_s=self.settings.alerts_retry_max_s)
                log.warning(
                    "storing %d alert transitions failed (%s); retrying in %.1f s",
                    len(batch),
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self._stored()  # the transitions' notifications are queued with them
            for _ in batch:
                if self._store:
                    self._store.popleft()
            self.metrics.store_backlog.set(len(self._store))

    async def drain_store(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self._store and time.monotonic() < deadline:  # noqa: ASYNC110 - the writer pops
            await asyncio.sleep(0.05)
        if self._store:
            log.warning("%d alert transitions were not stored before shutdown", len(self._store))

    # ------------------------------------------------------------------ webhooks' database

    async def _load_webhooks(self) -> list[Any]:
        conn = await self._db.get()
        return await list_webhooks(conn, enterprises=self._codes)

    async def _record_webhook_outcome(self, hook_id: int, at: datetime, error: str | None) -> None:
        conn = await self._db.get()
        try:
            await record_webhook_outcome(conn, hook_id, at, error)
        except DB_ERRORS as exc:
            if is_connection_problem(exc):
                self._db.discard()  # the next one reconnects
            raise
