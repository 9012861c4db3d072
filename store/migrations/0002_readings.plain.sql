-- Readings on plain PostgreSQL: declarative partitions by day, created ahead of the data by
-- qorgau_ensure_readings_partitions (called by migrations and by ingest before each COPY).
CREATE TABLE readings (
    time        timestamptz NOT NULL,
    sensor_id   integer NOT NULL,
    value       double precision NOT NULL
) PARTITION BY RANGE (time);

-- Catch-all so that a write never fails for want of a partition; the ensure function moves
-- rows out of it when the matching day partition is created.
CREATE TABLE readings_default PARTITION OF readings DEFAULT;

CREATE INDEX readings_sensor_time_idx ON readings (sensor_id, time);

CREATE FUNCTION qorgau_ensure_readings_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day         date := (from_ts AT TIME ZONE 'UTC')::date;
    last_day    date := (to_ts AT TIME ZONE 'UTC')::date;
    part        text;
    lo          timestamptz;
    hi          timestamptz;
    created     integer := 0;
    schema_name text := current_schema();
BEGIN
    IF last_day - day > 400 THEN
        RAISE EXCEPTION 'refusing to create % daily partitions at once', last_day - day;
    END IF;
    WHILE day <= last_day LOOP
        part := 'readings_p' || to_char(day, 'YYYYMMDD');
        IF to_regclass(format('%I.%I', schema_name, part)) IS NULL THEN
            lo := day::timestamp AT TIME ZONE 'UTC';
            hi := (day + 1)::timestamp AT TIME ZONE 'UTC';
            -- Serialise concurrent creators (several ingest workers).
            PERFORM pg_advisory_xact_lock(hashtext(schema_name || '.' || part));
            IF to_regclass(format('%I.%I', schema_name, part)) IS NULL THEN
                EXECUTE format('CREATE TABLE %I.%I (LIKE %I.readings INCLUDING DEFAULTS)',
                               schema_name, part, schema_name);
                EXECUTE format(
                    'WITH moved AS (DELETE FROM %I.readings_default WHERE time >= $1 AND time < $2 RETURNING *) '
                    'INSERT INTO %I.%I SELECT * FROM moved', schema_name, schema_name, part)
                    USING lo, hi;
                EXECUTE format('ALTER TABLE %I.readings ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                               schema_name, schema_name, part, lo, hi);
                created := created + 1;
            END IF;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN created;
END;
$$;

SELECT qorgau_ensure_readings_partitions(now() - interval '1 day', now() + interval '7 days');
