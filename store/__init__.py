"""Schema migrations and queries, shared by ingest and the API.

The same functions run on TimescaleDB (hypertables, compression, continuous aggregates,
retention) and on plain PostgreSQL (daily partitions, rollup tables); the backend is chosen once
per schema by ``store.migrate.upgrade`` and recorded in ``schema_migrations``.
"""
