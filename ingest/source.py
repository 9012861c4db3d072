"""Where a worker's messages come from: a broker session that hands received messages to the
worker and acknowledges them once committed. Everything between (admission, validation,
quarantine, dedupe, COPY, commit) is one code path whatever the broker.

Two sources: an MQTT 5 shared subscription on Mosquitto (``ingest.mqtt_source``) and a
RabbitMQ quorum queue read over AMQP (``ingest.amqp``); ``ingest.service.make_worker`` picks one
by ``QORGAU_BROKER``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from ingest.items import Item, Received


class Intake(Protocol):
    """The worker as a source sees it."""

    async def admit(self, received: list[Received], generation: int) -> None:
        """Take messages in, in their order of arrival; ``generation`` names the connection
        they came on (see :meth:`Source.acknowledge`)."""

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything admitted so far is committed and acknowledged."""

    def connected(self, up: bool) -> None:
        """The source is (up) or is no longer (not up) receiving the readings."""

    @property
    def unacknowledged(self) -> int:
        """Messages admitted and not acknowledged yet."""


class Source(Protocol):
    #: Failures of the broker connection: the session is retried, not the worker stopped.
    errors: tuple[type[BaseException], ...]

    def label(self) -> str:
        """The broker as logs name it (no password)."""

    async def session(
        self, intake: Intake, stop: asyncio.Event, writer: asyncio.Task[None]
    ) -> None:
        """Connect, receive and hand messages to ``intake`` until ``stop`` is set (then flush
        while still connected, and return) or the connection fails (raise one of ``errors``).
        A session ends, raising its error, when ``writer`` fails."""

    def acknowledge(self, batch: list[Item]) -> None:
        """Acknowledge committed items to the broker; those of an earlier connection are left
        (the broker redelivers them, the dedupe absorbs the copies)."""

    async def retire(
        self, run: Callable[[asyncio.Event], Awaitable[None]], *, idle_s: float
    ) -> None:
        """Leave the broker for good without losing messages held for this worker; ``run``
        runs the worker until the event it is given is set."""
