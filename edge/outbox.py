"""The on-disk outbox: every message stays here until the broker has acknowledged it.

SQLite in WAL mode, one row per message keyed by its sequence number. What it guarantees:

- **Nothing unacknowledged is lost to a crash.** A message is committed before it is first
  published and deleted only after its PUBACK. ``synchronous=FULL`` (the default) makes each
  commit durable before ``append`` returns, so a published sequence number survives a power cut
  too; ``normal`` survives a process kill (SIGKILL) but may lose the last commits on power loss.
- **A sequence number is never reused.** The next number lives in the same database and is
  advanced in the same transaction as the insert; an exclusive lock file stops a second agent
  from opening the same outbox. A new outbox starts at the current UTC time in milliseconds, so
  a device whose outbox was wiped or replaced continues above every number it used before
  (unless it sent more than 1,000 messages a second over its lifetime), instead of restarting
  at 0 and having ingest discard its new messages as duplicates of old ones.
- **Replay is in order**: ``oldest()`` returns messages by ascending sequence number.
- **Bounded disk use.** Payloads are stored zlib-compressed against a preset dictionary (the
  first message of the run: consecutive messages of a device differ in little but their
  values, so a 1 s message of 8 channels shrinks from ~150 to ~15 bytes a reading). When the
  pages in use exceed ``max_bytes`` the oldest messages are dropped until use is back under
  the low-water mark, and the exact number of messages and readings dropped is added to
  counters persisted in the same transaction (reported in the device status and the log).
  The WAL file adds at most ``WAL_LIMIT_BYTES`` beyond the cap.
"""

from __future__ import annotations

import fcntl
import math
import os
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from store import outbox_sql as sql
from vocabulary.errors import QorgauError

SCHEMA_VERSION = 1
DEFAULT_MAX_BYTES = 128 * 1024 * 1024
# Checkpoints keep the WAL near this size; ``journal_size_limit`` truncates it back after one.
WAL_LIMIT_BYTES = 4 * 1024 * 1024
# After an overflow, drop down to this share of the cap so that the next few appends do not
# each drop again.
LOW_WATER = 0.95

Synchronous = Literal["full", "normal"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class OutboxError(QorgauError):
    """The outbox cannot be opened or used."""


class OutboxLockedError(OutboxError):
    """Another agent holds this outbox."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    seq: int
    payload: bytes
    readings: int


@dataclass(frozen=True, slots=True)
class DropReport:
    """Messages removed before the broker acknowledged them."""

    messages: int = 0
    readings: int = 0
    first_seq: int | None = None
    last_seq: int | None = None

    def __bool__(self) -> bool:
        return self.messages > 0


@dataclass(frozen=True, slots=True)
class OutboxCounters:
    """Totals over the outbox's lifetime, persisted with the data they describe."""

    dropped_messages: int = 0  # removed oldest-first to stay under the disk cap
    dropped_readings: int = 0
    refused_messages: int = 0  # refused for good by the broker (e.g. packet too large)
    refused_readings: int = 0


def _first_seq_from_clock() -> int:
    return max(0, time.time_ns() // 1_000_000)


def _micros(t: datetime) -> int:
    if t.tzinfo is None:
        raise ValueError("cursor time must be timezone-aware")
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class Outbox:
    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        synchronous: Synchronous = "full",
        first_seq: Callable[[], int] = _first_seq_from_clock,
    ) -> None:
        if max_bytes < 64 * 1024:
            raise ValueError(f"an outbox cap of {max_bytes} bytes is too small (64 KiB minimum)")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self._lock_fd = self._lock(path)
        try:
            # The agent builds the outbox in one thread and may run it in another, never both
            # at once.
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._setup(synchronous, first_seq)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._dict_id: int | None = None
        self._dict: bytes | None = None
        self._decompress_dicts: dict[int, bytes] = {}

    # ------------------------------------------------------------------ setup

    @staticmethod
    def _lock(path: Path) -> int:
        fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutboxLockedError(
                f"outbox {path} is in use by another agent: run one agent per device"
            ) from None
        return fd

    def _setup(self, synchronous: Synchronous, first_seq: Callable[[], int]) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise OutboxError(
                f"outbox {self.path} was written by a newer agent (schema {version}); "
                "upgrade this agent"
            )
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(sql.CREATE_META)
            db.execute(sql.CREATE_DICTS)
            db.execute(sql.CREATE_MESSAGES)
            if db.execute(sql.HAS_LEGACY_TABLE).fetchone():
                # The walking skeleton's layout: same sequence numbers, uncompressed payloads.
                db.execute(sql.MIGRATE_LEGACY)
                db.execute(sql.DROP_LEGACY)
            if self._meta("next_seq") is None:
                db.execute(sql.INSERT_FIRST_SEQ, (first_seq(),))
            # Dictionaries no message needs any more.
            db.execute(sql.DELETE_UNUSED_DICTS)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()
        os.close(self._lock_fd)

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ meta

    def _meta(self, key: str) -> int | None:
        row = self._db.execute(sql.SELECT_META, (key,)).fetchone()
        return int(row[0]) if row else None

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute(sql.SET_META, (key, value))

    def _add_meta(self, key: str, delta: int) -> None:
        self._db.execute(sql.ADD_META, (key, delta))

    def next_seq(self) -> int:
        """The number the next appended message will get."""
        value = self._meta("next_seq")
        assert value is not None
        return value

    def cursor(self) -> datetime | None:
        """The driver position stored with the last message: samples before it are in the
        outbox or already delivered, so a restarted driver that can resume continues here."""
        value = self._meta("cursor_us")
        return None if value is None else _EPOCH + timedelta(microseconds=value)

    def counters(self) -> OutboxCounters:
        rows = dict(self._db.execute(sql.SELECT_COUNTERS).fetchall())
        return OutboxCounters(**{k: int(v) for k, v in rows.items()})

    # ------------------------------------------------------------------ compression

    def _compress(self, payload: bytes) -> tuple[int, bytes]:
        if self._dict is None:
            # The first message of this run is the dictionary for the run: it shares the
            # device's channel names, units and layout with every following message.
            cur = self._db.execute(sql.INSERT_DICT, (payload,))
            assert cur.lastrowid is not None
            self._dict_id, self._dict = int(cur.lastrowid), payload
        assert self._dict_id is not None
        packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, self._dict)
        return self._dict_id, packer.compress(payload) + packer.flush()

    def _decompress(self, dict_id: int | None, blob: bytes) -> bytes:
        if dict_id is None:
            return blob
        zdict = self._decompress_dicts.get(dict_id)
        if zdict is None:
            row = self._db.execute(sql.SELECT_DICT, (dict_id,)).fetchone()
            if row is None:
                raise OutboxError(f"outbox {self.path} lacks compression dictionary {dict_id}")
            zdict = self._decompress_dicts[dict_id] = bytes(row[0])
        unpacker = zlib.decompressobj(-15, zdict)
        return unpacker.decompress(blob) + unpacker.flush()

    # ------------------------------------------------------------------ writing

    def append(
        self,
        build: Callable[[int], bytes],
        *,
        readings: int,
        cursor: datetime | None = None,
    ) -> tuple[int, DropReport]:
        """Store the message ``build(seq)`` under the next sequence number (see
        ``append_many``)."""
        seqs, dropped = self.append_many([(build, readings)], cursor=cursor)
        return seqs[0], dropped

    def append_many(
        self,
        messages: Sequence[tuple[Callable[[int], bytes], int]],
        *,
        cursor: datetime | None = None,
    ) -> tuple[list[int], DropReport]:
        """Store messages ``(build, readings)`` as ``build(seq)`` under consecutive sequence
        numbers. One transaction takes the numbers, stores the messages and the driver
        ``cursor``, and applies the disk cap, so a crash leaves either all of it or none.
        Returns the numbers and what the cap dropped (usually nothing)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            first = seq = self.next_seq()
            for build, readings in messages:
                dict_id, blob = self._compress(build(seq))
                db.execute(sql.INSERT_MESSAGE, (seq, readings, dict_id, blob))
                seq += 1
            self._set_meta("next_seq", seq)
            if cursor is not None:
                self._set_meta("cursor_us", _micros(cursor))
            dropped = self._enforce_cap(keep_from_seq=first)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            # The dictionary row, if this call created it, is gone with the rollback.
            self._dict_id = self._dict = None
            raise
        return list(range(first, seq)), dropped

    def used_bytes(self) -> int:
        """Bytes of the database file that hold data (free pages are reused, not counted)."""
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _enforce_cap(self, keep_from_seq: int) -> DropReport:
        if self.used_bytes() <= self.max_bytes:
            return DropReport()
        target = int(self.max_bytes * LOW_WATER)
        messages = readings = 0
        seqs: list[int] = []
        while (used := self.used_bytes()) > target:
            count, stored = self._db.execute(sql.SIZE_BEFORE, (keep_from_seq,)).fetchone()
            if count == 0:
                break  # never drop what this transaction is writing
            per_row = max(1.0, stored / count)
            batch = max(1, min(int(count), math.ceil((used - target) / per_row)))
            rows = self._db.execute(sql.DROP_OLDEST_BEFORE, (keep_from_seq, batch)).fetchall()
            messages += len(rows)
            readings += sum(int(r[1]) for r in rows)
            seqs += (int(r[0]) for r in rows)
        if not messages:
            return DropReport()
        self._add_meta("dropped_messages", messages)
        self._add_meta("dropped_readings", readings)
        return DropReport(messages, readings, min(seqs), max(seqs))

    def oldest(self, limit: int, after_seq: int = -1) -> list[OutboxEntry]:
        """Up to ``limit`` messages with a number above ``after_seq``, oldest first."""
        rows = self._db.execute(sql.SELECT_OLDEST_AFTER, (after_seq, limit)).fetchall()
        return [
            OutboxEntry(int(seq), self._decompress(dict_id, bytes(blob)), int(n))
            for seq, n, dict_id, blob in rows
        ]

    def remove(self, seqs: Iterable[int]) -> None:
        """Forget messages the broker acknowledged."""
        keys = [(s,) for s in seqs]
        if keys:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(sql.DELETE_MESSAGE, keys)

    def discard_refused(self, seq: int) -> int:
        """Remove a message the broker refused for good, counting it; returns its readings."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute(sql.DELETE_MESSAGE_RETURNING_READINGS, (seq,)).fetchone()
            readings = int(row[0]) if row else 0
            if row:
                self._add_meta("refused_messages", 1)
                self._add_meta("refused_readings", readings)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return readings

    # ------------------------------------------------------------------ reading

    def is_empty(self) -> bool:
        """Whether everything was acknowledged (cheap, unlike counting a long backlog)."""
        return self._db.execute(sql.ANY_MESSAGE).fetchone() is None

    def pending(self) -> int:
        """Messages not yet acknowledged."""
        return int(self._db.execute(sql.COUNT_MESSAGES).fetchone()[0])

    def pending_readings(self) -> int:
        row = self._db.execute(sql.SUM_READINGS).fetchone()
        return int(row[0])
