"""Writing readings with binary COPY and reading them back.

Readings travel through ingest as columns (``ReadingBlock``: µs since the Unix epoch, sensor
ids, values) rather than as one Python object per sample, and reach PostgreSQL as one binary
COPY buffer built with numpy: at hundreds of thousands of readings a second, per-row Python work
would cost more CPU than the database spends storing them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from psycopg import AsyncConnection

US_PER_S: Final = 1_000_000
US_PER_DAY: Final = 86_400 * US_PER_S
# PostgreSQL's binary timestamptz counts microseconds from 2000-01-01 00:00 UTC.
PG_EPOCH_OFFSET_US: Final = 946_684_800 * US_PER_S

COPY_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER: Final = b"\xff\xff"
# One tuple of (timestamptz, int4, float8) in COPY BINARY: field count, then length + value per
# field, all big-endian and unaligned (numpy's packed structured dtype is exactly that).
_COPY_ROW: Final = np.dtype(
    [
        ("fields", ">i2"),
        ("time_len", ">i4"),
        ("time", ">i8"),
        ("sensor_len", ">i4"),
        ("sensor", ">i4"),
        ("value_len", ">i4"),
        ("value", ">f8"),
    ]
)
COPY_READINGS_SQL: Final = "COPY readings (time, sensor_id, value) FROM STDIN (FORMAT BINARY)"


@dataclass(frozen=True, slots=True)
class ReadingBlock:
    """Readings as three equally long columns."""

    times_us: NDArray[np.int64]  # µs since 1970-01-01 UTC
    sensor_ids: NDArray[np.int32]
    values: NDArray[np.float64]

    def __post_init__(self) -> None:
        if not (len(self.times_us) == len(self.sensor_ids) == len(self.values)):
            raise ValueError(
                f"columns differ in length: {len(self.times_us)} times, "
                f"{len(self.sensor_ids)} sensor ids, {len(self.values)} values"
            )

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def empty(cls) -> ReadingBlock:
        return cls(np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.float64))

    @classmethod
    def concat(cls, blocks: Iterable[ReadingBlock]) -> ReadingBlock:
        parts = list(blocks)
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([b.times_us for b in parts]),
            np.concatenate([b.sensor_ids for b in parts]),
            np.concatenate([b.values for b in parts]),
        )

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[datetime, int, float]]) -> ReadingBlock:
        """From ``(aware datetime, sensor id, value)`` tuples (tests and small callers)."""
        listed = list(rows)
        return cls(
            np.array([datetime_to_us(r[0]) for r in listed], dtype=np.int64),
            np.array([r[1] for r in listed], dtype=np.int32),
            np.array([r[2] for r in listed], dtype=np.float64),
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_to_us(moment: datetime) -> int:
    """Exact µs since the Unix epoch of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: readings need a time zone")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds


def us_to_datetime(us: int) -> datetime:
    return datetime.fromtimestamp(us // US_PER_S, UTC).replace(microsecond=us % US_PER_S)


def encode_copy_rows(block: ReadingBlock) -> NDArray[np.void]:
    """The tuples of a block in COPY BINARY layout (without signature and trailer)."""
    n = len(block)
    rows = _row_template(n)
    rows["time"] = block.times_us - PG_EPOCH_OFFSET_US
    rows["sensor"] = block.sensor_ids
    rows["value"] = block.values
    return rows


_template = np.empty(0, dtype=_COPY_ROW)


def _row_template(n: int) -> NDArray[np.void]:
    """``n`` rows with the constant fields (count and lengths) filled in, from a buffer kept
    between batches: only time, sensor and value change."""
    global _template
    if len(_template) < n:
        _template = np.empty(max(n, 2 * len(_template)), dtype=_COPY_ROW)
        _template["fields"] = 3
        _template["time_len"] = 8
        _template["sensor_len"] = 4
        _template["value_len"] = 8
    return _template[:n].copy()


def encode_copy_binary(block: ReadingBlock) -> bytes:
    """The whole ``COPY ... (FORMAT BINARY)`` stream (signature, tuples, trailer) of a block of
    ``(time timestamptz, sensor_id int4, value float8)`` rows."""
    return b"".join((COPY_SIGNATURE, encode_copy_rows(block).tobytes(), COPY_TRAILER))


async def copy_readings(conn: AsyncConnection[Any], block: ReadingBlock) -> int:
    """COPY a block into ``readings`` (in the caller's transaction); returns the row count."""
    if len(block) == 0:
        return 0
    rows = encode_copy_rows(block)
    async with conn.cursor().copy(COPY_READINGS_SQL) as copy:
        await copy.write(COPY_SIGNATURE)
        await copy.write(rows.view(np.uint8).data)
        await copy.write(COPY_TRAILER)
    return len(block)


def days_of(times_us: NDArray[np.int64]) -> set[int]:
    """UTC days (µs since the epoch at 00:00) that the times fall on."""
    if len(times_us) == 0:
        return set()
    first = int(times_us.min()) // US_PER_DAY
    last = int(times_us.max()) // US_PER_DAY
    if last - first <= 1:  # the usual batch: one day, or both sides of one midnight
        return {first * US_PER_DAY, last * US_PER_DAY}
    days = np.unique(np.floor_divide(times_us, US_PER_DAY)) * US_PER_DAY
    return {int(d) for d in days}


async def ensure_partitions(conn: AsyncConnection[Any], start: datetime, end: datetime) -> int:
    """Create the day partitions covering [start, end] (a no-op on TimescaleDB)."""
    row = await (
        await conn.execute("SELECT qorgau_ensure_readings_partitions(%s, %s)", [start, end])
    ).fetchone()
    return int(row[0]) if row else 0


async def ensure_day_partitions(conn: AsyncConnection[Any], days_us: Iterable[int]) -> int:
    """Create the partitions of exactly these UTC days. Days, not a min..max range: one sample
    from a device whose clock was reset must not create years of empty partitions."""
    days = sorted(days_us)
    if not days:
        return 0
    row = await (
        await conn.execute(
            "SELECT COALESCE(sum(qorgau_ensure_readings_partitions(d, d)), 0)::int "
            "FROM unnest(%s::timestamptz[]) AS d",
            [[us_to_datetime(d) for d in days]],
        )
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True, slots=True)
class Reading:
    time: datetime
    value: float


async def fetch_readings(
    conn: AsyncConnection[Any],
    sensor_id: int,
    start: datetime,
    end: datetime,
    *,
    limit: int = 100_000,
) -> list[Reading]:
    cur = await conn.execute(
        """
        SELECT time, value FROM readings
        WHERE sensor_id = %s AND time >= %s AND time < %s
        ORDER BY time
        LIMIT %s
        """,
        [sensor_id, start, end, limit],
    )
    return [Reading(time=t, value=v) for t, v in await cur.fetchall()]
