"""PostgreSQL's binary array format (``array_send``), read straight into numpy (and written from
it, ``Int8Array``).

Aggregating a sensor's samples or buckets into one array per column and decoding it here costs
no Python object per element: the reason the readings and rollup queries use it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg.adapt import Dumper
from psycopg.pq import Format

# One element of a binary int8[]/float8[]: its length (always 8) then the big-endian value.
_FLOAT8 = np.dtype([("length", ">i4"), ("value", ">f8")])
_INT8 = np.dtype([("length", ">i4"), ("value", ">i8")])
_HEADER_BYTES = 20  # ndim, has-nulls flag, element type oid, dimension size, lower bound
_EMPTY_BYTES = 12  # an empty array has no dimension header


def float8_array(raw: bytes | None) -> NDArray[np.float64]:
    """A one-dimensional ``float8[]`` without NULLs, as sent by ``array_send``."""
    if raw is None or len(raw) <= _EMPTY_BYTES:
        return np.empty(0, dtype=np.float64)
    return np.frombuffer(raw, dtype=_FLOAT8, offset=_HEADER_BYTES)["value"].astype(np.float64)


def int8_array(raw: bytes | None) -> NDArray[np.int64]:
    """A one-dimensional ``int8[]`` without NULLs, as sent by ``array_send``."""
    if raw is None or len(raw) <= _EMPTY_BYTES:
        return np.empty(0, dtype=np.int64)
    return np.frombuffer(raw, dtype=_INT8, offset=_HEADER_BYTES)["value"].astype(np.int64)


class Int8Array:
    """Integers as a query parameter (placeholder ``%b``): one binary ``int8[]`` built by numpy.
    psycopg dumps a Python list one element at a time in Python, which for the arrays of a
    commit of 1,000 small messages (8,000 sensors) cost more than the statements themselves."""

    __slots__ = ("data",)

    def __init__(self, values: Sequence[int] | NDArray[np.integer[Any]]) -> None:
        column = np.asarray(values, dtype=np.int64)
        if column.size == 0:
            self.data = _ARRAY_HEADER.pack(0, 0, _INT8_OID)
            return
        elements = np.empty(column.size, dtype=_INT8)
        elements["length"] = 8
        elements["value"] = column
        head = _ARRAY_HEADER.pack(1, 0, _INT8_OID) + _DIMENSION.pack(column.size, 1)
        self.data = head + elements.tobytes()


_INT8_OID = 20
_ARRAY_HEADER = struct.Struct("!iiI")  # dimensions, has-nulls flag, element type oid
_DIMENSION = struct.Struct("!ii")  # size, lower bound


class _Int8ArrayDumper(Dumper):
    format = Format.BINARY
    oid = 1016  # int8[]

    def dump(self, obj: Any) -> bytes:
        return obj.data  # type: ignore[no-any-return]


psycopg.adapters.register_dumper(Int8Array, _Int8ArrayDumper)
