-- Exactly-once bookkeeping and quarantine for ingest.

-- One row per stored message: a redelivered (device, seq) finds its row and is skipped, in the
-- same transaction that would have written its readings.
CREATE TABLE ingested_messages (
    device_id    bigint NOT NULL,
    seq          bigint NOT NULL,
    readings     integer NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, seq)
);

CREATE TABLE quarantine (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at    timestamptz NOT NULL DEFAULT now(),
    topic          text NOT NULL,
    device         text,
    seq            bigint,
    sensor         text,
    reason         text NOT NULL,
    detail         text NOT NULL,
    payload        bytea,
    payload_bytes  integer NOT NULL
);
CREATE INDEX quarantine_received_idx ON quarantine (received_at);
CREATE INDEX quarantine_reason_idx ON quarantine (reason, received_at);
