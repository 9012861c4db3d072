"""Dead letters: messages ingest gave up on after ``QORGAU_INGEST_MAX_ATTEMPTS`` failures that
were neither the message's content (quarantined instead) nor an outage (retried instead).

Ingest writes them in the transaction of the batch they were part of, and acknowledges them
only after that commit, so a message is either stored, quarantined, dead-lettered or still with
the broker. ``qorgau deadletters`` lists them and replays them through ingest's own checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

# The text columns take what an exception or a topic says; PostgreSQL text holds no NUL and the
# driver refuses lone surrogates, so both are escaped before they are sent.
ERROR_TEXT_MAX = 4000


def storable_text(value: str, limit: int | None = None) -> str:
    """``value`` as text PostgreSQL stores: NUL and lone surrogates escaped, cut to ``limit``."""
    text = value[:limit] if limit is not None else value
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")


class DeadLetterStage(StrEnum):
    """Where ingest gave up on a message: the stored ``stage`` and the label of its metrics."""

    VALIDATE = "validate"  # the registry lookups and checks, before the batch
    WRITE = "write"  # the batch's commit


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A row to write: what failed, where, how often, and the whole payload."""

    client_id: str
    stage: DeadLetterStage
    topic: str
    device: str | None
    seq: int | None
    attempts: int
    error: str
    payload: bytes

    def row(self) -> tuple[Any, ...]:
        return (
            storable_text(self.client_id),
            self.stage.value,
            storable_text(self.topic),
            None if self.device is None else storable_text(self.device),
            self.seq,
            self.attempts,
            storable_text(self.error, ERROR_TEXT_MAX),
            self.payload,
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A stored dead letter, as ``qorgau deadletters list`` shows it."""

    id: int
    received_at: datetime
    client_id: str
    stage: DeadLetterStage
    topic: str
    device: str | None
    seq: int | None
    attempts: int
    error: str
    payload: bytes
    replayed_at: datetime | None
    replay_outcome: str | None


async def insert_dead_letters(
    conn: AsyncConnection[Any], records: Sequence[DeadLetterRecord]
) -> None:
    """Write ``records`` (inside the caller's transaction, if any)."""
    if not records:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            """
            INSERT INTO dead_letters (client_id, stage, topic, device, seq, attempts, error,
                                      payload)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            """,
            [r.row() for r in records],
        )


async def list_dead_letters(
    conn: AsyncConnection[Any],
    *,
    ids: Sequence[int] | None = None,
    include_replayed: bool = False,
    limit: int | None = None,
) -> list[DeadLetter]:
    """Dead letters, oldest first: those not replayed yet unless ``include_replayed``; only
    ``ids`` when given (replayed or not: asking by id is asking for those)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT id, received_at, client_id, stage, topic, device, seq, attempts, error, payload,
               replayed_at, replay_outcome
        FROM dead_letters
        WHERE (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
          AND (%(ids)s::bigint[] IS NOT NULL OR %(all)s OR replayed_at IS NULL)
        ORDER BY id
        LIMIT %(limit)s
        """,
        {"ids": list(ids) if ids is not None else None, "all": include_replayed, "limit": limit},
    )
    return [
        DeadLetter(
            **{**row, "stage": DeadLetterStage(row["stage"]), "payload": bytes(row["payload"])}
        )
        for row in await cur.fetchall()
    ]


async def count_pending_dead_letters(conn: AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def record_replay(
    conn: AsyncConnection[Any], dead_letter_id: int, *, done: bool, outcome: str
) -> None:
    """Note a replay: ``done`` sets ``replayed_at`` (the message went through ingest: stored,
    a duplicate, or quarantined); otherwise only the outcome (why it failed again) changes and
    ``attempts`` grows."""
    await conn.execute(
        """
        UPDATE dead_letters
        SET replay_outcome = %s,
            replayed_at = CASE WHEN %s THEN now() ELSE replayed_at END,
            attempts = attempts + CASE WHEN %s THEN 0 ELSE 1 END
        WHERE id = %s
        """,
        [storable_text(outcome, ERROR_TEXT_MAX), done, done, dead_letter_id],
    )
