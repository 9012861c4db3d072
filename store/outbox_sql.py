"""The statements of the edge agent's on-disk outbox (SQLite; see ``edge.outbox``).

Here because every SQL statement of Qorgau has its home in ``store/``. This module is only
string constants and imports nothing: the edge agent, which may not import the rest of
``store`` (psycopg, numpy), imports this module alone (the import contracts allow exactly that).
Parameters are SQLite's ``?`` placeholders.
"""

from __future__ import annotations

# ------------------------------------------------------------------ schema

CREATE_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
CREATE_DICTS = "CREATE TABLE IF NOT EXISTS dicts (id INTEGER PRIMARY KEY, data BLOB NOT NULL)"
# dict_id NULL: payload stored as sent (rows migrated from the first outbox layout).
CREATE_MESSAGES = (
    "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, "
    "readings INTEGER NOT NULL, dict_id INTEGER, payload BLOB NOT NULL)"
)
# The walking skeleton's layout: same sequence numbers, uncompressed payloads.
HAS_LEGACY_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'"
MIGRATE_LEGACY = (
    "INSERT INTO messages (seq, readings, dict_id, payload) "
    "SELECT seq, 0, NULL, payload FROM outbox"
)
DROP_LEGACY = "DROP TABLE outbox"
# Dictionaries no message needs any more.
DELETE_UNUSED_DICTS = (
    "DELETE FROM dicts WHERE id NOT IN "
    "(SELECT DISTINCT dict_id FROM messages WHERE dict_id IS NOT NULL)"
)

# ------------------------------------------------------------------ meta (key, integer value)

INSERT_FIRST_SEQ = "INSERT INTO meta (key, value) VALUES ('next_seq', ?)"
SELECT_META = "SELECT value FROM meta WHERE key = ?"
SET_META = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
ADD_META = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value"
)
SELECT_COUNTERS = (
    "SELECT key, value FROM meta WHERE key IN ('dropped_messages', "
    "'dropped_readings', 'refused_messages', 'refused_readings')"
)

# ------------------------------------------------------------------ compression dictionaries

INSERT_DICT = "INSERT INTO dicts (data) VALUES (?)"
SELECT_DICT = "SELECT data FROM dicts WHERE id = ?"

# ------------------------------------------------------------------ messages

INSERT_MESSAGE = "INSERT INTO messages (seq, readings, dict_id, payload) VALUES (?, ?, ?, ?)"
# The messages before ``seq`` and their stored bytes: what the disk cap may drop.
SIZE_BEFORE = "SELECT count(*), coalesce(sum(length(payload)), 0) FROM messages WHERE seq < ?"
DROP_OLDEST_BEFORE = (
    "DELETE FROM messages WHERE seq IN "
    "(SELECT seq FROM messages WHERE seq < ? ORDER BY seq LIMIT ?) "
    "RETURNING seq, readings"
)
SELECT_OLDEST_AFTER = (
    "SELECT seq, readings, dict_id, payload FROM messages WHERE seq > ? ORDER BY seq LIMIT ?"
)
DELETE_MESSAGE = "DELETE FROM messages WHERE seq = ?"
DELETE_MESSAGE_RETURNING_READINGS = "DELETE FROM messages WHERE seq = ? RETURNING readings"
ANY_MESSAGE = "SELECT 1 FROM messages LIMIT 1"
COUNT_MESSAGES = "SELECT count(*) FROM messages"
SUM_READINGS = "SELECT coalesce(sum(readings), 0) FROM messages"
