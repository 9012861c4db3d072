"""``qorgau deadletters list|replay``: the messages ingest gave up on, and their second chance."""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from qorgau.runtime import CONNECTION_SETTINGS, settings_help

if TYPE_CHECKING:
    from ingest.service import CommitResult, IngestWorker
    from ingest.settings import IngestSettings
    from store.deadletters import DeadLetter

T = TypeVar("T")
log = logging.getLogger("qorgau.deadletters")
WHAT = (
    "A dead letter is a readings message that ingest failed to process QORGAU_INGEST_MAX_ATTEMPTS "
    "times for a reason that is neither its content (bad content is quarantined at once, with a "
    "reason, in the quarantine table) nor an outage (the database or broker away: retried for "
    "as long as it lasts). Typical causes: a registry row the database refuses, a changed "
    "schema, a bug. Ingest stores the whole message in the dead_letters table with the error "
    "and acknowledges it, so it cannot hold up the stream; /health and the metric "
    "qorgau_ingest_dead_letters_total count them."
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ingest.settings import IngestSettings

    parser = subparsers.add_parser(
        "deadletters",
        help="list and replay the messages ingest gave up on (dead letters)",
        description=_paragraphs(WHAT),
        epilog="examples:\n"
        "  qorgau deadletters list                  the ones waiting, with their errors\n"
        "  qorgau deadletters list --id 7 --payload one of them, with its message\n"
        "  qorgau deadletters replay --id 7         try it again after fixing the cause\n"
        "  qorgau deadletters replay                try every one waiting",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(title="actions", metavar="ACTION")
    listing = sub.add_parser(
        "list",
        help="show dead letters (not yet replayed, unless --all)",
        description=_paragraphs(
            WHAT,
            "This lists them, oldest first, with the error and what a replay did; it changes "
            "nothing.",
        ),
        epilog=settings_help(IngestSettings, only=CONNECTION_SETTINGS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    listing.add_argument(
        "--id", type=int, action="append", dest="ids", metavar="ID", help="only these (repeat)"
    )
    listing.add_argument(
        "--all", action="store_true", help="include the ones already replayed successfully"
    )
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    listing.add_argument(
        "--payload",
        action="store_true",
        help="print each message's payload too (as text; undecodable bytes escaped)",
    )
    listing.set_defaults(handler=_list)
    replay = sub.add_parser(
        "replay",
        help="run dead letters through ingest again, once their cause is fixed",
        description=_paragraphs(
            WHAT,
            "Replay runs each message through the same checks and commit as ingest, directly "
            "against the database (no broker needed): its readings are stored exactly once (a "
            "message already stored counts as a duplicate), bad content is quarantined, and the "
            "dead letter is marked replayed. One that fails again keeps its place, with the new "
            "error; the exit status is then 1.",
        ),
        epilog=settings_help(IngestSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument(
        "--id",
        type=int,
        action="append",
        dest="ids",
        metavar="ID",
        help="replay these (repeat; also one replayed before); default: every one not replayed",
    )
    replay.set_defaults(handler=_replay)
    parser.set_defaults(handler=lambda _args: _usage(parser))


def _paragraphs(*texts: str) -> str:
    # Raw formatting keeps the settings table of the epilog; the prose is wrapped here.
    return "\n\n".join(textwrap.fill(text, 79) for text in texts)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _list(args: argparse.Namespace) -> int:
    import asyncio

    from store.deadletters import list_dead_letters

    async def main() -> list[DeadLetter]:
        conn = await _connect()
        async with conn:
            return await list_dead_letters(
                conn, ids=args.ids, include_replayed=args.all, limit=args.limit
            )

    letters = _guarded("list", lambda: asyncio.run(main()))
    if letters is None:
        return 1
    if not letters:
        print("no dead letters" + ("" if args.all or args.ids else " waiting for a replay"))
        return 0
    for letter in letters:
        _show(letter, payload=args.payload)
    return 0


def _show(letter: DeadLetter, *, payload: bool) -> None:
    where = f"device={letter.device or '?'} seq={letter.seq if letter.seq is not None else '?'}"
    print(
        f"#{letter.id}  {letter.received_at:%Y-%m-%d %H:%M:%S%z}  {letter.stage}, "
        f"{letter.attempts} attempts, by {letter.client_id}  {letter.topic}  {where}  "
        f"{len(letter.payload)} bytes"
    )
    print(f"    error: {letter.error}")
    if letter.replay_outcome is not None:
        when = f"{letter.replayed_at:%Y-%m-%d %H:%M:%S%z}" if letter.replayed_at else "failed"
        print(f"    replay ({when}): {letter.replay_outcome}")
    if payload:
        print(f"    payload: {letter.payload.decode('utf-8', 'backslashreplace')}")


def _replay(args: argparse.Namespace) -> int:
    import asyncio

    from ingest.settings import IngestSettings
    from qorgau.runtime import load_settings

    settings = load_settings(IngestSettings)
    counts = _guarded("replay", lambda: asyncio.run(_replay_all(settings, args.ids)))
    if counts is None:
        return 1
    done, failed = counts
    print(f"replayed {done}, failed {failed}")
    return 1 if failed else 0


async def _replay_all(settings: IngestSettings, ids: list[int] | None) -> tuple[int, int]:
    """Replay the dead letters ``ids`` (default: every one waiting) through one ingest worker;
    how many were done and how many failed again."""
    from ingest.service import IngestWorker
    from store.deadletters import list_dead_letters

    conn = await _connect()
    async with conn:
        letters = await list_dead_letters(conn, ids=ids)
        if ids:
            missing = sorted(set(ids) - {letter.id for letter in letters})
            if missing:
                print(f"no dead letter with id {', '.join(map(str, missing))}")
        worker = IngestWorker(settings)
        done = failed = 0
        try:
            for letter in letters:
                if await _replay_one(conn, worker, letter):
                    done += 1
                else:
                    failed += 1
        finally:
            await worker.close()
        return done, failed


async def _replay_one(conn: Any, worker: IngestWorker, letter: DeadLetter) -> bool:
    """Run one dead letter through ingest and record the outcome on it; False when it failed
    again. Whatever failed in ingest fails here, and is recorded rather than raised: what the
    database refuses (a registry row, a changed schema), one of Qorgau's errors, or a bug."""
    import psycopg

    from store.deadletters import record_replay
    from vocabulary.errors import QorgauError

    try:
        result = await worker.replay(letter.topic, letter.payload)
    except (psycopg.Error, QorgauError) as exc:
        await _record_failure(conn, letter, exc)
        return False
    except Exception as exc:  # a bug of ours: recorded the same way, its traceback on the log
        log.exception("replaying dead letter #%s failed", letter.id)
        await _record_failure(conn, letter, exc)
        return False
    outcome = _outcome(result)
    await record_replay(conn, letter.id, done=True, outcome=outcome)
    print(f"#{letter.id}: {outcome}")
    return True


async def _record_failure(conn: Any, letter: DeadLetter, exc: Exception) -> None:
    from store.deadletters import record_replay

    error = f"{type(exc).__name__}: {str(exc).strip()}"
    await record_replay(conn, letter.id, done=False, outcome=error)
    print(f"#{letter.id}: failed again: {error}")


def _outcome(result: CommitResult) -> str:
    parts = []
    if result.fresh:
        parts.append(f"stored {result.readings} readings")
    if result.duplicates:
        parts.append("already stored (a duplicate of a stored message)")
    if result.quarantine:
        reasons = sorted({q.reason.value for q in result.quarantine})
        parts.append(f"quarantined {len(result.quarantine)} ({', '.join(reasons)})")
    return "; ".join(parts) or "nothing to store"


async def _connect() -> Any:
    from qorgau.runtime import load_settings
    from store.connection import connect_async
    from store.settings import DatabaseSettings

    settings = load_settings(DatabaseSettings)
    return await connect_async(settings.database_url, settings.database_schema, autocommit=True)


def _guarded(action: str, run: Callable[[], T]) -> T | None:
    """Run; a database that is away or without the table is one line, not a traceback."""
    import psycopg

    from store.connection import DatabaseError

    try:
        return run()
    except psycopg.errors.UndefinedTable:
        print(
            f"qorgau deadletters {action}: the schema has no dead_letters table; run "
            "`qorgau db upgrade`",
            file=sys.stderr,
        )
    except (DatabaseError, psycopg.Error) as exc:
        print(f"qorgau deadletters {action}: {str(exc).strip()}", file=sys.stderr)
    return None
