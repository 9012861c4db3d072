-- What became of a webhook's deliveries, for the admin who lists the webhooks: the last error
-- (an invalid URL, a refusal by the receiver, or giving up after the retries) and when, and the
-- last delivery that succeeded. An error is current when last_error_at is later than
-- last_delivered_at.
ALTER TABLE alert_webhooks
    ADD COLUMN last_error        text,
    ADD COLUMN last_error_at     timestamptz,
    ADD COLUMN last_delivered_at timestamptz;
