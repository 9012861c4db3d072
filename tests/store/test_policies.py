"""Storage policies: settings that would let a refresh erase rollups are refused, and on
TimescaleDB the background jobs exist after an upgrade."""

from __future__ import annotations

import psycopg
import pytest

from store.connection import DatabaseError, connect
from store.policies import StoragePolicies, check_policies
from tests.store.conftest import BackendSchema


@pytest.mark.services
@pytest.mark.parametrize(
    ("policies", "problem"),
    [
        (StoragePolicies(retention="90 days"), "unlimited"),
        (StoragePolicies(retention="90 days", refresh_lookback="120 days"), "shorter"),
        (StoragePolicies(rollup_retention="30 days", refresh_lookback="30 days"), "shorter"),
        # Ingest accepts readings 28 days old: a 2-day look-back would never roll them up.
        (
            StoragePolicies(
                retention="90 days", refresh_lookback="2 days", sample_window_s=28 * 86_400 + 300
            ),
            "shorter than the sample window ingest accepts",
        ),
        (
            StoragePolicies(refresh_lookback="28 days", sample_window_s=28 * 86_400 + 300),
            r"at least 28.0035 days",
        ),
    ],
)
def test_a_refresh_window_reaching_dropped_data_is_refused(
    pg_url: str, policies: StoragePolicies, problem: str
) -> None:
    with psycopg.connect(pg_url) as conn, pytest.raises(DatabaseError, match=problem):
        check_policies(conn, policies)


@pytest.mark.services
def test_safe_policies_pass(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        check_policies(conn, StoragePolicies())
        check_policies(
            conn,
            StoragePolicies(
                retention="1 year", rollup_retention="90 days", refresh_lookback="7 days"
            ),
        )
        check_policies(
            conn,
            StoragePolicies(
                retention="60 days", refresh_lookback="29 days", sample_window_s=28 * 86_400 + 300
            ),
        )


def test_empty_settings_switch_policies_off() -> None:
    policies = StoragePolicies.from_text(
        compress_after=" ", retention="", rollup_retention="", refresh_lookback=""
    )
    assert policies == StoragePolicies(compress_after=None)


@pytest.mark.services
@pytest.mark.timescale
def test_timescale_upgrade_schedules_compression_and_refresh(
    backend_schema: BackendSchema,
) -> None:
    if backend_schema.backend != "timescale":
        pytest.skip("TimescaleDB-only: plain PostgreSQL has no background jobs")
    with connect(backend_schema.url, backend_schema.schema, autocommit=True) as conn:
        jobs = conn.execute(
            "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs "
            "WHERE hypertable_schema = %s OR hypertable_name IS NULL",
            [backend_schema.schema],
        ).fetchall()
        procs = sorted(p for p, _ in jobs if p != "policy_telemetry")
        assert procs.count("policy_refresh_continuous_aggregate") == 2
        assert "policy_compression" in procs
        assert "policy_retention" not in procs, "retention is off by default"
        settings = conn.execute(
            "SELECT segmentby, orderby "
            "FROM timescaledb_information.hypertable_compression_settings "
            "WHERE hypertable = 'readings'::regclass"
        ).fetchone()
        assert settings is not None
        assert "sensor_id" in settings[0]
        # TimescaleDB 2.28 quotes the column as an identifier ('"time" ASC'), older ones not.
        first = settings[1].split(",")[0].split()
        assert first[0].strip('"') == "time"
        assert first[1:2] in ([], ["ASC"])
