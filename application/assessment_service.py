"""The assessment service: keeps ``shift_assessments`` current as readings arrive.

Every pass takes the change records that storing readings left (``store.shift_assessments``),
finds the shifts of the workplaces' schedules that hold them, assesses those shifts from the
minute rollups (``application.assessments.assess_shifts``), skips the ones whose inputs are
unchanged, and stores the rest, in one transaction with the removal of the change records. A
running shift is thus stored again within one pass of new readings, a late reading recomputes
its own shift, and a norms change is applied by :func:`rebuild`.

Two services may run at once: the one holding the schema's advisory lock works, the other waits
as a standby and takes over when the first one's session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from multiprocessing import get_context
from typing import Any

from psycopg import AsyncConnection
from psycopg.errors import OperationalError

from analytics import AnalyticsError, Norms, load_norms
from application.assessments import (
    AssessedShift,
    Profiles,
    assess_shifts,
    load_inputs,
    schedule_of,
)
from application.schedule import Shift, local_day, overlapping, shifts_between
from application.settings import AssessmentSettings
from store import shift_assessments as stored
from store.catalog import Row, Scope, workplaces_of
from store.connection import DatabaseUnavailableError, connect_async
from vocabulary.backoff import supervise

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PassResult:
    changes: int = 0
    workplaces: int = 0
    shifts_assessed: int = 0
    shifts_written: int = 0
    settled: int = 0
    oldest_change: datetime | None = None


@dataclass(slots=True)
class ServiceStatus:
    leader: bool = False
    last_pass_at: datetime | None = None
    last_lag_s: float | None = None
    shifts_written: int = 0
    passes: int = 0
    errors: int = 0
    last_error: str | None = None
    recent_lags_s: list[float] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.last_error is None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.healthy else "degraded",
            "leader": self.leader,
            "last_pass_at": None if self.last_pass_at is None else self.last_pass_at.isoformat(),
            "last_lag_s": self.last_lag_s,
            "shifts_written": self.shifts_written,
            "passes": self.passes,
            "errors": self.errors,
            "last_error": self.last_error,
        }


def shifts_to_assess(
    workplace: Row, spans: Sequence[tuple[datetime, datetime]], now: datetime
) -> list[Shift]:
    """The started shifts of ``workplace``'s schedule that hold an instant of any span (not
    older than ``store.shift_assessments.REACH``)."""
    schedule = schedule_of(workplace)
    found: dict[datetime, Shift] = {}
    for lo, hi in spans:
        for s in overlapping(schedule, max(lo, now - stored.REACH), min(hi, now)):
            if s.start <= now:
                found[s.start] = s
    return [found[k] for k in sorted(found)]


async def assess_workplaces(
    conn: AsyncConnection[Any],
    profiles: Profiles,
    workplaces: Sequence[Row],
    shifts: dict[int, list[Shift]],
    *,
    now: datetime,
    late_s: float,
    force: bool = False,
) -> tuple[int, int]:
    """Assess the given shifts of ``workplaces`` and store the changed ones (caller's
    transaction). Returns (shifts assessed, shifts written)."""
    if not any(shifts.get(int(w["id"])) for w in workplaces):
        return 0, 0
    inputs = await load_inputs(conn, profiles, workplaces, shifts)
    stored_digests = (
        {}
        if force
        else await stored.digests(
            conn,
            {int(w["id"]): [s.start for s in shifts.get(int(w["id"]), [])] for w in workplaces},
        )
    )
    assessed = 0
    rows: list[AssessedShift] = []
    for w in workplaces:
        wid = int(w["id"])
        todo = shifts.get(wid, [])
        if not todo:
            continue
        known = None if force else stored_digests[wid]
        assessed += len(todo)
        try:
            rows.extend(assess_shifts(profiles.of(w), inputs[wid], todo, now, late_s, known))
        except AnalyticsError as exc:
            # One workplace whose data the numeric core refuses must not stop the others: its
            # stored shifts stay as they were, and the log says what to fix.
            log.error("assessments: workplace %s (%s) not assessed: %s", wid, w["code"], exc)
    written = await stored.upsert(conn, [r.row() for r in rows])
    return assessed, written


class AssessmentService:
    def __init__(
        self,
        settings: AssessmentSettings,
        norms: Norms,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.profiles = Profiles(norms)
        self.clock = clock
        self.state = ServiceStatus()

    def status(self) -> ServiceStatus:
        return self.state

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop`` is set; reconnects after a database outage."""

        async def session() -> None:
            self.state.leader = False
            async with await connect_async(
                self.settings.database_url, self.settings.database_schema, autocommit=True
            ) as conn:
                await self._lead(conn, stop)

        def lost(exc: BaseException, delay: float) -> None:
            self.state.leader = False
            self.state.errors += 1
            self.state.last_error = f"database unavailable: {exc}"
            log.warning("assessments: database unavailable (%s); retrying in %.1f s", exc, delay)

        await supervise(
            session,
            stop,
            retry_on=(OperationalError, DatabaseUnavailableError),
            cap_s=30.0,
            on_retry=lost,
        )

    async def _lead(self, conn: AsyncConnection[Any], stop: asyncio.Event) -> None:
        interval = self.settings.assess_interval_s
        while not stop.is_set():
            if not self.state.leader:
                self.state.leader = await stored.try_leader_lock(conn)
                if self.state.leader:
                    log.info("assessments: this service now keeps the shift assessments")
            if self.state.leader:
                started = time.monotonic()
                result = await self.pass_once(conn)
                self._record(result)
                if result.changes >= self.settings.assess_batch_changes:
                    continue  # more waiting: no pause
                pause = max(interval - (time.monotonic() - started), 0.0)
            else:
                pause = interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

    def _record(self, result: PassResult) -> None:
        now = self.clock()
        self.state.passes += 1
        self.state.last_pass_at = now
        self.state.last_error = None
        self.state.shifts_written += result.shifts_written
        if result.oldest_change is not None:
            self.state.last_lag_s = (now - result.oldest_change).total_seconds()
        if result.changes or result.settled:
            # The shift in progress changes with every pass: that is routine (DEBUG, and
            # /health and /metrics count it). Settled shifts and a backlog are news (INFO).
            news = result.settled or result.changes >= self.settings.assess_batch_changes
            log.log(
                logging.INFO if news else logging.DEBUG,
                "assessments: %d change(s) of %d workplace(s): %d shift(s) assessed, %d stored, "
                "%d status change(s)",
                result.changes,
                result.workplaces,
                result.shifts_assessed,
                result.shifts_written,
                result.settled,
            )

    async def pass_once(self, conn: AsyncConnection[Any]) -> PassResult:
        """One pass in one transaction: take changes, assess their shifts, store them, settle
        the statuses of shifts that have ended."""
        result = PassResult()
        now = self.clock()
        late_s = self.settings.ingest_max_past_s
        async with conn.transaction():
            changes = await stored.take_changes(conn, self.settings.assess_batch_changes)
            result.changes = len(changes)
            spans: dict[int, list[tuple[datetime, datetime]]] = {}
            for c in changes:
                spans.setdefault(c.workplace_id, []).append((c.lo, c.hi))
            ids = sorted(spans)
            step = self.settings.assess_batch_workplaces
            for k in range(0, len(ids), step):
                workplaces = await workplaces_of(conn, Scope(), ids=ids[k : k + step])
                todo = {
                    int(w["id"]): shifts_to_assess(w, spans[int(w["id"])], now) for w in workplaces
                }
                assessed, written = await assess_workplaces(
                    conn, self.profiles, workplaces, todo, now=now, late_s=late_s
                )
                result.workplaces += len(workplaces)
                result.shifts_assessed += assessed
                result.shifts_written += written
            result.settled = await stored.settle_statuses(conn, now, late_s)
        result.oldest_change = min((c.noted_at for c in changes), default=None)
        return result


async def _since_at(conn: AsyncConnection[Any], since: date | None) -> datetime | None:
    """The instant a rebuild starts from: a day before ``since`` (local dates run ahead of UTC
    in the east), or before the oldest rollup; None when there are no rollups."""
    if since is not None:
        return datetime.combine(since, datetime.min.time(), tzinfo=UTC) - timedelta(days=1)
    first = await stored.first_rollup(conn)
    return None if first is None else first - timedelta(days=1)


async def rebuild(
    conn: AsyncConnection[Any],
    norms: Norms,
    *,
    since: date | None,
    late_s: float,
    workplace_ids: Sequence[int] | None = None,
    batch_workplaces: int = 50,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    since_at: datetime | None = None,
) -> tuple[int, int]:
    """Assess every shift since ``since`` (local date; default: the oldest rollup) of every
    workplace with data, replacing what is stored. Commits per batch of workplaces; returns
    (workplaces, shifts stored). ``progress`` is called with the shifts of each batch.
    ``since_at``: the instant :func:`_since_at` gives, when the caller has it already (the
    oldest rollup is a scan of the whole rollup table: once per rebuild, not once per part)."""
    now = clock()
    if since_at is None:
        since_at = await _since_at(conn, since)
    if since_at is None:
        return 0, 0
    profiles = Profiles(norms)
    ids = (
        list(workplace_ids)
        if workplace_ids is not None
        else await stored.workplaces_with_data(conn, since_at)
    )
    total = 0
    for k in range(0, len(ids), batch_workplaces):
        async with conn.transaction():
            workplaces = await workplaces_of(conn, Scope(), ids=ids[k : k + batch_workplaces])
            todo: dict[int, list[Shift]] = {}
            for w in workplaces:
                schedule = schedule_of(w)
                first_day = since if since is not None else local_day(schedule, since_at)
                todo[int(w["id"])] = [
                    s
                    for s in shifts_between(schedule, first_day, local_day(schedule, now))
                    if s.start <= now
                ]
            await stored.delete_from(conn, {w: s[0].start for w, s in todo.items() if s})
            _, written = await assess_workplaces(
                conn, profiles, workplaces, todo, now=now, late_s=late_s, force=True
            )
        total += written
        if progress is not None:
            progress(sum(len(s) for s in todo.values()))
    return len(ids), total


@dataclass(frozen=True, slots=True)
class _Part:
    """One process's share of a parallel rebuild (picklable)."""

    url: str
    schema: str
    profile: str
    since: date | None
    late_s: float
    ids: tuple[int, ...]
    batch_workplaces: int
    now: datetime
    since_at: datetime


def _rebuild_part(part: _Part) -> int:
    async def go() -> int:
        async with await connect_async(part.url, part.schema, autocommit=True) as conn:
            _, written = await rebuild(
                conn,
                load_norms(part.profile),
                since=part.since,
                late_s=part.late_s,
                workplace_ids=part.ids,
                batch_workplaces=part.batch_workplaces,
                clock=lambda: part.now,
                since_at=part.since_at,
            )
            return written

    return asyncio.run(go())


def rebuild_in_processes(
    settings: AssessmentSettings,
    *,
    since: date | None,
    workplace_ids: Sequence[int] | None = None,
    jobs: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """:func:`rebuild` spread over ``jobs`` processes (assessing is CPU work: one process a
    core), a batch of workplaces at a time; returns (workplaces, shifts stored)."""
    now = datetime.now(UTC)

    async def chosen() -> tuple[datetime | None, list[int]]:
        async with await connect_async(
            settings.database_url, settings.database_schema, autocommit=True
        ) as conn:
            since_at = await _since_at(conn, since)
            if since_at is None:
                return None, []
            if workplace_ids is not None:
                return since_at, list(workplace_ids)
            return since_at, await stored.workplaces_with_data(conn, since_at)

    def parts_of(since_at: datetime, ids: Sequence[int]) -> list[_Part]:
        # Small parts keep both processes busy to the end; each commits its own transactions.
        step = min(settings.assess_batch_workplaces, 50)
        return [
            _Part(
                settings.database_url,
                settings.database_schema,
                settings.norms_profile,
                since,
                settings.ingest_max_past_s,
                tuple(ids[k : k + step]),
                step,
                now,
                since_at,
            )
            for k in range(0, len(ids), step)
        ]

    def collect(done: Iterator[int]) -> int:
        total = 0
        for written in done:
            total += written
            if progress is not None:
                progress(written)
        return total

    if jobs <= 1:
        since_at, ids = asyncio.run(chosen())
        if since_at is None:
            return 0, 0
        return len(ids), collect(map(_rebuild_part, parts_of(since_at, ids)))
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        # The processes start (a second or two of imports each) while the workplaces are
        # chosen (a scan of the rollups): neither waits for the other.
        ready = [pool.submit(_ready) for _ in range(jobs)]
        since_at, ids = asyncio.run(chosen())
        for f in ready:
            f.result()
        if since_at is None:
            return 0, 0
        return len(ids), collect(pool.map(_rebuild_part, parts_of(since_at, ids)))


def _ready() -> None:
    """A task for a new rebuild process: it is running and has imported this module."""
