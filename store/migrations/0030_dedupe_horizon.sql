-- Pruning of the exactly-once bookkeeping (store/maintenance.py) deletes the oldest rows in
-- small batches by received_at; without this index every batch would scan the whole table.
-- Built inside the migration's transaction (CONCURRENTLY is not possible there): on a large
-- existing table ingest waits for the build once, at the upgrade.
CREATE INDEX ingested_messages_received_idx ON ingested_messages (received_at);
