-- Alert engines and the enterprises each one owns (QORGAU_ALERTS_ENTERPRISES). An engine claims
-- its set at start and renews the claim while it runs (heartbeat_at, the database's clock, so
-- engines on different hosts compare like with like); a claim released at a clean stop or not
-- renewed within the heartbeat timeout is not live. An engine refuses to start while a live
-- claim overlaps its own: every alert must come from exactly one engine.
CREATE TABLE alert_engines (
    client_id      text PRIMARY KEY,
    -- NULL: every enterprise (the default, one engine per broker).
    enterprises    text[],
    -- Topic filters the broker may still hold in this client id's persistent session: at the
    -- next start the engine unsubscribes those it no longer owns.
    topic_filters  text[] NOT NULL DEFAULT '{}',
    host           text NOT NULL DEFAULT '',
    started_at     timestamptz NOT NULL DEFAULT now(),
    heartbeat_at   timestamptz NOT NULL DEFAULT now(),
    stopped_at     timestamptz
);
