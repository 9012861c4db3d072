"""The hand-built binary COPY stream is byte for byte what PostgreSQL itself produces, and reads
back as the rows psycopg's own typed COPY writes."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from store.connection import connect_async
from store.readings import (
    COPY_READINGS_SQL,
    ReadingBlock,
    datetime_to_us,
    encode_copy_binary,
    us_to_datetime,
)

pytestmark = [pytest.mark.anyio, pytest.mark.services]

EDGE_TIMES = [
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # before the Unix epoch
    datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # before PostgreSQL's epoch
    datetime(2000, 1, 1, tzinfo=UTC),
    datetime(2026, 11, 23, 8, 15, 2, 120_000, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
]
EDGE_VALUES = [0.0, -0.0, 5e-324, -1.5, 1.7976931348623157e308, 84.1]


def block() -> ReadingBlock:
    rows = [
        (t, sensor, v) for t in EDGE_TIMES for sensor in (1, 2_147_483_647) for v in EDGE_VALUES
    ]
    return ReadingBlock.from_rows(rows)


async def test_encoding_equals_postgresql_binary_copy_output(pg_url: str, schema: str) -> None:
    data = block()
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        await conn.execute("CREATE TEMP TABLE src (i int, time timestamptz, s int4, v float8)")
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO src VALUES (%s, %s, %s, %s)",
                [
                    (i, us_to_datetime(int(t)), int(s), float(v))
                    for i, (t, s, v) in enumerate(
                        zip(data.times_us, data.sensor_ids, data.values, strict=True)
                    )
                ],
            )
        server = bytearray()
        async with conn.cursor().copy(
            "COPY (SELECT time, s, v FROM src ORDER BY i) TO STDOUT (FORMAT BINARY)"
        ) as copy:
            async for chunk in copy:
                server += chunk
    assert encode_copy_binary(data) == bytes(server)


async def test_hand_built_and_psycopg_typed_copy_store_the_same_rows(
    pg_url: str, schema: str
) -> None:
    data = block()
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        for table in ("ours", "theirs"):
            await conn.execute(
                f"CREATE TEMP TABLE {table} (time timestamptz, sensor_id int4, value float8)"
            )
        async with conn.cursor().copy(COPY_READINGS_SQL.replace("readings", "ours")) as copy:
            await copy.write(encode_copy_binary(data))
        async with conn.cursor().copy(COPY_READINGS_SQL.replace("readings", "theirs")) as copy:
            copy.set_types(["timestamptz", "int4", "float8"])
            for t, s, v in zip(data.times_us, data.sensor_ids, data.values, strict=True):
                await copy.write_row((us_to_datetime(int(t)), int(s), float(v)))
        # Compare bit patterns: -0.0 == 0.0 as numbers, but both must survive as written.
        query = (
            "SELECT time, sensor_id, float8send(value) FROM {} ORDER BY time, sensor_id, "
            "float8send(value)"
        )
        ours = await (await conn.execute(query.format("ours"))).fetchall()
        theirs = await (await conn.execute(query.format("theirs"))).fetchall()
    assert ours == theirs
    assert len(ours) == len(data)


def test_microseconds_round_trip_through_datetimes() -> None:
    for moment in EDGE_TIMES:
        assert us_to_datetime(datetime_to_us(moment)) == moment
    assert datetime_to_us(datetime(1970, 1, 1, tzinfo=UTC)) == 0


def test_empty_block_is_a_valid_stream() -> None:
    assert encode_copy_binary(ReadingBlock.empty()) == (
        b"PGCOPY\n\xff\r\n\x00" + bytes(8) + b"\xff\xff"
    )


def test_columns_must_have_equal_length() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        ReadingBlock(np.zeros(2, np.int64), np.zeros(1, np.int32), np.zeros(2))
