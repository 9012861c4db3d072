"""The one-value paths of ``classify`` and ``band_position`` answer exactly as the array path
does, band edges, NaN and infinities included."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from analytics import band_position, classify, load_norms

NORMS = load_norms("default")
BANDS = [NORMS.band(name) for name in ("noise_lex8h", "vibration_hand_arm", "chemical_acute")]
EDGES = [float(e) for b in BANDS for e in b.upper]
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from(EDGES),
    st.floats(min_value=-200.0, max_value=400.0),
)


@given(value=VALUES, which=st.integers(0, len(BANDS) - 1))
def test_one_value_equals_the_array_path(value: float, which: int) -> None:
    bands = BANDS[which]
    array = np.array([value])
    assert int(classify(value, bands)) == int(classify(array, bands)[0])
    one = float(band_position(value, bands))
    many = float(band_position(array, bands)[0])
    assert (np.isnan(one) and np.isnan(many)) or one == many
