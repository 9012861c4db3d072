-- Messages ingest gave up on: processing failed, for a reason that is not the message's content
-- (that is the quarantine's) and not an outage (that is retried for as long as it lasts), more
-- than QORGAU_INGEST_MAX_ATTEMPTS times. The message is acknowledged once its row is here, so
-- one poison message never holds up the share of the stream its worker reads. The payload is
-- kept whole: `qorgau deadletters replay` runs it through ingest again once the cause is fixed.
CREATE TABLE dead_letters (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    client_id       text NOT NULL,      -- the worker that gave up
    stage           text NOT NULL,      -- 'validate' (registry, checks) or 'write' (the commit)
    topic           text NOT NULL,
    device          text,
    seq             bigint,
    attempts        integer NOT NULL,
    error           text NOT NULL,
    payload         bytea NOT NULL,
    replayed_at     timestamptz,        -- set once a replay got the message through
    replay_outcome  text                -- what the latest replay did, or why it failed
);
CREATE INDEX dead_letters_pending_idx ON dead_letters (received_at) WHERE replayed_at IS NULL;
