-- Registry details the API manages: the enterprise's time zone and economic-activity risk class
-- (insurance base rate), sites, the shift schedule of a workplace, calibration of sensors.
ALTER TABLE enterprises
    ADD COLUMN timezone            text NOT NULL DEFAULT 'Asia/Almaty',
    ADD COLUMN activity_code       text,
    ADD COLUMN activity_risk_class smallint CHECK (activity_risk_class BETWEEN 1 AND 22),
    -- When set, overrides the base rate the norms profile gives for the risk class.
    ADD COLUMN base_rate_pct       double precision CHECK (base_rate_pct > 0 AND base_rate_pct <= 100),
    ADD COLUMN updated_at          timestamptz NOT NULL DEFAULT now();
CREATE INDEX enterprises_region_idx ON enterprises (region);

CREATE TABLE sites (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    enterprise_id   bigint NOT NULL REFERENCES enterprises (id) ON DELETE CASCADE,
    code            text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    name            text NOT NULL,
    address         text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (enterprise_id, code)
);

-- A shift schedule: shifts start at each of shift_starts (local time of the enterprise) and
-- last shift_duration_s; the default is one 8-h shift from 08:00.
ALTER TABLE workplaces
    ADD COLUMN site_id          bigint REFERENCES sites (id) ON DELETE SET NULL,
    ADD COLUMN shift_starts     time[] NOT NULL DEFAULT ARRAY['08:00'::time],
    ADD COLUMN shift_duration_s integer NOT NULL DEFAULT 28800
        CHECK (shift_duration_s BETWEEN 600 AND 86400),
    ADD COLUMN updated_at       timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT workplaces_shift_starts_check
        CHECK (cardinality(shift_starts) BETWEEN 1 AND 6);

ALTER TABLE devices ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

ALTER TABLE sensors
    ADD COLUMN calibrated_on date,
    ADD COLUMN updated_at    timestamptz NOT NULL DEFAULT now();
