-- What assessors enter per workplace: the ПР indicators sensors cannot give (Т, Об, СИЗ, З on
-- 1..5) and classes of factors sensors don't measure. Rows are never updated: the newest row per
-- (workplace, indicator) or (workplace, factor) is the one in force, older rows are the history.
CREATE TABLE indicator_assessments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workplace_id    bigint NOT NULL REFERENCES workplaces (id) ON DELETE CASCADE,
    indicator       text NOT NULL CHECK (indicator IN ('T', 'Ob', 'SIZ', 'Z')),
    value           smallint NOT NULL CHECK (value BETWEEN 1 AND 5),
    assessed_by     text NOT NULL,
    assessed_on     date NOT NULL,
    evidence        text,
    entered_at      timestamptz NOT NULL DEFAULT now(),
    entered_by      bigint
);
CREATE INDEX indicator_assessments_current_idx
    ON indicator_assessments (workplace_id, indicator, assessed_on DESC, id DESC);

CREATE TABLE factor_assessments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workplace_id    bigint NOT NULL REFERENCES workplaces (id) ON DELETE CASCADE,
    factor          text NOT NULL CHECK (factor ~ '^[a-z][a-z0-9_]{0,63}$'),
    working_class   text NOT NULL CHECK (working_class IN ('1', '2', '3.1', '3.2', '3.3', '3.4', '4')),
    assessed_by     text NOT NULL,
    assessed_on     date NOT NULL,
    evidence        text,
    entered_at      timestamptz NOT NULL DEFAULT now(),
    entered_by      bigint
);
CREATE INDEX factor_assessments_current_idx
    ON factor_assessments (workplace_id, factor, assessed_on DESC, id DESC);
