from __future__ import annotations

import pytest

from vocabulary.backoff import backoff_delay_s


def upper(low: float, high: float) -> float:
    return high


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [backoff_delay_s(n, base_s=0.5, cap_s=5.0, uniform=upper) for n in range(1, 8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_backoff_is_jittered_from_zero() -> None:
    assert backoff_delay_s(3, uniform=lambda low, high: low) == 0.0


def test_backoff_survives_huge_attempt_numbers() -> None:
    assert backoff_delay_s(10_000, cap_s=7.0, uniform=upper) == 7.0


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_delay_s(0)


class FlakyError(Exception):
    pass


@pytest.mark.anyio
async def test_supervise_retries_failed_sessions_and_stops_when_asked() -> None:
    import asyncio

    from vocabulary.backoff import supervise

    stop = asyncio.Event()
    calls: list[str] = []
    retries: list[float] = []

    async def session() -> None:
        calls.append("session")
        if len(calls) < 3:
            raise FlakyError("broker away")
        stop.set()  # the third session ends normally and asks to stop

    await supervise(
        session,
        stop,
        retry_on=(FlakyError,),
        cap_s=0.01,
        on_retry=lambda exc, delay: retries.append(delay),
    )
    assert calls == ["session"] * 3
    assert len(retries) == 2
    assert all(0.0 <= d <= 0.01 for d in retries)


@pytest.mark.anyio
async def test_supervise_lets_other_errors_through() -> None:
    import asyncio

    from vocabulary.backoff import supervise

    async def session() -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        await supervise(
            session, asyncio.Event(), retry_on=(FlakyError,), cap_s=0.01, on_retry=lambda e, d: None
        )
