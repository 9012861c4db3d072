"""PostgreSQL's binary array format (``array_send``), read straight into numpy.

Aggregating a sensor's samples or buckets into one array per column and decoding it here costs
no Python object per element: the reason the readings and rollup queries use it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

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
