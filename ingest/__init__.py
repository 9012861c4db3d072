"""The async service between the broker and the database.

Subscribe (MQTT 5 shared subscription) → validate against the wire format and the registry →
quarantine what is bad with a reason → de-duplicate by (device, seq) → COPY in batches →
acknowledge each message to the broker only after its readings are committed.
"""
