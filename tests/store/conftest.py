"""The storage contract runs on every backend: plain PostgreSQL always, TimescaleDB when the test
server has the extension (else those cases are skipped, saying why)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from store.connection import DatabaseError
from store.migrate import Backend, upgrade
from tests.support import drop_schema, pause_jobs


@dataclass(frozen=True)
class BackendSchema:
    url: str
    schema: str
    backend: Backend


def timescale_missing_reason(url: str) -> str | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
    if row is None:
        return "the TimescaleDB extension is not installed on the test PostgreSQL server"
    return None


@pytest.fixture(params=["plain", "timescale"])
def backend_schema(request: pytest.FixtureRequest, pg_url: str) -> Iterator[BackendSchema]:
    """A schema on each backend in turn; TimescaleDB's jobs paused as in ``schema``."""
    backend: Backend = request.param
    if backend == "timescale":
        reason = timescale_missing_reason(pg_url)
        if reason:
            pytest.skip(reason)
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        result = upgrade(pg_url, name, timescale="on" if backend == "timescale" else "off")
    except DatabaseError as exc:
        if backend == "timescale":
            pytest.skip(f"TimescaleDB cannot be enabled on the test server: {exc}")
        raise
    assert result.backend == backend
    if request.node.get_closest_marker("background_jobs") is None:
        pause_jobs(pg_url, name)
    yield BackendSchema(pg_url, name, backend)
    drop_schema(pg_url, name)


def materialize(target: BackendSchema) -> None:
    """TimescaleDB: refresh both continuous aggregates over all time, as the refresh policies
    would, so that every bucket is read from the materialization (plain PostgreSQL: nothing to
    do, its rollups are tables)."""
    if target.backend != "timescale":
        return
    with psycopg.connect(target.url, autocommit=True) as conn:
        for view in ("readings_1m", "readings_1h"):  # minutes first: hours are made of them
            conn.execute(
                "CALL refresh_continuous_aggregate(%s::regclass, NULL, NULL)",
                [f"{target.schema}.{view}"],
            )
