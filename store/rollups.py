"""Per-sensor rollups at 1 minute and 1 hour: sufficient statistics, never averaged levels.

Each bucket of each sensor keeps, over its samples v:

    n          number of samples
    sum_value  Σ v                 → arithmetic mean (gas, dust: TWA over the span)
    sum_sq     Σ v²                → r.m.s. √(Σv²/n) (vibration; A(8) = rms·√(T/8 h))
    sum_pow10  Σ 10^(v/10)         → energy mean 10·lg(Σ10^(v/10)/n) (dB: LAeq over the span)
    min_value  min v
    max_value  max v               → LAmax, LCpeak, instantaneous gas maximum

All of them add up across buckets, so the exact mean, r.m.s. and energy-mean level over any span
made of whole buckets follow from the rows (``Rollup.total``), and a coarser rollup follows from
a finer one. Levels are never averaged arithmetically. Every sample counts once whatever its
duration: for a sensor sampled at a fixed period that is the time-weighted figure.

``sum_pow10`` is meaningful for decibel quantities only. So that no value can make the database
raise an overflow or underflow error, a term is 0 below −300 and +∞ above 300 (no sound level
comes near either); the SQL of the TimescaleDB continuous aggregates applies the same rule.

Storage: on TimescaleDB ``readings_1m`` and ``readings_1h`` are continuous aggregates (real-time,
so the newest readings are included before a refresh). On plain PostgreSQL they are tables that
ingest keeps in the same transaction as the readings (``upsert_rollups``): only fresh messages
reach them, so a redelivered message is never counted twice. Both have the same columns and are
read through ``fetch_rollup``.

Stored buckets read the same in every query. On TimescaleDB, buckets newer than the last refresh
(the watermark) are aggregated from the raw rows by each query, adding floats in the order of
that query's plan, so two queries may differ in the last bits there; summing exactly (numeric)
would fix that but made a refresh 4.3× slower. Nothing may key on the bytes of such a bucket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray
from psycopg import AsyncConnection, sql

from store.binary_arrays import float8_array, int8_array
from store.readings import (
    COPY_SIGNATURE,
    COPY_TRAILER,
    PG_EPOCH_OFFSET_US,
    US_PER_S,
    ReadingBlock,
)

Bucket = Literal["1 min", "1 hour"]
BUCKET_US: Final[dict[str, int]] = {"1 min": 60 * US_PER_S, "1 hour": 3600 * US_PER_S}
ROLLUP_TABLE: Final[dict[str, str]] = {"1 min": "readings_1m", "1 hour": "readings_1h"}
POW10_LIMIT_DB: Final = 300.0

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

# Quantities whose values are levels in decibels, and which statistic represents a bucket.
DECIBEL_QUANTITIES: Final = frozenset({"noise_laeq", "noise_lamax", "noise_lcpeak"})
_REPRESENTATIVE: Final[dict[str, str]] = {
    "noise_laeq": "energy_mean_db",
    "noise_lamax": "max",
    "noise_lcpeak": "max",
    "vib_hav": "rms",
    "vib_wbv_x": "rms",
    "vib_wbv_y": "rms",
    "vib_wbv_z": "rms",
    "gas": "mean",
    "dust": "mean",
}


def pow10_terms(values: F64) -> F64:
    """10^(v/10) per sample, 0 below −300 and +∞ above 300 (see the module docstring)."""
    with np.errstate(over="ignore", under="ignore"):
        terms = np.power(10.0, np.clip(values, -POW10_LIMIT_DB, POW10_LIMIT_DB) / 10.0)
    terms[values > POW10_LIMIT_DB] = np.inf
    terms[values < -POW10_LIMIT_DB] = 0.0
    return terms


def pow10_sql(column: sql.Composable) -> sql.Composed:
    """The SQL for ``pow10_terms`` of ``column`` (the rule the migrations' rollups apply), for
    queries that add raw readings to rollup sums and must agree with them term for term."""
    return sql.SQL(
        "CASE WHEN {column} > {limit} THEN 'Infinity'::float8 "
        "WHEN {column} < -{limit} THEN 0::float8 "
        "ELSE power(10::float8, {column} / 10) END"
    ).format(column=column, limit=sql.Literal(POW10_LIMIT_DB))


@dataclass(frozen=True, slots=True)
class BucketStats:
    """Sufficient statistics per (sensor, bucket), ordered by sensor then bucket start."""

    bucket_us: int
    sensor_ids: NDArray[np.int32]
    starts_us: I64
    n: I64
    sum_value: F64
    sum_sq: F64
    sum_pow10: F64
    min_value: F64
    max_value: F64

    def __len__(self) -> int:
        return len(self.n)


def bucket_stats(block: ReadingBlock, bucket_us: int) -> BucketStats:
    """Aggregate readings into buckets of ``bucket_us`` aligned to the Unix epoch (the
    alignment ``time_bucket`` uses for minutes and hours)."""
    starts = np.floor_divide(block.times_us, bucket_us) * bucket_us
    return _reduce(
        bucket_us,
        block.sensor_ids,
        starts,
        np.ones(len(block), np.int64),
        block.values,
        block.values * block.values,
        pow10_terms(block.values),
        block.values,
        block.values,
    )


def coarsen(stats: BucketStats, bucket_us: int) -> BucketStats:
    """The same statistics in wider buckets (a multiple of the current width)."""
    if bucket_us % stats.bucket_us:
        raise ValueError(f"{bucket_us} µs is not a multiple of {stats.bucket_us} µs")
    starts = np.floor_divide(stats.starts_us, bucket_us) * bucket_us
    return _reduce(
        bucket_us,
        stats.sensor_ids,
        starts,
        stats.n,
        stats.sum_value,
        stats.sum_sq,
        stats.sum_pow10,
        stats.min_value,
        stats.max_value,
    )


def _reduce(
    bucket_us: int,
    sensor_ids: NDArray[np.int32],
    starts: I64,
    n: I64,
    sum_value: F64,
    sum_sq: F64,
    sum_pow10: F64,
    min_value: F64,
    max_value: F64,
) -> BucketStats:
    if len(n) == 0:
        no_f = np.empty(0, np.float64)
        no_i = np.empty(0, np.int64)
        return BucketStats(
            bucket_us, np.empty(0, np.int32), no_i, no_i, no_f, no_f, no_f, no_f, no_f
        )
    order = np.lexsort((starts, sensor_ids))
    sid = sensor_ids[order]
    st = starts[order]
    boundary = np.empty(len(order), dtype=bool)
    boundary[0] = True
    np.not_equal(sid[1:], sid[:-1], out=boundary[1:])
    boundary[1:] |= st[1:] != st[:-1]
    heads = np.flatnonzero(boundary)
    return BucketStats(
        bucket_us=bucket_us,
        sensor_ids=sid[heads],
        starts_us=st[heads],
        n=np.add.reduceat(n[order], heads),
        sum_value=np.add.reduceat(sum_value[order], heads),
        sum_sq=np.add.reduceat(sum_sq[order], heads),
        sum_pow10=np.add.reduceat(sum_pow10[order], heads),
        min_value=np.minimum.reduceat(min_value[order], heads),
        max_value=np.maximum.reduceat(max_value[order], heads),
    )


# Rows of (sensor, bucket) statistics in COPY BINARY: int4, int8 (µs), int8, then five float8.
_STATS_ROW: Final = np.dtype(
    [
        ("fields", ">i2"),
        ("sensor_len", ">i4"),
        ("sensor", ">i4"),
        ("bucket_len", ">i4"),
        ("bucket", ">i8"),
        ("n_len", ">i4"),
        ("n", ">i8"),
        *(
            (name, t)
            for col in ("sum_value", "sum_sq", "sum_pow10", "min_value", "max_value")
            for name, t in ((f"{col}_len", ">i4"), (col, ">f8"))
        ),
    ]
)


def encode_stats_copy(stats: BucketStats) -> bytes:
    rows = np.empty(len(stats), dtype=_STATS_ROW)
    rows["fields"] = 8
    rows["sensor_len"] = 4
    rows["bucket_len"] = rows["n_len"] = 8
    for col in ("sum_value", "sum_sq", "sum_pow10", "min_value", "max_value"):
        rows[f"{col}_len"] = 8
        rows[col] = getattr(stats, col)
    rows["sensor"] = stats.sensor_ids
    rows["bucket"] = stats.starts_us
    rows["n"] = stats.n
    return b"".join((COPY_SIGNATURE, rows.tobytes(), COPY_TRAILER))


async def upsert_rollups(conn: AsyncConnection[Any], block: ReadingBlock) -> None:
    """Add a block of freshly stored readings to ``readings_1m`` and ``readings_1h`` (plain
    PostgreSQL; call in the transaction that stores them). Rows are locked in (sensor, bucket)
    order, the same in every worker, so concurrent workers wait for each other, never deadlock.
    The statistics travel as one binary COPY into a temporary table, not as parameters."""
    if len(block) == 0:
        return
    minute = bucket_stats(block, BUCKET_US["1 min"])
    await conn.execute(
        """
        CREATE TEMP TABLE IF NOT EXISTS rollup_delta (
            sensor_id int, bucket_us bigint, n bigint, sum_value float8, sum_sq float8,
            sum_pow10 float8, min_value float8, max_value float8
        ) ON COMMIT DELETE ROWS
        """
    )
    for table, stats in (
        (ROLLUP_TABLE["1 min"], minute),
        (ROLLUP_TABLE["1 hour"], coarsen(minute, BUCKET_US["1 hour"])),
    ):
        async with conn.cursor().copy("COPY rollup_delta FROM STDIN (FORMAT BINARY)") as copy:
            await copy.write(encode_stats_copy(stats))
        query = sql.SQL(
            """
            WITH delta AS (DELETE FROM rollup_delta RETURNING *)
            INSERT INTO {} AS r
                (sensor_id, bucket, n, sum_value, sum_sq, sum_pow10, min_value, max_value)
            SELECT sensor_id, timestamptz 'epoch' + bucket_us * interval '1 microsecond', n,
                   sum_value, sum_sq, sum_pow10, min_value, max_value
            FROM delta
            ORDER BY sensor_id, bucket_us
            ON CONFLICT (sensor_id, bucket) DO UPDATE SET
                n = r.n + EXCLUDED.n,
                sum_value = r.sum_value + EXCLUDED.sum_value,
                sum_sq = r.sum_sq + EXCLUDED.sum_sq,
                sum_pow10 = r.sum_pow10 + EXCLUDED.sum_pow10,
                min_value = LEAST(r.min_value, EXCLUDED.min_value),
                max_value = GREATEST(r.max_value, EXCLUDED.max_value)
            """
        ).format(sql.Identifier(table))
        await conn.execute(query)


@dataclass(frozen=True, slots=True)
class SpanStats:
    """Statistics of one sensor over a whole span (several buckets summed)."""

    n: int
    mean: float
    rms: float
    energy_mean_db: float
    min: float
    max: float


@dataclass(frozen=True, slots=True)
class Rollup:
    """One sensor's buckets in a span, as arrays ordered by bucket start."""

    sensor_id: int
    bucket: Bucket
    starts_us: I64
    n: I64
    sum_value: F64
    sum_sq: F64
    sum_pow10: F64
    min_value: F64
    max_value: F64

    def __len__(self) -> int:
        return len(self.n)

    @property
    def starts(self) -> NDArray[np.datetime64]:
        return self.starts_us.astype("datetime64[us]")

    def mean(self) -> F64:
        """Arithmetic mean per bucket (concentrations)."""
        return bucket_statistic("mean", self.n, self.sum_value)

    def rms(self) -> F64:
        """Root mean square per bucket (vibration acceleration): √(Σv²/n)."""
        return bucket_statistic("rms", self.n, self.sum_sq)

    def energy_mean_db(self) -> F64:
        """Energy-mean level per bucket (decibel quantities): 10·lg(Σ10^(L/10)/n)."""
        return bucket_statistic("energy_mean_db", self.n, self.sum_pow10)

    def total(self) -> SpanStats:
        """The whole span at once, exactly (sums of sums, never a mean of means)."""
        n = int(self.n.sum())
        if n == 0:
            nan = float("nan")
            return SpanStats(0, nan, nan, nan, nan, nan)
        pow10 = float(self.sum_pow10.sum())
        return SpanStats(
            n=n,
            mean=float(self.sum_value.sum()) / n,
            rms=float(np.sqrt(self.sum_sq.sum() / n)),
            energy_mean_db=10.0 * float(np.log10(pow10 / n)) if pow10 > 0 else float("-inf"),
            min=float(self.min_value.min()),
            max=float(self.max_value.max()),
        )

    def level(self, quantity: str) -> F64:
        """The statistic that represents a bucket of this quantity: energy mean for LAeq,
        maximum for LAmax and LCpeak, r.m.s. for vibration, mean for gas and dust."""
        kind = representative_statistic(quantity)
        return bucket_statistic(kind, self.n, getattr(self, STATISTIC_COLUMN[kind]))


def representative_statistic(quantity: str) -> str:
    try:
        return _REPRESENTATIVE[quantity]
    except KeyError:
        raise ValueError(f"no rollup statistic is defined for quantity {quantity!r}") from None


# The one column each statistic of a bucket is computed from (with ``n``).
STATISTIC_COLUMN: Final[dict[str, str]] = {
    "energy_mean_db": "sum_pow10",
    "rms": "sum_sq",
    "mean": "sum_value",
    "max": "max_value",
}


def bucket_statistic(kind: str, n: I64, column: F64) -> F64:
    """Statistic ``kind`` per bucket from ``n`` and its column (``STATISTIC_COLUMN[kind]``)."""
    if kind == "energy_mean_db":
        with np.errstate(divide="ignore"):
            return 10.0 * np.log10(column / n)
    if kind == "rms":
        return np.sqrt(column / n)
    if kind == "max":
        return column
    return column / n


async def fetch_rollup(
    conn: AsyncConnection[Any],
    sensor_ids: Sequence[int],
    start: datetime,
    end: datetime,
    bucket: Bucket = "1 min",
) -> dict[int, Rollup]:
    """Buckets whose start lies in [start, end) for each sensor (sensors without data are
    absent). Works on both backends: the same relation names and columns.

    One row of binary arrays per sensor instead of one row per bucket: a 30-day history of a
    workplace is thousands of buckets, and decoding them row by row costs more than the query.
    """
    if bucket not in ROLLUP_TABLE:
        raise ValueError(f"bucket must be one of {sorted(ROLLUP_TABLE)}, got {bucket!r}")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end need a time zone")
    if not sensor_ids:
        return {}
    columns = ("n", "sum_value", "sum_sq", "sum_pow10", "min_value", "max_value")
    arrays = sql.SQL(", ").join(
        sql.SQL("array_send(array_agg({}))").format(sql.Identifier(c)) for c in columns
    )
    # Aggregating an ordered subquery keeps the order without one sort per aggregate
    # (PostgreSQL's documented "usually works"; the order is checked below all the same).
    query = sql.SQL(
        """
        SELECT sensor_id, array_send(array_agg(bucket_us)), {arrays}
        FROM (
            SELECT sensor_id, (extract(epoch FROM bucket) * 1000000)::bigint AS bucket_us,
                   n::bigint AS n, sum_value, sum_sq, sum_pow10, min_value, max_value
            FROM {table}
            WHERE sensor_id = ANY(%s::int[]) AND bucket >= %s AND bucket < %s
            ORDER BY sensor_id, bucket
        ) ordered
        GROUP BY sensor_id
        """
    ).format(arrays=arrays, table=sql.Identifier(ROLLUP_TABLE[bucket]))
    cur = await conn.execute(query, [list(sensor_ids), start, end])
    found: dict[int, Rollup] = {}
    for row in await cur.fetchall():
        starts = int8_array(row[1])
        counts = int8_array(row[2])
        sums = [float8_array(raw) for raw in row[3:]]
        if starts.size > 1 and np.any(np.diff(starts) < 0):
            order = np.argsort(starts, kind="stable")
            starts, counts, sums = starts[order], counts[order], [a[order] for a in sums]
        found[int(row[0])] = Rollup(int(row[0]), bucket, starts, counts, *sums)
    return found


@dataclass(frozen=True, slots=True)
class BucketLevels:
    """One sensor's buckets in a span: starts, sample counts and the representative statistic
    of its quantity (``Rollup.level``), ordered by bucket start."""

    sensor_id: int
    bucket: Bucket
    starts_us: I64
    n: I64
    level: F64

    def __len__(self) -> int:
        return len(self.n)


async def fetch_levels(
    conn: AsyncConnection[Any],
    quantities: Mapping[int, str],
    start: datetime,
    end: datetime,
    bucket: Bucket = "1 min",
) -> dict[int, BucketLevels]:
    """``Rollup.level`` of each sensor (``{sensor id: quantity}``) for the buckets whose start
    lies in [start, end), as ``fetch_rollup`` would give it; sensors without data are absent.

    For views over many sensors (the risk board, the exports): per bucket only the count and
    the one column the quantity's statistic needs travel, and the bucket start as the server
    stores it, so a month of thousands of sensors costs about half of ``fetch_rollup``.
    """
    if bucket not in ROLLUP_TABLE:
        raise ValueError(f"bucket must be one of {sorted(ROLLUP_TABLE)}, got {bucket!r}")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end need a time zone")
    by_kind: dict[str, list[int]] = {}
    for sensor_id, quantity in quantities.items():
        by_kind.setdefault(representative_statistic(quantity), []).append(sensor_id)
    found: dict[int, BucketLevels] = {}
    for kind, sensor_ids in sorted(by_kind.items()):
        query = sql.SQL(
            """
            SELECT sensor_id, array_send(array_agg(bucket)), array_send(array_agg(n)),
                   array_send(array_agg(value))
            FROM (
                SELECT sensor_id, bucket::timestamptz AS bucket, n::bigint AS n,
                       {column}::float8 AS value
                FROM {table}
                WHERE sensor_id = ANY(%s::int[]) AND bucket >= %s AND bucket < %s
                ORDER BY sensor_id, bucket
            ) ordered
            GROUP BY sensor_id
            """
        ).format(
            column=sql.Identifier(STATISTIC_COLUMN[kind]),
            table=sql.Identifier(ROLLUP_TABLE[bucket]),
        )
        cur = await conn.execute(query, [sorted(sensor_ids), start, end])
        for row in await cur.fetchall():
            starts = int8_array(row[1]) + PG_EPOCH_OFFSET_US
            counts = int8_array(row[2])
            column = float8_array(row[3])
            if starts.size > 1 and np.any(np.diff(starts) < 0):
                order = np.argsort(starts, kind="stable")
                starts, counts, column = starts[order], counts[order], column[order]
            sid = int(row[0])
            found[sid] = BucketLevels(
                sid, bucket, starts, counts, bucket_statistic(kind, counts, column)
            )
    return found


def rollup_from_block(block: ReadingBlock, sensor_id: int, bucket: Bucket) -> Rollup:
    """What ``fetch_rollup`` returns for ``sensor_id`` if ``block`` were all its readings (an
    oracle for tests, and the rollup of readings not stored yet)."""
    mask = block.sensor_ids == sensor_id
    stats = bucket_stats(
        ReadingBlock(block.times_us[mask], block.sensor_ids[mask], block.values[mask]),
        BUCKET_US[bucket],
    )
    return Rollup(
        sensor_id,
        bucket,
        stats.starts_us,
        stats.n,
        stats.sum_value,
        stats.sum_sq,
        stats.sum_pow10,
        stats.min_value,
        stats.max_value,
    )
