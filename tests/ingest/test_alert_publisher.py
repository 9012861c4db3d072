"""The alert publisher: many alerts awaiting their acknowledgement at once, in order, and an alert
leaves the outbox only once acknowledged (no broker: a link that acknowledges when told)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from ingest.alerting.delivery import AlertDelivery
from ingest.alerting.metrics import AlertMetrics
from ingest.alerting.settings import AlertsSettings
from ingest.alerting.source import Receive
from store.connection import ReconnectingConnection
from vocabulary.protocol.alerts import AlertMessage


def alert(n: int) -> AlertMessage:
    now = datetime.now(UTC)
    return AlertMessage(
        alert_id=str(uuid.UUID(int=n)),
        transition="opened",
        state="open",
        kind="ceiling",
        severity="critical",
        enterprise="acme",
        device="dev-1",
        message=f"alert {n}",
        at=now,
        opened_at=now,
        sent_at=now,
    )


class HeldLink:
    """Acknowledges nothing until ``release`` is set; the first attempt at ``fail_once`` fails."""

    def __init__(self, fail_once: str) -> None:
        self.release = asyncio.Event()
        self.calls: list[str] = []
        self.waiting = 0
        self.most_waiting = 0
        self._fail_once = fail_once

    async def read(self, receive: Receive) -> None:
        await asyncio.Event().wait()

    async def publish(self, topic: str, payload: bytes) -> None:
        alert_id = AlertMessage.model_validate_json(payload).alert_id
        self.calls.append(alert_id)
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        try:
            await self.release.wait()
        finally:
            self.waiting -= 1
        if alert_id == self._fail_once:
            self._fail_once = ""
            raise ConnectionError("broker went away")


@pytest.mark.anyio
async def test_alerts_await_acknowledgement_together_and_leave_the_outbox_once_acknowledged() -> (
    None
):
    metrics = AlertMetrics()
    delivery = AlertDelivery(
        AlertsSettings(),
        metrics,
        ReconnectingConnection("postgresql://unused", "qorgau", retry_max_s=1, purpose="test"),
        publish_errors=(ConnectionError,),
        stored=lambda: None,
        clock=lambda: 0.0,
    )
    alerts = [alert(n) for n in range(5)]
    link = HeldLink(fail_once=alerts[2].alert_id)
    for message in alerts:
        delivery._outbox.put_nowait(message)
    delivery.attach(link)
    publisher = asyncio.create_task(delivery.publisher_loop())
    try:
        await asyncio.sleep(0.05)
        # All five sent, in order, none acknowledged: all still in the outbox.
        assert link.calls == [m.alert_id for m in alerts]
        assert link.most_waiting == 5
        assert delivery._outbox._unfinished_tasks == 5  # type: ignore[attr-defined]
        link.release.set()
        await asyncio.wait_for(delivery._outbox.join(), 5)
        # The failed one was sent again, and only it.
        assert link.calls == [m.alert_id for m in alerts] + [alerts[2].alert_id]
        assert metrics.publish_failures._value.get() == 1
    finally:
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)
