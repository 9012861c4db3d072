"""Helpers shared by integration tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from store.connection import connect


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout_s: float = 20.0,
    interval_s: float = 0.1,
    what: str = "condition",
) -> None:
    """Poll ``check`` until it is true; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(interval_s)


def scalar(url: str, schema: str, query: str, params: list[Any] | None = None) -> Any:
    with connect(url, schema, autocommit=True) as conn:
        row = conn.execute(query, params or []).fetchone()
        return row[0] if row else None


def rows(url: str, schema: str, query: str, params: list[Any] | None = None) -> list[Any]:
    with connect(url, schema, autocommit=True) as conn:
        return conn.execute(query, params or []).fetchall()


def count_readings(url: str, schema: str) -> int:
    try:
        return int(scalar(url, schema, "SELECT count(*) FROM readings"))
    except psycopg.OperationalError:
        return -1


def wait_until(
    check: Callable[[], bool], what: str = "condition", *, timeout_s: float = 15.0
) -> None:
    """Blocking ``eventually`` for code outside an event loop."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.02)


async def assess_now(url: str, schema: str, norms_profile: str = "default") -> int:
    """One pass of the assessment service over everything stored since its last pass (what
    ``qorgau assessments run`` does every few seconds); returns the shifts written."""
    from analytics import load_norms
    from application.assessment_service import AssessmentService
    from application.settings import AssessmentSettings
    from store.connection import connect_async

    settings = AssessmentSettings(
        database_url=url, database_schema=schema, norms_profile=norms_profile
    )
    service = AssessmentService(settings, load_norms(norms_profile))
    written = 0
    async with await connect_async(url, schema, autocommit=True) as conn:
        while True:
            result = await service.pass_once(conn)
            written += result.shifts_written
            if result.changes < settings.assess_batch_changes:
                return written
