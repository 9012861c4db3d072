"""Migrations on a real PostgreSQL: idempotent, day partitions that never refuse a write, and the
backend decided without ever losing the connection (TimescaleDB installed but not preloaded)."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from psycopg import sql

from qorgau.localservices import LocalPostgres, timescaledb_installed
from store.connection import DatabaseError, connect
from store.migrate import available_migrations, timescaledb_preloaded, upgrade
from tests.store.conftest import BackendSchema

pytestmark = pytest.mark.services


def test_upgrade_is_idempotent_and_records_the_backend(backend_schema: BackendSchema) -> None:
    url, schema = backend_schema.url, backend_schema.schema
    # The backend of the first upgrade is kept whatever a later one asks for.
    again = upgrade(url, schema, timescale="off" if backend_schema.backend == "timescale" else "on")
    assert again.applied == ()
    assert again.backend == backend_schema.backend
    with connect(url, schema, autocommit=True) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert sorted(versions) == sorted(
        m.version for m in available_migrations() if m.backend in (None, backend_schema.backend)
    )


@pytest.mark.plain
def test_rows_outside_any_partition_land_in_default_and_move_when_the_day_is_created(
    pg_url: str, schema: str
) -> None:
    old = datetime(2020, 3, 1, 12, tzinfo=UTC)
    with connect(pg_url, schema, autocommit=True) as conn:
        conn.execute("INSERT INTO readings VALUES (%s, 1, 42.0)", [old])
        assert conn.execute("SELECT count(*) FROM readings_default").fetchone() == (1,)
        created = conn.execute(
            "SELECT qorgau_ensure_readings_partitions(%s, %s)", [old, old + timedelta(hours=1)]
        ).fetchone()
        assert created == (1,)
        assert conn.execute("SELECT count(*) FROM readings_default").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM readings_p20200301").fetchone() == (1,)
        assert conn.execute("SELECT value FROM readings WHERE time = %s", [old]).fetchone() == (
            42.0,
        )
        again = conn.execute("SELECT qorgau_ensure_readings_partitions(%s, %s)", [old, old])
        assert again.fetchone() == (0,)


@pytest.mark.plain
def test_partitions_are_made_for_the_days_present_not_the_range_between(
    pg_url: str, schema: str
) -> None:
    import anyio

    from store.connection import connect_async
    from store.readings import datetime_to_us, days_of, ensure_day_partitions

    days = days_of(
        np.array(
            [
                datetime_to_us(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)),  # a reset device clock
                datetime_to_us(datetime(2020, 6, 15, 23, 59, tzinfo=UTC)),
                datetime_to_us(datetime(2020, 6, 15, 1, 0, tzinfo=UTC)),
            ],
            dtype=np.int64,
        )
    )

    async def make() -> int:
        conn = await connect_async(pg_url, schema, autocommit=True)
        async with conn:
            return await ensure_day_partitions(conn, days)

    assert anyio.run(make) == 2
    with connect(pg_url, schema, autocommit=True) as conn:
        names = {
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'readings'::regclass"
            )
        }
    assert {"readings_p19700101", "readings_p20200615"} <= names
    assert not any(n.startswith("readings_p1971") for n in names)


@pytest.fixture
def unloaded_server(pg_factory: Callable[..., LocalPostgres]) -> LocalPostgres:
    """A server where TimescaleDB is installed but not preloaded (as on a stock Debian server
    after ``apt-get install`` of the extension, before its configuration is changed)."""
    if not timescaledb_installed():
        pytest.skip("the TimescaleDB extension is not installed for the test PostgreSQL server")
    return pg_factory(timescaledb=False)


def test_auto_falls_back_to_plain_saying_how_to_enable_timescaledb(
    unloaded_server: LocalPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="store.migrate"):
        result = upgrade(unloaded_server.url, "qorgau", timescale="auto")
    assert result.backend == "plain"
    assert "shared_preload_libraries" in result.backend_reason
    assert any("shared_preload_libraries" in r.getMessage() for r in caplog.records)
    # The whole schema is there and usable: the fallback did not lose the connection.
    assert result.applied[-1] == (
        f"{available_migrations()[-1].version:04d}_{available_migrations()[-1].name}"
    )
    with connect(unloaded_server.url, "qorgau", autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM readings_1m").fetchone() == (0,)
        assert not timescaledb_preloaded(conn)
    assert upgrade(unloaded_server.url, "qorgau", timescale="auto").backend == "plain"


def test_on_refuses_an_installed_but_unloaded_timescaledb_with_the_remedy(
    unloaded_server: LocalPostgres,
) -> None:
    with pytest.raises(DatabaseError, match="shared_preload_libraries = 'timescaledb'"):
        upgrade(unloaded_server.url, "qorgau", timescale="on")
    # Nothing half-done: a later upgrade still decides afresh.
    assert upgrade(unloaded_server.url, "qorgau", timescale="off").backend == "plain"


def test_local_servers_preload_timescaledb_when_it_is_installed(pg_url: str) -> None:
    if os.environ.get("QORGAU_TEST_DATABASE_URL"):
        pytest.skip("the test server is an external one, not started by qorgau.localservices")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert timescaledb_preloaded(conn) == timescaledb_installed()


def test_enterprise_norms_profiles_move_out_of_alert_settings(pg_url: str, schema: str) -> None:
    """A database from before 0041, with enterprises' alert settings: the profiles they chose
    become the enterprises' own, and the alert engine's own shift model goes."""
    with connect(pg_url, schema, autocommit=True) as conn:
        # Back to the shape 0020 left (the schema fixture is fully upgraded).
        conn.execute("ALTER TABLE enterprises DROP COLUMN norms_profile")
        conn.execute(
            """CREATE TABLE alert_settings (
                   enterprise_id bigint PRIMARY KEY REFERENCES enterprises (id),
                   norms_profile text NOT NULL DEFAULT 'default',
                   shift_start time NOT NULL DEFAULT '08:00',
                   shift_duration_s double precision NOT NULL DEFAULT 28800,
                   time_zone text NOT NULL DEFAULT 'UTC')"""
        )
        conn.execute("DELETE FROM schema_migrations WHERE version = 41")
        ids = {
            code: conn.execute(
                "INSERT INTO enterprises (code, name) VALUES (%s, %s) RETURNING id", [code, code]
            ).fetchone()[0]  # type: ignore[index]
            for code in ("own", "explicit-default", "none")
        }
        conn.execute(
            "INSERT INTO alert_settings (enterprise_id, norms_profile, shift_start) "
            "VALUES (%s, '/etc/qorgau/own.toml', '07:00'), (%s, 'default', '08:00')",
            [ids["own"], ids["explicit-default"]],
        )
    assert upgrade(pg_url, schema, timescale="off").applied == ("0041_enterprise_norms_profile",)
    with connect(pg_url, schema, autocommit=True) as conn:
        got = dict(conn.execute("SELECT code, norms_profile FROM enterprises").fetchall())
        gone = conn.execute("SELECT to_regclass('alert_settings')").fetchone()
    assert got == {"own": "/etc/qorgau/own.toml", "explicit-default": "default", "none": None}
    assert gone == (None,)


def test_preloading_is_seen_without_the_privilege_to_read_the_setting(pg_url: str) -> None:
    """Only superusers may read shared_preload_libraries; other roles see the loader's own
    settings instead."""
    role = f"r_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        expected = timescaledb_preloaded(admin)
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        with psycopg.connect(pg_url, user=role, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SHOW shared_preload_libraries")
            assert timescaledb_preloaded(conn) == expected
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
