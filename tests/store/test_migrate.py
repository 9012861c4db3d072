"""Migrations on a real PostgreSQL: idempotent, and day partitions that never refuse a write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from store.connection import connect
from store.migrate import available_migrations, upgrade


def test_upgrade_is_idempotent_and_records_the_backend(pg_url: str, schema: str) -> None:
    again = upgrade(pg_url, schema, timescale="off")
    assert again.applied == ()
    assert again.backend == "plain"
    with connect(pg_url, schema, autocommit=True) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert sorted(versions) == sorted({m.version for m in available_migrations()})


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
