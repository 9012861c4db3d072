-- Alert notifications: the people who receive alerts and through which channels, the routes
-- that pick them, each enterprise's escalation policy, the stored outbox of notifications with
-- every delivery attempt, and the escalation deadlines (docs/alerts.md, "Notifications").

-- A person who receives alerts of one enterprise (keyed by code, like alerts), in their
-- language, optionally only during on-call hours (local time of the enterprise; an end before
-- the start spans midnight).
CREATE TABLE alert_recipients (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    enterprise     text NOT NULL,
    name           text NOT NULL,
    language       text NOT NULL DEFAULT 'ru' CHECK (language IN ('kk', 'ru', 'en')),
    on_call_start  time,
    on_call_end    time,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((on_call_start IS NULL) = (on_call_end IS NULL))
);
CREATE INDEX alert_recipients_enterprise_idx ON alert_recipients (enterprise);

-- Where a recipient is reached: an email address, a Telegram chat id, a phone number (SMS) or
-- a webhook URL.
CREATE TABLE alert_recipient_channels (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient_id  bigint NOT NULL REFERENCES alert_recipients (id) ON DELETE CASCADE,
    channel       text NOT NULL CHECK (channel IN ('email', 'telegram', 'sms', 'webhook')),
    address       text NOT NULL,
    UNIQUE (recipient_id, channel, address)
);

-- Who is told of which alerts: an enterprise's alerts, narrowed to one site or one workplace
-- (codes; NULL: all), from a lowest severity, of some kinds (NULL: all). Level 0 is told when
-- the alert is raised; level n when it is still unacknowledged at the n-th escalation deadline.
CREATE TABLE alert_routes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    enterprise    text NOT NULL,
    site          text,
    workplace     text,
    recipient_id  bigint NOT NULL REFERENCES alert_recipients (id) ON DELETE CASCADE,
    level         smallint NOT NULL DEFAULT 0 CHECK (level BETWEEN 0 AND 9),
    min_severity  text NOT NULL DEFAULT 'warning'
                  CHECK (min_severity IN ('info', 'warning', 'high', 'critical')),
    kinds         text[]
);
CREATE INDEX alert_routes_enterprise_idx ON alert_routes (enterprise, level);

-- An enterprise's escalation policy. Without one, alerts are notified once and never escalated.
CREATE TABLE alert_escalation_policies (
    enterprise         text PRIMARY KEY,
    escalate_after_s   integer NOT NULL DEFAULT 600 CHECK (escalate_after_s > 0),
    reminder_every_s   integer CHECK (reminder_every_s > 0),
    max_reminders      integer NOT NULL DEFAULT 3 CHECK (max_reminders >= 0),
    notify_on_resolve  boolean NOT NULL DEFAULT false
);

-- The escalation deadline of each unacknowledged alert: stored, so that it survives a restart
-- of the engine. step n is the next deadline's number (1: the first escalation).
CREATE TABLE alert_escalations (
    alert_id    uuid PRIMARY KEY REFERENCES alerts (id) ON DELETE CASCADE,
    enterprise  text NOT NULL,
    step        integer NOT NULL DEFAULT 1,
    due_at      timestamptz NOT NULL,
    done        boolean NOT NULL DEFAULT false
);
CREATE INDEX alert_escalations_due_idx ON alert_escalations (due_at) WHERE NOT done;

-- The outbox: one row per (alert, event, recipient, channel, address), unique by dedupe_key,
-- so planning the same event twice queues it once. due_at: when it should have gone (the alert's
-- transition, or the escalation deadline). next_attempt_at doubles as the lease of a sender
-- that took it.
CREATE TABLE alert_notifications (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id         uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    enterprise       text NOT NULL,
    event            text NOT NULL CHECK (event IN ('raised', 'escalation', 'reminder', 'resolved')),
    dedupe_key       text NOT NULL,
    recipient_id     bigint REFERENCES alert_recipients (id) ON DELETE SET NULL,
    recipient        text NOT NULL,
    channel          text NOT NULL,
    address          text NOT NULL,
    language         text NOT NULL,
    level            smallint NOT NULL DEFAULT 0,
    due_at           timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    last_error       text,
    UNIQUE (alert_id, dedupe_key)
);
CREATE INDEX alert_notifications_due_idx ON alert_notifications (next_attempt_at)
    WHERE state = 'pending';

-- Every delivery attempt: channel, recipient, result and time (the audit trail).
CREATE TABLE alert_notification_attempts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id  bigint NOT NULL REFERENCES alert_notifications (id) ON DELETE CASCADE,
    at               timestamptz NOT NULL,
    result           text NOT NULL CHECK (result IN ('sent', 'retry', 'failed')),
    error            text,
    duration_ms      double precision NOT NULL
);
CREATE INDEX alert_notification_attempts_idx ON alert_notification_attempts (notification_id, id);

-- Acknowledging says what was done; resolving says what caused it.
ALTER TABLE alerts
    ADD COLUMN ack_action        text,
    ADD COLUMN resolution_cause  text;
ALTER TABLE alert_events ADD COLUMN action text;
