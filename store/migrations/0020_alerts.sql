-- Early warning: alerts, their audit log, per-enterprise settings, preferences and webhooks.

-- One row per alert, updated as it moves open → acknowledged → resolved. The engine holds the
-- one-open-alert-per-(subject, kind) rule; the row is what the API lists.
CREATE TABLE alerts (
    id               uuid PRIMARY KEY,
    enterprise       text NOT NULL,
    device           text NOT NULL,
    sensor           text,
    sensor_id        integer,
    workplace        text,
    quantity         text,
    substance        text,
    kind             text NOT NULL,
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'high', 'critical')),
    state            text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    value            double precision,
    unit             text NOT NULL DEFAULT '',
    threshold        double precision,
    threshold_unit   text NOT NULL DEFAULT '',
    time_left_s      double precision,
    message          text NOT NULL,
    opened_at        timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    escalations      integer NOT NULL DEFAULT 0,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    ack_comment      text,
    resolved_at      timestamptz,
    resolved_by      text,
    resolution       text
);
CREATE INDEX alerts_active_idx ON alerts (enterprise, opened_at DESC) WHERE state <> 'resolved';
CREATE INDEX alerts_opened_idx ON alerts (opened_at DESC);
CREATE INDEX alerts_sensor_idx ON alerts (sensor_id, opened_at DESC);

-- Every transition, whoever made it (the engine or a person): the audit log.
CREATE TABLE alert_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id     uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    transition   text NOT NULL
                 CHECK (transition IN ('opened', 'updated', 'escalated', 'acknowledged', 'resolved')),
    state        text NOT NULL,
    severity     text NOT NULL,
    at           timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    actor        text,
    comment      text,
    reason       text,
    value        double precision,
    message      text NOT NULL,
    source       text NOT NULL
);
CREATE INDEX alert_events_alert_idx ON alert_events (alert_id, id);

-- Per-enterprise alerting: which norms profile (thresholds, timing) and the shift schedule that
-- projections run to the end of.
CREATE TABLE alert_settings (
    enterprise_id     bigint PRIMARY KEY REFERENCES enterprises (id) ON DELETE CASCADE,
    norms_profile     text NOT NULL DEFAULT 'default',
    shift_start       time NOT NULL DEFAULT '08:00',
    shift_duration_s  double precision NOT NULL DEFAULT 28800 CHECK (shift_duration_s > 0),
    time_zone         text NOT NULL DEFAULT 'UTC'
);

-- What reaches whom: per user or per role (optionally per enterprise), the lowest severity and
-- the kinds (NULL: all kinds).
CREATE TABLE alert_preferences (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber_kind  text NOT NULL CHECK (subscriber_kind IN ('user', 'role')),
    subscriber       text NOT NULL,
    min_severity     text NOT NULL DEFAULT 'info'
                     CHECK (min_severity IN ('info', 'warning', 'high', 'critical')),
    kinds            text[],
    UNIQUE (subscriber_kind, subscriber)
);

-- Webhooks: alerts of one enterprise (or all, NULL) pushed with an HMAC-SHA256 signature. A
-- webhook may belong to a user or role, whose preferences then narrow what it receives.
CREATE TABLE alert_webhooks (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    enterprise     text,
    subscriber_kind text CHECK (subscriber_kind IN ('user', 'role')),
    subscriber     text,
    url            text NOT NULL CHECK (url ~ '^https?://'),
    secret         text NOT NULL,
    min_severity   text NOT NULL DEFAULT 'info'
                   CHECK (min_severity IN ('info', 'warning', 'high', 'critical')),
    kinds          text[],
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now()
);
