-- Readings on TimescaleDB: a hypertable chunked by time ({{chunk_interval}} is filled in by the
-- migration runner from QORGAU_DB_CHUNK_INTERVAL, default 1 day).
CREATE TABLE readings (
    time        timestamptz NOT NULL,
    sensor_id   integer NOT NULL,
    value       double precision NOT NULL
);

SELECT create_hypertable('readings', by_range('time', INTERVAL {{chunk_interval}}));

CREATE INDEX readings_sensor_time_idx ON readings (sensor_id, time DESC);

-- Same name and signature as on plain PostgreSQL so that ingest need not know the backend;
-- TimescaleDB creates chunks by itself.
CREATE FUNCTION qorgau_ensure_readings_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;
