"""Items → one transaction: readings, quarantine and dead letters, exactly once.

- A redelivered message is stored once: ``(device, seq)`` is claimed in ``ingested_messages`` in
  the same transaction as its readings, and a second copy finds it there and is skipped.
- A commit whose outcome is unknown (the connection died while COMMIT was in flight) is settled
  by asking PostgreSQL for the transaction's status after reconnecting, so its messages are
  acknowledged and its readings reach listeners exactly as if the answer had arrived.
- Outages are not failures: they are retried for as long as they last, holding the
  acknowledgements. Any other failure is counted; after ``QORGAU_INGEST_MAX_ATTEMPTS`` the
  batch is committed one message at a time, so that only the message(s) failing alone become
  dead letters.

The SQL is in ``store.ingest_commit``, ``store.writes`` and ``store.deadletters``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from ingest.items import CommitResult, Item
from ingest.metrics import IngestMetrics
from ingest.quarantine import describe
from ingest.settings import IngestSettings
from store.connection import DatabaseError, connect_async, is_connection_problem
from store.deadletters import DeadLetterStage, insert_dead_letters
from store.ingest_commit import claim_messages, current_xact_id, insert_quarantine, xact_status
from store.migrate import Backend, current_backend_async
from store.readings import ReadingBlock, days_of, ensure_day_partitions
from store.writes import write_readings
from vocabulary.backoff import backoff_delay_s

log = logging.getLogger(__name__)

Conn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True, slots=True)
class _InDoubt:
    """A transaction whose COMMIT was sent but not answered."""

    xid: str
    result: CommitResult


def transient(exc: BaseException) -> bool:
    """An outage (retried without counting) rather than a failure (counted towards a dead
    letter): the server or the connection went away, a deadlock or serialization conflict with
    another worker (psycopg's ``OperationalError`` family), an unanswered COMMIT being settled."""
    return is_connection_problem(exc) or isinstance(
        exc, psycopg.InterfaceError | OSError | DatabaseError
    )


class Committer:
    """The writer's database side: its connection, and what it knows of the database's health
    (``database_error``: None while writes succeed)."""

    def __init__(self, settings: IngestSettings, metrics: IngestMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.database_error: str | None = None
        self._conn: Conn | None = None
        self._backend: Backend | None = None
        self._days_ready: set[int] = set()
        self._attempt: _InDoubt | None = None

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._conn.close()
            self._conn = None

    async def commit_with_retry(self, batch: list[Item]) -> CommitResult:
        attempt = 0  # outages: retried for as long as they last, holding the acknowledgements
        failures = 0  # anything else: counted, then the batch is split and the culprit set aside
        in_doubt: _InDoubt | None = None
        while True:
            try:
                if in_doubt is not None:
                    settled = await self._settle(in_doubt)
                    if settled is not None:
                        self._database_ok()
                        return settled
                    in_doubt = None
                result = await self.commit(batch)
                self._database_ok()
                return result
            # Whatever fails a write is either an outage (waited out) or counted towards a dead
            # letter: no failure may stop the writer, or it would hold the stream for good.
            except Exception as exc:  # noqa: BLE001
                if self._attempt is not None:
                    in_doubt = self._attempt
                    self._attempt = None
                self.metrics.database_ok.set(0)
                self.database_error = describe(exc)
                await self.close()
                if not transient(exc):
                    failures += 1
                    if await self._failed(batch, failures):
                        return await self._isolate(batch, failures, exc)
                    continue
                # Connection loss, a restart, a deadlock with another worker: transient for
                # data that passed validation.
                attempt += 1
                self.metrics.db_retries.inc()
                delay = backoff_delay_s(attempt, cap_s=self.settings.ingest_retry_max_s)
                log.log(
                    logging.WARNING if is_connection_problem(exc) else logging.ERROR,
                    "database write of %d messages failed (%s); holding their acknowledgements "
                    "and retrying in %.1f s",
                    len(batch),
                    self.database_error,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _failed(self, batch: list[Item], failures: int) -> bool:
        """Count a failure that is not an outage; True when it is time to isolate the culprit,
        else after a pause for the next attempt."""
        self.metrics.processing_failures.labels(DeadLetterStage.WRITE).inc()
        log.error(
            "database write of %d messages failed (attempt %d of %d): %s",
            len(batch),
            failures,
            self.settings.ingest_max_attempts,
            self.database_error,
            exc_info=failures == 1,
        )
        poisoned = len(batch) == 1 and batch[0].dead_letter is not None
        if failures >= self.settings.ingest_max_attempts and not poisoned:
            return True
        # A dead letter that cannot be written either (no dead_letters table?): hold it,
        # unacknowledged, and say so until somebody fixes the database.
        await asyncio.sleep(backoff_delay_s(failures, cap_s=self.settings.ingest_retry_max_s))
        return False

    async def _isolate(self, batch: list[Item], failures: int, exc: BaseException) -> CommitResult:
        """A batch failed ``failures`` times: commit its messages one at a time, so that only
        the one(s) that fail alone become dead letters."""
        if len(batch) > 1:
            log.warning("committing the %d messages of the failing batch one at a time", len(batch))
            return CommitResult.merge([await self.commit_with_retry([item]) for item in batch])
        item = batch[0]
        item.give_up(self.settings.ingest_client_id, DeadLetterStage.WRITE, failures, exc)
        log.error(
            "gave up on the message %s device=%s seq=%s after %d failed writes; it goes to "
            "dead_letters (see `qorgau deadletters list`)",
            item.topic,
            item.dead_letter.device if item.dead_letter else None,
            item.seq,
            failures,
        )
        return await self.commit_with_retry(batch)

    def _database_ok(self) -> None:
        if self.database_error is not None:
            log.info("database writes succeed again")
        self.database_error = None
        self.metrics.database_ok.set(1)

    async def _settle(self, in_doubt: _InDoubt) -> CommitResult | None:
        """The result of a transaction whose COMMIT went unanswered, if it did commit; None if
        it did not (then the batch is written again; ``ingested_messages`` keeps that safe)."""
        conn = await self._connection()
        status = await xact_status(conn, in_doubt.xid)
        if status == "in progress":
            # The server has not noticed the dead connection yet; ask again after a pause.
            raise DatabaseError(f"transaction {in_doubt.xid} is still in progress")
        log.info("transaction %s of an unanswered COMMIT: %s", in_doubt.xid, status or "unknown")
        return in_doubt.result if status == "committed" else None

    async def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            self._conn = await connect_async(
                self.settings.database_url, self.settings.database_schema, autocommit=True
            )
        if self._backend is None:
            self._backend = await current_backend_async(self._conn)
        return self._conn

    async def _ensure_partitions(self, conn: Conn, block: ReadingBlock) -> None:
        missing = days_of(block.times_us) - self._days_ready
        if missing:
            # In its own short transaction: partition DDL must not sit inside the data
            # transaction, where it would lock against other workers' COPY.
            await ensure_day_partitions(conn, missing)
            self._days_ready |= missing

    async def commit(self, batch: list[Item]) -> CommitResult:
        """One transaction for the batch; raises what the database raised."""
        started = time.perf_counter()
        self._attempt = None
        conn = await self._connection()
        backend = self._backend or "plain"
        # First copy of each (device, seq) within the batch; later copies are redeliveries.
        first_of: dict[tuple[int, int], Item] = {}
        keyless: list[Item] = []
        for item in batch:
            key = item.key
            if key is None:
                keyless.append(item)
            else:
                first_of.setdefault(key, item)
        candidates = ReadingBlock.concat(
            item.block_of() for item in first_of.values() if item.readings
        )
        if backend == "plain":
            await self._ensure_partitions(conn, candidates)
        async with conn.transaction():
            xid = await current_xact_id(conn)
            new_keys: set[tuple[int, int]] = set()
            if first_of:
                # Sorted, so that two workers inserting overlapping keys lock them in one order.
                keys = sorted(first_of)
                new_keys = await claim_messages(conn, keys, [first_of[k].readings for k in keys])
            fresh = [first_of[k] for k in first_of if k in new_keys]
            if len(fresh) == len(first_of):
                block = candidates
            else:
                block = ReadingBlock.concat(item.block_of() for item in fresh if item.readings)
            await write_readings(conn, block, backend=backend)
            # Messages that never got a key (unparseable, unknown device) are quarantined as
            # received; a redelivery of one of those is quarantined again.
            records = [rec for item in fresh + keyless for rec in item.quarantine]
            dead = [item.dead_letter for item in keyless if item.dead_letter is not None]
            await insert_dead_letters(conn, dead)
            await insert_quarantine(conn, [r.row() for r in records])
            result = CommitResult(
                fresh=fresh,
                keyless=keyless,
                duplicates=len(batch) - len(fresh) - len(keyless),
                readings=len(block),
                quarantine=records,
                dead_letters=dead,
            )
            # From here until the COMMIT is answered, the outcome is in doubt if we fail.
            self._attempt = _InDoubt(xid, result)
        self._attempt = None
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        return result
