"""``[en689]``: the parameters of the EN 689 compliance test (:mod:`analytics.en689`): the
preliminary test's fractions by sample count, the statistical test's confidence, percentile,
minimum sample count and its U_T table.
"""

from __future__ import annotations

from types import MappingProxyType

from analytics.errors import NormsError
from analytics.norms.model import En689Norms
from analytics.norms.reader import LeafReader


def read_en689(r: LeafReader) -> En689Norms:
    pn = [int(x) for x in r.leaf("en689.preliminary_n")]
    pf = [float(x) for x in r.leaf("en689.preliminary_fraction")]
    if len(pn) != len(pf):
        raise NormsError("en689.preliminary_n and preliminary_fraction must have equal length")
    return En689Norms(
        preliminary_fraction=MappingProxyType(dict(zip(pn, pf, strict=True))),
        confidence=r.number("en689.confidence"),
        percentile=r.number("en689.percentile"),
        min_n_statistical=int(r.number("en689.min_n_statistical")),
        ut_table=MappingProxyType({int(k): float(v) for k, v in r.leaf("en689.ut_table").items()}),
    )


__all__ = ["read_en689"]
