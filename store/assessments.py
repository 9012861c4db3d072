"""Assessors' inputs per workplace: ПР indicators Т, Об, СИЗ, З (1..5) and classes of factors
that sensors don't measure. Append-only; the entry with the latest ``assessed_on`` (then the
latest entered) is the one in force on a date."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from store.catalog import Row, translate_errors
from store.shift_assessments import note_workplace


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


INDICATORS: tuple[str, ...] = ("T", "Ob", "SIZ", "Z")

_INDICATOR_COLUMNS = sql.SQL(
    "id, workplace_id, indicator, value, assessed_by, assessed_on, evidence, entered_at"
)
_FACTOR_COLUMNS = sql.SQL(
    "id, workplace_id, factor, working_class, assessed_by, assessed_on, evidence, entered_at"
)


async def _rows(
    conn: AsyncConnection[Any], query: sql.Composed, params: Sequence[Any]
) -> list[Row]:
    cur = conn.cursor(row_factory=dict_row)
    async with translate_errors():
        await cur.execute(query, params)
        return await cur.fetchall()


async def add_indicator(
    conn: AsyncConnection[Any],
    workplace_id: int,
    *,
    indicator: str,
    value: int,
    assessed_by: str,
    assessed_on: date,
    evidence: str | None,
    entered_by: int | None,
) -> Row:
    rows = await _rows(
        conn,
        sql.SQL(
            """INSERT INTO indicator_assessments
                (workplace_id, indicator, value, assessed_by, assessed_on, evidence, entered_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {}"""
        ).format(_INDICATOR_COLUMNS),
        [workplace_id, indicator, value, assessed_by, assessed_on, evidence, entered_by],
    )
    return rows[0]


async def add_factor(
    conn: AsyncConnection[Any],
    workplace_id: int,
    *,
    factor: str,
    working_class: str,
    assessed_by: str,
    assessed_on: date,
    evidence: str | None,
    entered_by: int | None,
) -> Row:
    rows = await _rows(
        conn,
        sql.SQL(
            """INSERT INTO factor_assessments
                (workplace_id, factor, working_class, assessed_by, assessed_on, evidence,
                 entered_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {}"""
        ).format(_FACTOR_COLUMNS),
        [workplace_id, factor, working_class, assessed_by, assessed_on, evidence, entered_by],
    )
    # The stored shifts from that date on are assessed again (a day early: local dates).
    since = _day_start(assessed_on) - timedelta(days=1)
    await note_workplace(conn, workplace_id, since, max(since, datetime.now(UTC)))
    return rows[0]


async def indicator_history(
    conn: AsyncConnection[Any], workplace_id: int, *, limit: int, offset: int
) -> list[Row]:
    return await _rows(
        conn,
        sql.SQL(
            """SELECT {} FROM indicator_assessments WHERE workplace_id = %s
            ORDER BY assessed_on DESC, id DESC LIMIT %s OFFSET %s"""
        ).format(_INDICATOR_COLUMNS),
        [workplace_id, limit, offset],
    )


async def factor_history(
    conn: AsyncConnection[Any], workplace_id: int, *, limit: int, offset: int
) -> list[Row]:
    return await _rows(
        conn,
        sql.SQL(
            """SELECT {} FROM factor_assessments WHERE workplace_id = %s
            ORDER BY assessed_on DESC, id DESC LIMIT %s OFFSET %s"""
        ).format(_FACTOR_COLUMNS),
        [workplace_id, limit, offset],
    )


async def current_indicators(
    conn: AsyncConnection[Any], workplace_ids: Sequence[int], on: date | None = None
) -> dict[int, dict[str, Row]]:
    """``{workplace: {indicator: entry}}`` in force on ``on`` (default: the latest entries)."""
    return await _in_force(
        conn, "indicator_assessments", "indicator", _INDICATOR_COLUMNS, workplace_ids, on
    )


async def current_factors(
    conn: AsyncConnection[Any], workplace_ids: Sequence[int], on: date | None = None
) -> dict[int, dict[str, Row]]:
    """``{workplace: {factor: entry}}`` in force on ``on`` (default: the latest entries)."""
    return await _in_force(conn, "factor_assessments", "factor", _FACTOR_COLUMNS, workplace_ids, on)


async def _in_force(
    conn: AsyncConnection[Any],
    table: str,
    key: str,
    columns: sql.Composable,
    workplace_ids: Sequence[int],
    on: date | None,
) -> dict[int, dict[str, Row]]:
    rows = await _rows(
        conn,
        sql.SQL(
            """SELECT DISTINCT ON (workplace_id, {}) {}
            FROM {}
            WHERE workplace_id = ANY(%s) AND (%s::date IS NULL OR assessed_on <= %s::date)
            ORDER BY workplace_id, {}, assessed_on DESC, id DESC"""
        ).format(sql.Identifier(key), columns, sql.Identifier(table), sql.Identifier(key)),
        [list(workplace_ids), on, on],
    )
    found: dict[int, dict[str, Row]] = {}
    for row in rows:
        found.setdefault(row["workplace_id"], {})[row[key]] = row
    return found


async def factor_entries(conn: AsyncConnection[Any], workplace_id: int) -> list[Row]:
    """Every factor-class entry of a workplace, newest first (to resolve many dates at once)."""
    return await _rows(
        conn,
        sql.SQL(
            """SELECT {} FROM factor_assessments WHERE workplace_id = %s
            ORDER BY assessed_on DESC, id DESC"""
        ).format(_FACTOR_COLUMNS),
        [workplace_id],
    )


def in_force(entries: Sequence[Row], key: str, on: date) -> dict[str, Row]:
    """The entry per ``key`` (``factor`` or ``indicator``) in force on ``on``, from entries
    ordered newest first."""
    found: dict[str, Row] = {}
    for row in entries:
        if row["assessed_on"] <= on and row[key] not in found:
            found[row[key]] = row
    return found


async def factor_entries_of(
    conn: AsyncConnection[Any], workplace_ids: Sequence[int]
) -> dict[int, list[Row]]:
    """:func:`factor_entries` of several workplaces at once."""
    rows = await _rows(
        conn,
        sql.SQL(
            """SELECT {} FROM factor_assessments WHERE workplace_id = ANY(%s)
            ORDER BY workplace_id, assessed_on DESC, id DESC"""
        ).format(_FACTOR_COLUMNS),
        [list(workplace_ids)],
    )
    found: dict[int, list[Row]] = {w: [] for w in workplace_ids}
    for row in rows:
        found[row["workplace_id"]].append(row)
    return found
