"""The sender: acts on escalation deadlines and delivers the outbox, recording every attempt.

A channel whose attempts all fail (its server is down, or it is not configured) is paused with
capped backoff: meanwhile one of its notifications probes it each time the pause ends, and the
others wait in the outbox unattempted, to go as soon as a probe succeeds. So an outage costs
the engine, whose loop the sender shares with the detectors, a few attempts, not hundreds.

It runs inside ``qorgau alerts`` for the engine's own enterprises, so with engines owning
disjoint enterprises each notification has one sender; taking a notification also leases it
(``store.notifications.take_due``, ``FOR UPDATE SKIP LOCKED``), so even two senders of one
enterprise would not take it together. A notification is sent, retried with capped backoff
(a channel that is down, or not configured yet) or, refused for good or still failing
``give_up_after_s`` after it was due, marked failed with the reason; never dropped. A crash
between the server's acceptance and the record repeats that one message after the lease
(Message-ID and ``X-Qorgau-Notification`` let the receiving side tell).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from analytics import NormsError
from analytics.alerts.params import load_alert_actions
from ingest.alerting.metrics import AlertMetrics
from ingest.alerting.notifications.channels import (
    Channel,
    DeliveryError,
    EmailChannel,
    Outgoing,
    SmsChannel,
    TelegramChannel,
    WebhookChannel,
)
from ingest.alerting.notifications.settings import NotificationSettings
from ingest.alerting.notifications.texts import Catalogues, render
from store.connection import ReconnectingConnection
from store.notifications import (
    CHANNELS,
    PendingNotification,
    record_attempt,
    run_due_escalations,
    take_due,
)
from vocabulary.backoff import backoff_delay_s

log = logging.getLogger(__name__)

_ERROR_CHARS = 500


def build_channels(settings: NotificationSettings, client: httpx.AsyncClient) -> dict[str, Channel]:
    """The channels the settings configure (a channel without its server is absent)."""
    channels: dict[str, Channel] = {}
    smtp = settings.smtp()
    if smtp is not None:
        channels["email"] = EmailChannel(smtp)
    if settings.notify_telegram_token:
        channels["telegram"] = TelegramChannel(
            client, settings.notify_telegram_token, settings.notify_telegram_api_url
        )
    sms = settings.sms()
    if sms is not None:
        channels["sms"] = SmsChannel(client, sms)
    if settings.notify_webhook_secret:
        channels["webhook"] = WebhookChannel(client, settings.notify_webhook_secret)
    return channels


class NotificationSender:
    def __init__(
        self,
        db: ReconnectingConnection,
        settings: NotificationSettings,
        metrics: AlertMetrics,
        *,
        enterprises: Sequence[str] | None,
        default_profile: str = "default",
        clock: Callable[[], float] = time.time,
        batch: int = 50,
        retry_base_s: float = 1.0,
    ) -> None:
        self._db = db
        self.settings = settings
        self.metrics = metrics
        self.enterprises = enterprises
        self.default_profile = default_profile
        self.clock = clock
        self.batch = batch
        self.retry_base_s = retry_base_s
        self.catalogues = Catalogues()
        self.channels: dict[str, Channel] | None = None  # built at the first step
        self._client: httpx.AsyncClient | None = None
        self._actions: dict[str, Mapping[str, str]] = {}
        self._wake = asyncio.Event()
        #: Paused channels: consecutive failed rounds and when the pause ends (clock seconds).
        self.paused: dict[str, tuple[int, float]] = {}
        self._lease_s = 2 * settings.notify_timeout_s + 30.0

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await self._db.close()

    def _channels(self) -> dict[str, Channel]:
        if self.channels is None:
            self._client = httpx.AsyncClient(timeout=self.settings.notify_timeout_s)
            self.channels = build_channels(self.settings, self._client)
            log.info(
                "notifications: channels %s", ", ".join(sorted(self.channels)) or "none configured"
            )
        return self.channels

    def wake(self) -> None:
        """New notifications may be queued: look at once rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                handled = await self.step()
                failures = 0
            except (psycopg.Error, OSError) as exc:
                failures += 1
                self._db.discard()
                delay = backoff_delay_s(failures, cap_s=10.0)
                log.warning(
                    "notifications: database unavailable (%s); retrying in %.1f s", exc, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                continue
            if handled:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait(stop), self.settings.notify_poll_s)

    async def _wait(self, stop: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def step(self) -> int:
        """One round: act on passed escalation deadlines, then send what is due. Returns how
        many notifications were taken (0: nothing to do now)."""
        channels = self._channels()
        conn = await self._db.get()
        queued = await run_due_escalations(conn, self.enterprises)
        if queued:
            log.info("notifications: %d escalation or reminder notifications queued", queued)
        now = self.clock()
        running = [c for c in CHANNELS if c not in self.paused]
        taken = await take_due(
            conn, self.enterprises, channels=running, limit=self.batch, lease_s=self._lease_s
        )
        for name, (_, until) in list(self.paused.items()):
            if until <= now:  # one notification probes whether the channel is back
                taken += await take_due(
                    conn, self.enterprises, channels=[name], limit=1, lease_s=self._lease_s
                )
        if not taken:
            return 0
        outcomes = await asyncio.gather(*(self._send(n, channels) for n in taken))
        worked: set[str] = set()
        failed: set[str] = set()
        for note, (result, error, duration_ms, retry_at) in zip(taken, outcomes, strict=True):
            at = datetime.fromtimestamp(self.clock(), UTC)
            await record_attempt(
                conn,
                note.id,
                at=at,
                result=result,
                error=error,
                duration_ms=duration_ms,
                retry_at=retry_at,
            )
            self.metrics.notifications.labels(note.channel, result).inc()
            if result == "sent":
                worked.add(note.channel)
            elif result == "retry":
                failed.add(note.channel)
            if result == "sent" and note.event in ("escalation", "reminder"):
                self.metrics.escalation_late.observe(max(0.0, (at - note.due_at).total_seconds()))
        self._pause(worked, failed - worked)
        return len(taken)

    def _pause(self, worked: set[str], failed: set[str]) -> None:
        for name in worked:
            if self.paused.pop(name, None) is not None:
                log.info("notifications: the %s channel works again", name)
        for name in failed:
            rounds = self.paused.get(name, (0, 0.0))[0] + 1
            wait = max(
                self.retry_base_s,
                backoff_delay_s(
                    rounds, base_s=self.retry_base_s, cap_s=self.settings.notify_retry_max_s
                ),
            )
            if rounds == 1:
                log.warning(
                    "notifications: the %s channel fails; its notifications wait in the "
                    "outbox and one probes it with backoff",
                    name,
                )
            self.paused[name] = (rounds, self.clock() + wait)

    def _actions_of(self, profile: str | None) -> Mapping[str, str]:
        name = profile or self.default_profile
        found = self._actions.get(name)
        if found is None:
            try:
                found = load_alert_actions(name)
            except NormsError as exc:
                log.error(
                    "norms profile %r has no usable [alerts.actions] (%s); using %r",
                    name,
                    exc,
                    self.default_profile,
                )
                found = load_alert_actions(self.default_profile)
            self._actions[name] = found
        return found

    def outgoing(self, note: PendingNotification) -> Outgoing:
        now = datetime.fromtimestamp(self.clock(), UTC)
        subject, text = render(
            self.catalogues,
            language=note.language,
            event=note.event,
            alert=note.alert,
            actions=self._actions_of(note.alert["norms_profile"]),
            now=now,
        )
        data: dict[str, Any] = {
            "event": note.event,
            "alert_id": note.alert_id,
            "kind": note.alert["kind"],
            "severity": note.alert["severity"],
            "enterprise": note.alert["enterprise"],
            "workplace": note.alert["workplace"],
            "level": note.level,
        }
        return Outgoing(
            key=f"qorgau-notification-{note.id}",
            address=note.address,
            subject=subject,
            text=text,
            language=note.language,
            data=data,
        )

    async def _send(
        self, note: PendingNotification, channels: Mapping[str, Channel]
    ) -> tuple[str, str | None, float, datetime | None]:
        """(result, error, duration in ms, when to retry) of one attempt; never raises."""
        started = time.perf_counter()
        error: str | None = None
        permanent = False
        try:
            channel = channels.get(note.channel)
            if channel is None:
                raise DeliveryError(f"the {note.channel} channel is not configured")
            message = self.outgoing(note)
            await asyncio.wait_for(channel.send(message), 2 * self.settings.notify_timeout_s)
        except DeliveryError as exc:
            error, permanent = str(exc), exc.permanent
        except TimeoutError:
            error = "timed out"
        except Exception as exc:  # a bug must cost one notification's attempt, not the sender
            log.exception("notification %s: unexpected error", note.id)
            error = f"unexpected error: {type(exc).__name__}: {exc}"
        duration_ms = (time.perf_counter() - started) * 1000
        if error is None:
            return "sent", None, duration_ms, None
        error = error.replace("\x00", "")[:_ERROR_CHARS]
        now = self.clock()
        overdue = now - note.due_at.timestamp() > self.settings.notify_give_up_after_s
        if permanent or overdue:
            log.warning(
                "notification %s to %s by %s failed: %s",
                note.id,
                note.recipient,
                note.channel,
                error,
            )
            return "failed", error, duration_ms, None
        delay = max(
            self.retry_base_s,
            backoff_delay_s(
                note.attempts, base_s=self.retry_base_s, cap_s=self.settings.notify_retry_max_s
            ),
        )
        log.info(
            "notification %s by %s: %s; retrying in %.0f s", note.id, note.channel, error, delay
        )
        return "retry", error, duration_ms, datetime.fromtimestamp(now + delay, UTC)
