"""Capped exponential backoff with full jitter, as a pure function of the attempt number.

Every retry loop (ingest's database and broker reconnects, the edge agent's reconnects) takes its
delay from here; the random source is an argument so tests can pin it. ``supervise`` is the
reconnect loop the async services share.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable


def backoff_delay_s(
    attempt: int,
    *,
    base_s: float = 0.2,
    cap_s: float = 10.0,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Delay before retry number ``attempt`` (1 for the first retry): uniform in
    [0, min(cap, base·2^(attempt−1))] ("full jitter"), so that many clients reconnecting after
    the same outage spread out instead of arriving together."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    ceiling = min(cap_s, base_s * 2 ** min(attempt - 1, 30))
    return uniform(0.0, ceiling)


async def supervise(
    session: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    retry_on: tuple[type[BaseException], ...],
    cap_s: float,
    on_retry: Callable[[BaseException, float], None],
) -> None:
    """Run ``session`` again and again until ``stop`` is set: the one reconnect loop of every
    service. A session that fails with ``retry_on`` is retried after ``backoff_delay_s`` (the
    wait ends early on ``stop``); a session that returns normally resets the attempt count."""
    attempt = 0
    while not stop.is_set():
        try:
            await session()
            attempt = 0
        except retry_on as exc:
            attempt += 1
            delay = backoff_delay_s(attempt, cap_s=cap_s)
            on_retry(exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
