"""What the API's two broker links (alert stream, live readings) share: staying connected with
the services' common reconnect loop, and running a reader until it ends or the API stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiomqtt

from vocabulary.backoff import supervise

log = logging.getLogger(__name__)

# The API only reads and fans out; ten seconds between attempts is plenty for a dashboard.
RECONNECT_CAP_S = 10.0


async def keep_connected(
    session: Callable[[], Awaitable[None]], stop: asyncio.Event, *, link: str
) -> None:
    """Run ``session`` (one broker connection) again and again until ``stop`` is set."""

    def broker_lost(exc: BaseException, delay: float) -> None:
        log.warning("%s: broker unavailable (%s); retrying in %.1f s", link, exc, delay)

    await supervise(
        session,
        stop,
        retry_on=(aiomqtt.MqttError,),
        cap_s=RECONNECT_CAP_S,
        on_retry=broker_lost,
    )


async def run_until_stopped(work: Coroutine[Any, Any, object], stop: asyncio.Event) -> None:
    """Run ``work`` until it ends or ``stop`` is set, whichever comes first. A reader that fails
    because the broker went away just ends: its session returns and ``keep_connected`` connects
    again."""
    task = asyncio.create_task(work)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
        await task
