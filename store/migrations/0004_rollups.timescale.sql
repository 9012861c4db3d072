-- Rollups on TimescaleDB: continuous aggregates holding sufficient statistics per sensor and
-- bucket (see store/rollups.py for what each column is for), same names and columns as the
-- plain PostgreSQL tables. Requires TimescaleDB 2.13 or later (as 0002 does, for by_range).
--
-- Real-time aggregation is switched on (materialized_only = false; off by default since 2.13) so
-- that readings newer than the last refresh are included. The decibel term is clamped (0 below
-- -300, infinity above 300) so that power() can never raise an overflow or underflow error, which
-- would make every refresh fail. WITH NO DATA: the runner applies each migration in a
-- transaction, and the refresh policies (store/policies.py) materialize the history.

-- Compression: one segment per sensor, ordered by time, which is how rollups and exposure
-- queries read it. The policy that compresses old chunks is set by store/policies.py.
ALTER TABLE readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'sensor_id',
    timescaledb.compress_orderby = 'time ASC'
);

CREATE MATERIALIZED VIEW readings_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS bucket,
       sensor_id,
       count(*) AS n,
       sum(value) AS sum_value,
       sum(value * value) AS sum_sq,
       sum(CASE WHEN value > 300 THEN 'Infinity'::float8
                WHEN value < -300 THEN 0::float8
                ELSE power(10::float8, value / 10) END) AS sum_pow10,
       min(value) AS min_value,
       max(value) AS max_value
FROM readings
GROUP BY time_bucket(INTERVAL '1 minute', time), sensor_id
WITH NO DATA;

-- Hourly buckets from the minute buckets (a hierarchical continuous aggregate, TimescaleDB 2.9+):
-- every statistic is additive, so this is exact. (n is numeric here; readers cast it.)
CREATE MATERIALIZED VIEW readings_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket,
       sensor_id,
       sum(n) AS n,
       sum(sum_value) AS sum_value,
       sum(sum_sq) AS sum_sq,
       sum(sum_pow10) AS sum_pow10,
       min(min_value) AS min_value,
       max(max_value) AS max_value
FROM readings_1m
GROUP BY time_bucket(INTERVAL '1 hour', bucket), sensor_id
WITH NO DATA;
