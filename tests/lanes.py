"""Which database backends the test suite can run on here (``scripts/test`` asks).

``python -m tests.lanes`` prints ``timescale`` when the TimescaleDB extension is installed for
the PostgreSQL the tests use (the server named by ``QORGAU_TEST_DATABASE_URL``, or the local
binaries the fixtures start), else ``plain: <why TimescaleDB is not tested>``.
"""

from __future__ import annotations

import os

import psycopg

from qorgau.localservices import ServiceStartError, timescaledb_installed


def timescale_missing_reason() -> str | None:
    external = os.environ.get("QORGAU_TEST_DATABASE_URL")
    if external:
        with psycopg.connect(external, autocommit=True) as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
            ).fetchone()
        return None if row else "TimescaleDB is not installed on QORGAU_TEST_DATABASE_URL's server"
    try:
        installed = timescaledb_installed()
    except ServiceStartError as exc:
        return str(exc)
    if not installed:
        return (
            "the TimescaleDB extension is not installed for the local PostgreSQL "
            "(timescaledb.control and timescaledb.so in its pg_config --sharedir/--pkglibdir)"
        )
    return None


if __name__ == "__main__":
    reason = timescale_missing_reason()
    print("timescale" if reason is None else f"plain: {reason}")
