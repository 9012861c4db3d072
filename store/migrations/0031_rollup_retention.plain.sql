-- Plain PostgreSQL: minute rollups older than QORGAU_DB_ROLLUP_RETENTION are deleted in small
-- batches by bucket (store/maintenance.py); the primary key leads with sensor_id, so it cannot
-- find old buckets without reading all of it. (TimescaleDB drops whole chunks by policy.)
CREATE INDEX readings_1m_bucket_idx ON readings_1m (bucket);
