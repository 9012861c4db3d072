-- Assessed shifts: every surface (API, map, exports, reports, dashboard, Grafana, alerts) reads a
-- workplace's shift from here; the assessment service (application/assessment_service.py) is the
-- only writer. One row per (workplace, shift start); the shift is the workplace's schedule's.
CREATE TABLE shift_assessments (
    workplace_id       bigint NOT NULL REFERENCES workplaces (id) ON DELETE CASCADE,
    shift_start        timestamptz NOT NULL,
    shift_end          timestamptz NOT NULL,
    local_day          date NOT NULL,          -- local date the shift starts on
    shift_number       smallint NOT NULL,      -- 1-based position in the day's schedule
    timezone           text NOT NULL,          -- IANA zone the schedule is written in
    -- running: the shift is under way; provisional: ended, late readings may still come (ingest
    -- accepts them up to QORGAU_INGEST_MAX_PAST_S); final: no reading can change it any more.
    status             text NOT NULL CHECK (status IN ('running', 'provisional', 'final')),
    working_class      text CHECK (working_class IN ('1', '2', '3.1', '3.2', '3.3', '3.4', '4')),
    b                  smallint CHECK (b BETWEEN 1 AND 5),
    b_continuous       double precision,
    coverage_min       double precision,       -- lowest coverage (0..1) of the assessed sensors
    insufficient_data  boolean NOT NULL,       -- some sensor below the norms' coverage minimum
    deciding_factors   text[] NOT NULL,        -- the factors that set the workplace class
    detail             jsonb NOT NULL,         -- per sensor and per factor: metrics, class, basis
    norms_profile      text NOT NULL,
    norms_version      text NOT NULL,
    inputs_digest      bytea NOT NULL,         -- of the rollups, entered classes and norms used
    computed_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workplace_id, shift_start),
    CHECK (shift_end > shift_start)
)
-- The detail moves out of line (TOAST) whenever a row passes 128 bytes, so the rows the map and
-- exports walk stay narrow.
WITH (toast_tuple_target = 128);
CREATE INDEX shift_assessments_day_idx ON shift_assessments (workplace_id, local_day);
-- The order in which a period's worst shift is chosen (store/shift_assessments.py, WORST_ORDER):
-- the worst shift of each workplace is the first entry in range, read from the index alone.
CREATE INDEX shift_assessments_worst_idx ON shift_assessments
    (workplace_id, insufficient_data, b DESC, b_continuous DESC NULLS LAST, shift_start DESC)
    INCLUDE (local_day)
    WHERE b IS NOT NULL;
CREATE INDEX shift_assessments_open_idx ON shift_assessments (status, shift_end)
    WHERE status <> 'final';

-- What changed since the assessment service last looked: readings of a sensor between lo and hi
-- (written by store.writes in the transaction that stores the readings), or a workplace whose
-- entered classes changed from lo on. The service deletes the rows it has applied in the
-- transaction that stores the recomputed shifts, so a crash loses nothing.
CREATE TABLE assessment_changes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sensor_id     integer,
    workplace_id  bigint,
    lo            timestamptz NOT NULL,
    hi            timestamptz NOT NULL,
    noted_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((sensor_id IS NULL) <> (workplace_id IS NULL)),
    CHECK (hi >= lo)
);

-- One row per assessed sensor of a stored shift, for Grafana panels and SQL users: the daily
-- values (LEX,8h in dB(A), A(8) in m/s², TWA in mg/m³), the sensor's class and coverage.
CREATE VIEW shift_assessment_sensors AS
SELECT a.workplace_id, a.shift_start, a.shift_end, a.local_day, a.shift_number, a.status,
       a.insufficient_data AS shift_insufficient_data,
       (s ->> 'sensor_id')::bigint AS sensor_id,
       s ->> 'sensor' AS sensor,
       s ->> 'quantity' AS quantity,
       s ->> 'substance' AS substance,
       (s -> 'metrics' ->> 'lex8h_db')::float8 AS lex8h_db,
       (s -> 'metrics' ->> 'a8_m_s2')::float8 AS a8_m_s2,
       (s -> 'metrics' ->> 'twa8h_mg_m3')::float8 AS twa8h_mg_m3,
       (s -> 'metrics' ->> 'coverage')::float8 AS coverage,
       s ->> 'working_class' AS working_class,
       (s ->> 'insufficient_data')::boolean AS insufficient_data
FROM shift_assessments a
CROSS JOIN LATERAL jsonb_array_elements(a.detail -> 'sensors') AS s;
