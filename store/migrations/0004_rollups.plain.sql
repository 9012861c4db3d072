-- Rollups on plain PostgreSQL: sufficient statistics per sensor and bucket (see store/rollups.py
-- for what each column is for). Ingest adds to them in the transaction that stores the readings,
-- so they hold exactly the stored readings. Same names and columns as the TimescaleDB continuous
-- aggregates of the other backend.
CREATE TABLE readings_1m (
    sensor_id   integer NOT NULL,
    bucket      timestamptz NOT NULL,
    n           bigint NOT NULL,
    sum_value   double precision NOT NULL,
    sum_sq      double precision NOT NULL,
    sum_pow10   double precision NOT NULL,
    min_value   double precision NOT NULL,
    max_value   double precision NOT NULL,
    PRIMARY KEY (sensor_id, bucket)
);

CREATE TABLE readings_1h (LIKE readings_1m INCLUDING ALL);

-- Readings stored before this migration: roll them up once. Decibel terms follow the same
-- clamping rule as ingest (0 below -300, infinity above 300) so no value can overflow.
INSERT INTO readings_1m
SELECT sensor_id,
       date_bin(interval '1 minute', time, timestamptz 'epoch'),
       count(*), sum(value), sum(value * value),
       sum(CASE WHEN value > 300 THEN 'Infinity'::float8
                WHEN value < -300 THEN 0::float8
                ELSE power(10::float8, value / 10) END),
       min(value), max(value)
FROM readings
GROUP BY 1, 2;

INSERT INTO readings_1h
SELECT sensor_id, date_bin(interval '1 hour', bucket, timestamptz 'epoch'),
       sum(n), sum(sum_value), sum(sum_sq), sum(sum_pow10), min(min_value), max(max_value)
FROM readings_1m
GROUP BY 1, 2;
