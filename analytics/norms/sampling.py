"""``[sampling]`` and ``[physical_range]``: what counts as a measurement, i.e. how samples
become exposure time (gaps, coverage) and which values a quantity can physically take (beyond
them a sample is a sensor fault, not an exposure).
"""

from __future__ import annotations

from analytics.errors import NormsError
from analytics.norms.model import PHYSICAL_RANGE_KEYS, SamplingPolicy
from analytics.norms.reader import LeafReader


def read_sampling(r: LeafReader) -> SamplingPolicy:
    sampling = SamplingPolicy(
        max_gap_s=r.number("sampling.max_gap_s"),
        fallback_interval_s=r.number("sampling.fallback_interval_s"),
        min_coverage=r.number("sampling.min_coverage"),
        min_window_fraction=r.number("sampling.min_window_fraction"),
    )
    if sampling.max_gap_s <= 0 or sampling.fallback_interval_s <= 0:
        raise NormsError("sampling.max_gap_s and fallback_interval_s must be positive")
    return sampling


def read_physical_ranges(r: LeafReader, label: str) -> dict[str, tuple[float, float]]:
    ranges: dict[str, tuple[float, float]] = {}
    for q in r.node("physical_range"):
        pair = r.leaf(f"physical_range.{q}")
        if not isinstance(pair, list) or len(pair) != 2 or not float(pair[0]) < float(pair[1]):
            raise NormsError(f"physical_range.{q} must be [low, high] with low < high")
        ranges[str(q)] = (float(pair[0]), float(pair[1]))
    for needed in PHYSICAL_RANGE_KEYS:
        if needed not in ranges:
            raise NormsError(f"norms profile {label!r} lacks 'physical_range.{needed}'")
    return ranges


__all__ = ["read_physical_ranges", "read_sampling"]
