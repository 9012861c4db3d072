-- Registry: who measures what, where.
CREATE TABLE enterprises (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    name            text NOT NULL,
    region          text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workplaces (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    enterprise_id   bigint NOT NULL REFERENCES enterprises (id) ON DELETE CASCADE,
    code            text NOT NULL,
    name            text NOT NULL,
    profession      text,
    headcount       integer NOT NULL DEFAULT 1 CHECK (headcount >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (enterprise_id, code)
);

CREATE TABLE devices (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    enterprise_id   bigint NOT NULL REFERENCES enterprises (id) ON DELETE CASCADE,
    code            text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    name            text,
    workplace_id    bigint REFERENCES workplaces (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sensors (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id       bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    code            text NOT NULL,
    quantity        text NOT NULL,
    unit            text NOT NULL,
    substance       text,
    workplace_id    bigint REFERENCES workplaces (id) ON DELETE SET NULL,
    -- Physical range of the instrument; values outside it are quarantined as out_of_range.
    min_value       double precision,
    max_value       double precision,
    calibration_due date,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, code)
);
CREATE INDEX sensors_workplace_idx ON sensors (workplace_id);
