"""Integer arrays built by numpy in PostgreSQL's binary format reach the server as the
``bigint[]`` of their values, and come back through ``int8_array``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from store.binary_arrays import Int8Array, int8_array
from store.connection import connect_async

pytestmark = [pytest.mark.anyio, pytest.mark.services]

EDGES = [0, 1, -1, 7, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63)]
CASES: list[Sequence[int] | NDArray[np.int32]] = [
    EDGES,
    [],
    [42],
    list(range(-5000, 5000, 7)),
    np.array([3, 1, 2], np.int32),
]


@pytest.mark.parametrize("values", CASES)
async def test_int8_array_is_the_bigint_array_of_its_values(
    pg_url: str, schema: str, values: Sequence[int] | NDArray[np.int32]
) -> None:
    expected = [int(v) for v in values]
    text = "{" + ",".join(map(str, expected)) + "}"
    async with await connect_async(pg_url, schema, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT %b::bigint[] = %s::bigint[], cardinality(%b::bigint[]), "
            "array_send(%b::bigint[])",
            [Int8Array(values), text, Int8Array(values), Int8Array(values)],
        )
        row = await cur.fetchone()
    assert row is not None
    same, count, raw = row
    assert (same, count) == (True, len(expected))
    assert int8_array(raw).tolist() == expected
