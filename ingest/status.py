"""What ``/health`` reports of a worker (``WorkerStatus``), and the facts it is made of that no
other part keeps (``Health``: the last commit, dead letters, failing background jobs)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What /health reports."""

    healthy: bool
    broker_connected: bool  # connected and subscribed to the readings (the same thing here)
    database_ok: bool
    writer_running: bool
    queue_messages: int
    unacknowledged: int
    last_commit_age_s: float | None
    database_error: str | None
    last_commit_at: datetime | None = None
    # Given up on since this worker started (the table keeps them all): not unhealthy, since a
    # restart would not help, but somebody must look (`qorgau deadletters list`).
    dead_letters: int = 0
    last_dead_letter_at: datetime | None = None
    # TimescaleDB jobs whose latest run failed, as the maintenance job last saw them: the
    # rollups or compression fall behind, but ingest itself is healthy.
    failing_jobs: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat(timespec="milliseconds")

        return {
            "status": "ok" if self.healthy else "degraded",
            "subscribed": self.broker_connected,
            "broker_connected": self.broker_connected,
            "database_ok": self.database_ok,
            "writer_running": self.writer_running,
            "queue_messages": self.queue_messages,
            "unacknowledged": self.unacknowledged,
            "last_commit_at": iso(self.last_commit_at),
            "last_commit_age_s": self.last_commit_age_s,
            "database_error": self.database_error,
            "dead_letters": self.dead_letters,
            "last_dead_letter_at": iso(self.last_dead_letter_at),
            "failing_jobs": list(self.failing_jobs),
        }


@dataclass(slots=True)
class Health:
    last_commit: float | None = None  # time.monotonic()
    last_commit_at: datetime | None = None
    dead_letters: int = 0
    last_dead_letter_at: datetime | None = None
    failing_jobs: tuple[str, ...] = ()
    unacknowledged: int = 0  # admitted, not yet acknowledged to the broker

    def committed(self, dead_letters: int) -> None:
        self.last_commit = time.monotonic()
        self.last_commit_at = datetime.now(UTC)
        if dead_letters:
            self.dead_letters += dead_letters
            self.last_dead_letter_at = self.last_commit_at

    def status(
        self,
        *,
        broker_connected: bool,
        writer_running: bool,
        database_error: str | None,
        queued: int,
    ) -> WorkerStatus:
        database_ok = database_error is None
        return WorkerStatus(
            healthy=writer_running and database_ok and broker_connected,
            broker_connected=broker_connected,
            database_ok=database_ok,
            writer_running=writer_running,
            queue_messages=queued,
            unacknowledged=self.unacknowledged,
            last_commit_age_s=(
                None if self.last_commit is None else time.monotonic() - self.last_commit
            ),
            database_error=database_error,
            last_commit_at=self.last_commit_at,
            dead_letters=self.dead_letters,
            last_dead_letter_at=self.last_dead_letter_at,
            failing_jobs=self.failing_jobs,
        )
