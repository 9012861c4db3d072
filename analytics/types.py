"""Array type aliases used across the numeric core (declared once, here)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
Int64Array = NDArray[np.int64]  # epoch seconds and keys that must be 64-bit everywhere
BoolArray = NDArray[np.bool_]

__all__ = ["BoolArray", "FloatArray", "Int64Array", "IntArray"]
