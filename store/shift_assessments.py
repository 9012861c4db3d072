"""Stored shift assessments and the change log that keeps them current (migration 0040).

``note_readings`` runs in the transaction that stores readings, so every stored reading leaves
a change row; the assessment service takes change rows (``take_changes``) in the transaction
that writes the recomputed shifts (``upsert``), so a crash between the two loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

import numpy as np
import orjson
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from store.binary_arrays import Int8Array, float8_array, int8_array
from store.catalog import Row, Scope, matching, translate_errors
from store.readings import ReadingBlock

_COLUMN_NAMES: Final = (
    "workplace_id",
    "shift_start",
    "shift_end",
    "local_day",
    "shift_number",
    "timezone",
    "status",
    "working_class",
    "b",
    "b_continuous",
    "coverage_min",
    "insufficient_data",
    "deciding_factors",
    "detail",
    "norms_profile",
    "norms_version",
    "inputs_digest",
    "computed_at",
)
_COLUMNS: Final = sql.SQL(", ").join(map(sql.Identifier, _COLUMN_NAMES))
_WRITTEN: Final = [c for c in _COLUMN_NAMES if c != "computed_at"]
# The upsert of the written columns: the first two are the key, the others are replaced.
_UPSERT: Final = sql.SQL(
    "INSERT INTO shift_assessments ({names}) VALUES ({marks}) "
    "ON CONFLICT (workplace_id, shift_start) DO UPDATE SET {updates}, computed_at = now()"
).format(
    names=sql.SQL(", ").join(map(sql.Identifier, _WRITTEN)),
    marks=sql.SQL(", ").join([sql.Placeholder()] * len(_WRITTEN)),
    updates=sql.SQL(", ").join(
        sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in _WRITTEN[2:]
    ),
)


# How far back a change reaches by itself: readings arrive at most ingest's window late, but an
# assessor may enter a class in force from long ago, and a schedule may change. Older shifts:
# ``qorgau assessments rebuild --since``.
REACH: Final = timedelta(days=92)


@dataclass(frozen=True, slots=True)
class Change:
    """Something that may change the shifts of ``workplace_id`` holding an instant of
    ``[lo, hi]``."""

    workplace_id: int
    lo: datetime
    hi: datetime
    noted_at: datetime


async def note_readings(conn: AsyncConnection[Any], block: ReadingBlock) -> None:
    """Record, per workplace of ``block``'s sensors, the span its readings cover (caller's
    transaction). Sensors without a workplace are not noted: nothing is assessed from them."""
    if len(block) == 0:
        return
    ids, inverse = np.unique(block.sensor_ids, return_inverse=True)
    lo = np.full(ids.size, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(ids.size, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(lo, inverse, block.times_us)
    np.maximum.at(hi, inverse, block.times_us)
    # One row per workplace, not per sensor: a batch of small messages touches thousands of
    # sensors, and a row each was the costliest statement of its commit. µs travel as integers
    # and arrays in binary (a datetime object per sensor, or text arrays, cost more still).
    await conn.execute(
        "INSERT INTO assessment_changes (workplace_id, lo, hi) "
        "SELECT s.workplace_id, timestamptz 'epoch' + min(t.l) * interval '1 microsecond', "
        "timestamptz 'epoch' + max(t.h) * interval '1 microsecond' "
        "FROM unnest(%b::int[], %b::bigint[], %b::bigint[]) AS t(s, l, h) "
        "JOIN sensors s ON s.id = t.s WHERE s.workplace_id IS NOT NULL "
        "GROUP BY s.workplace_id",
        [Int8Array(ids), Int8Array(lo), Int8Array(hi)],
    )


async def note_workplace(
    conn: AsyncConnection[Any], workplace_id: int, lo: datetime, hi: datetime
) -> None:
    """Record that the shifts of a workplace between ``lo`` and ``hi`` must be recomputed (an
    entered class in force from a date on, a norms change)."""
    await conn.execute(
        "INSERT INTO assessment_changes (workplace_id, lo, hi) VALUES (%s, %s, %s)",
        [workplace_id, lo, hi],
    )


async def reassess(
    conn: AsyncConnection[Any], *, workplace_id: int | None = None, enterprise_id: int | None = None
) -> None:
    """The schedule, time zone or norms profile of a workplace (or of every workplace of an
    enterprise) changed: its stored shifts of the last ``REACH`` no longer hold, so they are
    dropped and noted for the service to assess again under the new settings (older ones stay
    as they were assessed)."""
    if (workplace_id is None) == (enterprise_id is None):
        raise ValueError("give exactly one of workplace_id and enterprise_id")
    params = {"w": workplace_id, "e": enterprise_id, "reach": REACH}
    await conn.execute(
        """
        WITH chosen AS (SELECT id FROM workplaces WHERE id = %(w)s OR enterprise_id = %(e)s),
             dropped AS (
                DELETE FROM shift_assessments a USING chosen
                WHERE a.workplace_id = chosen.id AND a.shift_start >= now() - %(reach)s
             )
        INSERT INTO assessment_changes (workplace_id, lo, hi)
        SELECT id, now() - %(reach)s, now() FROM chosen
        """,
        params,
    )


async def take_changes(conn: AsyncConnection[Any], limit: int) -> list[Change]:
    """Remove up to ``limit`` change rows, oldest first, and return them per workplace (the
    caller's transaction: roll back and they are there again). Rows of sensors without a
    workplace are dropped: nothing is assessed from them."""
    cur = await conn.execute(
        """
        WITH taken AS (
            DELETE FROM assessment_changes
            WHERE id IN (SELECT id FROM assessment_changes ORDER BY id LIMIT %s
                         FOR UPDATE SKIP LOCKED)
            RETURNING sensor_id, workplace_id, lo, hi, noted_at
        )
        SELECT coalesce(t.workplace_id, s.workplace_id) AS workplace_id, t.lo, t.hi, t.noted_at
        FROM taken t LEFT JOIN sensors s ON s.id = t.sensor_id
        WHERE coalesce(t.workplace_id, s.workplace_id) IS NOT NULL
        """,
        [limit],
    )
    return [Change(int(w), lo, hi, noted) for w, lo, hi, noted in await cur.fetchall()]


async def digests(
    conn: AsyncConnection[Any], starts: Mapping[int, Sequence[datetime]]
) -> dict[int, dict[datetime, tuple[bytes, str]]]:
    """``{workplace: {shift start: (inputs digest, status)}}`` of the stored shifts among
    ``starts`` (``{workplace: shift starts}``), in one query."""
    pairs = [(w, t) for w, ts in starts.items() for t in ts]
    found: dict[int, dict[datetime, tuple[bytes, str]]] = {w: {} for w in starts}
    if not pairs:
        return found
    cur = await conn.execute(
        "SELECT a.workplace_id, a.shift_start, a.inputs_digest, a.status "
        "FROM unnest(%s::bigint[], %s::timestamptz[]) AS k(workplace_id, shift_start) "
        "JOIN shift_assessments a USING (workplace_id, shift_start)",
        [[w for w, _ in pairs], [t for _, t in pairs]],
    )
    for w, start, d, status in await cur.fetchall():
        found[int(w)][start] = (bytes(d), status)
    return found


def _dumps(obj: Any) -> bytes:
    # A rebuild writes thousands of details a second: orjson is several times json's speed.
    return orjson.dumps(obj)


async def upsert(conn: AsyncConnection[Any], rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert or replace assessed shifts (mappings with the table's columns but
    ``computed_at``); returns how many were written."""
    if not rows:
        return 0
    async with translate_errors(), conn.cursor() as cur:
        await cur.executemany(
            _UPSERT,
            [[Jsonb(r[c], _dumps) if c == "detail" else r[c] for c in _WRITTEN] for r in rows],
        )
    return len(rows)


async def delete_from(conn: AsyncConnection[Any], starts: Mapping[int, datetime]) -> None:
    """Delete each workplace's stored shifts that start at or after its instant (a rebuild)."""
    if not starts:
        return
    await conn.execute(
        "DELETE FROM shift_assessments a USING unnest(%s::bigint[], %s::timestamptz[]) "
        "AS f(workplace_id, since) "
        "WHERE a.workplace_id = f.workplace_id AND a.shift_start >= f.since",
        [list(starts), list(starts.values())],
    )


async def settle_statuses(conn: AsyncConnection[Any], now: datetime, late_s: float) -> int:
    """Running shifts that have ended become provisional; provisional shifts older than what
    ingest still accepts (``late_s`` after their end) become final. Returns rows changed."""
    cur = await conn.execute(
        """
        UPDATE shift_assessments
        SET status = CASE WHEN shift_end <= %(final_before)s THEN 'final' ELSE 'provisional' END
        WHERE status <> 'final'
          AND (shift_end <= %(final_before)s OR (status = 'running' AND shift_end <= %(now)s))
        """,
        {"now": now, "final_before": now - timedelta(seconds=late_s)},
    )
    return cur.rowcount


async def shifts_of(
    conn: AsyncConnection[Any], workplace_id: int, first: date, last: date
) -> list[Row]:
    """Stored shifts of a workplace starting on local dates ``first..last``, oldest first."""
    cur = conn.cursor(row_factory=dict_row)
    async with translate_errors():
        await cur.execute(
            sql.SQL(
                "SELECT {} FROM shift_assessments "
                "WHERE workplace_id = %s AND local_day BETWEEN %s AND %s ORDER BY shift_start"
            ).format(_COLUMNS),
            [workplace_id, first, last],
        )
        return await cur.fetchall()


async def shift_at(
    conn: AsyncConnection[Any], workplace_id: int, shift_start: datetime
) -> Row | None:
    cur = conn.cursor(row_factory=dict_row)
    async with translate_errors():
        await cur.execute(
            sql.SQL(
                "SELECT {} FROM shift_assessments WHERE workplace_id = %s AND shift_start = %s"
            ).format(_COLUMNS),
            [workplace_id, shift_start],
        )
        return await cur.fetchone()


# Which shift of a period sets a workplace's В: a sufficiently covered shift before any
# insufficient one, then the highest В, then the highest continuous В, then the latest.
WORST_ORDER: Final = "insufficient_data, b DESC, b_continuous DESC NULLS LAST, shift_start DESC"


async def worst_shifts(
    conn: AsyncConnection[Any],
    workplace_ids: Sequence[int],
    first: date,
    last: date,
    *,
    detail: bool = True,
) -> dict[int, Row]:
    """The shift that sets each workplace's В over local dates ``first..last`` (rated shifts
    only; workplaces without one are absent). Without ``detail`` the per-sensor and per-factor
    detail is left out (an empty object): the map and exports need the headline only."""
    columns = sql.SQL(", ").join(
        sql.SQL("'{}'::jsonb AS detail") if c == "detail" and not detail else sql.Identifier("a", c)
        for c in _COLUMN_NAMES
    )
    cur = conn.cursor(row_factory=dict_row)
    async with translate_errors():
        # First the key of each worst shift from the index alone, then those rows only.
        await cur.execute(
            sql.SQL("""
            SELECT {columns}
            FROM unnest(%s::bigint[]) AS w(workplace_id)
            CROSS JOIN LATERAL (
                SELECT shift_start FROM shift_assessments
                WHERE workplace_id = w.workplace_id AND local_day BETWEEN %s AND %s
                  AND b IS NOT NULL
                ORDER BY {worst_order}
                LIMIT 1
            ) k
            CROSS JOIN LATERAL (
                SELECT * FROM shift_assessments
                WHERE workplace_id = w.workplace_id AND shift_start = k.shift_start
                LIMIT 1  -- keeps the planner from flattening this into a hash join
            ) a
            """).format(columns=columns, worst_order=sql.SQL(WORST_ORDER)),
            [list(workplace_ids), first, last],
        )
        return {row["workplace_id"]: row for row in await cur.fetchall()}


async def try_leader_lock(conn: AsyncConnection[Any]) -> bool:
    """Take the assessment service's lock of this schema on ``conn`` (its session): one
    service writes at a time, a second one waits as a standby."""
    cur = await conn.execute(
        "SELECT pg_try_advisory_lock(hashtext(current_schema() || '.shift_assessments'))"
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def workplaces_with_data(conn: AsyncConnection[Any], since: datetime) -> list[int]:
    """Workplaces with a sensor that has hourly rollups since ``since`` or entered factor
    classes, for a rebuild."""
    cur = await conn.execute(
        """
        SELECT DISTINCT s.workplace_id FROM sensors s
        WHERE s.workplace_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM readings_1h r WHERE r.sensor_id = s.id AND r.bucket >= %s)
        UNION
        SELECT DISTINCT workplace_id FROM factor_assessments
        ORDER BY 1
        """,
        [since],
    )
    return [int(r[0]) for r in await cur.fetchall()]


async def first_rollup(conn: AsyncConnection[Any]) -> datetime | None:
    cur = await conn.execute("SELECT min(bucket) FROM readings_1h")
    row = await cur.fetchone()
    return None if row is None else row[0]


@dataclass(frozen=True, slots=True)
class ScoringColumns:
    """Per workplace, in enterprise then workplace order, what ПР needs: the worst stored
    shift's В of the period and whether its data were enough, and the indicators in force."""

    workplace_id: np.ndarray[Any, np.dtype[np.int64]]
    enterprise_id: np.ndarray[Any, np.dtype[np.int64]]
    code: list[str]
    headcount: np.ndarray[Any, np.dtype[np.float64]]
    b: np.ndarray[Any, np.dtype[np.float64]]  # NaN: no rated shift
    not_enough_data: np.ndarray[Any, np.dtype[np.bool_]]
    indicators: dict[str, np.ndarray[Any, np.dtype[np.float64]]]  # T, Ob, SIZ, Z; NaN: missing


async def scoring_columns(
    conn: AsyncConnection[Any],
    scope: Scope,
    filters: Mapping[str, Any],
    first: date,
    last: date,
) -> ScoringColumns:
    """:class:`ScoringColumns` of the workplaces whose enterprise is in ``scope`` and has the
    values of ``filters`` (enterprise columns; None ignored) — one query, an index walk per
    workplace, no detail read."""
    condition, params = matching(scope, filters, "e")
    # One row of arrays (array_send: numpy reads them without a Python object per workplace),
    # in one arbitrary order shared by all of them (one aggregation pass); numpy sorts after.
    floats = ("headcount", "b", "t", "ob", "siz", "z")
    float_arrays = sql.SQL(", ").join(
        sql.SQL("array_send(coalesce(array_agg(coalesce({}, 'NaN')), '{{}}'))").format(
            sql.Identifier(c)
        )
        for c in floats
    )
    query = sql.SQL(
        """
        WITH per AS (
            SELECT w.id, w.enterprise_id, w.code, w.headcount::float8 AS headcount,
                   a.b::float8 AS b, coalesce(a.insufficient_data, false) AS thin,
                   i.t::float8 AS t, i.ob::float8 AS ob, i.siz::float8 AS siz, i.z::float8 AS z
            FROM workplaces w JOIN enterprises e ON e.id = w.enterprise_id
            LEFT JOIN LATERAL (
                SELECT b, insufficient_data FROM shift_assessments
                WHERE workplace_id = w.id AND local_day BETWEEN %s AND %s AND b IS NOT NULL
                ORDER BY {worst_order}
                LIMIT 1
            ) a ON true
            LEFT JOIN LATERAL (
                SELECT max(value) FILTER (WHERE indicator = 'T') AS t,
                       max(value) FILTER (WHERE indicator = 'Ob') AS ob,
                       max(value) FILTER (WHERE indicator = 'SIZ') AS siz,
                       max(value) FILTER (WHERE indicator = 'Z') AS z
                FROM (
                    SELECT DISTINCT ON (indicator) indicator, value FROM indicator_assessments
                    WHERE workplace_id = w.id AND assessed_on <= %s
                    ORDER BY indicator, assessed_on DESC, id DESC
                ) latest
            ) i ON true
            WHERE {condition}
        )
        SELECT array_send(coalesce(array_agg(id::int8), '{{}}')),
               array_send(coalesce(array_agg(enterprise_id::int8), '{{}}')),
               coalesce(array_agg(code), '{{}}'),
               array_send(coalesce(array_agg(thin::int::int8), '{{}}')),
               {float_arrays}
        FROM per
        """
    ).format(
        worst_order=sql.SQL(WORST_ORDER),
        condition=condition,
        float_arrays=float_arrays,
    )
    cur = await conn.execute(
        query,
        [first, last, last, *params],
        binary=True,
    )
    row = await cur.fetchone()
    assert row is not None  # an aggregate without GROUP BY: always one row
    ids, enterprises, codes, thin, *columns = row
    workplace_id, enterprise_id = int8_array(ids), int8_array(enterprises)
    # Every array aggregated in the same (arbitrary) row order: one permutation sorts them all.
    order = np.lexsort((workplace_id, enterprise_id))
    f = {name: float8_array(raw)[order] for name, raw in zip(floats, columns, strict=True)}
    return ScoringColumns(
        workplace_id=workplace_id[order],
        enterprise_id=enterprise_id[order],
        code=[codes[k] for k in order.tolist()],
        headcount=f["headcount"],
        b=f["b"],
        not_enough_data=int8_array(thin).astype(bool)[order],
        indicators={"T": f["t"], "Ob": f["ob"], "SIZ": f["siz"], "Z": f["z"]},
    )
