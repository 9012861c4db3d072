"""Classes of working conditions, their combination and the harmfulness index В.

* Per factor, a value falls into a class band; bands are lower-exclusive, upper-inclusive
  (DOMAIN.md §2, Russian order 33н Annex 2): ``class = classes[searchsorted(upper, x, 'left')]``.
* Combination (order 33н; DOMAIN.md §2): the highest factor class; three or more factors at 3.1
  give 3.2; two or more factors at 3.2 or above raise the highest by one step, up to a cap
  (3.4 by default); class 4 is never reached by combination.
* Discrete В = clamp(points(class) − offset, min, max) with the SOUT points scale
  (DOMAIN.md §3): classes 1–2 → 1, 3.1 → 2, 3.2 → 3, 3.3 → 4, 3.4 and 4 → 5.
* Continuous В = start(class) + span(class) × position, position ∈ [0, cap] (cap 0.99):
  inside a closed band the linear position ``(x − lower)/(upper − lower)``; in the class-2
  band the fraction of the limit (``x/limit`` for ratios, the energy ratio
  ``10^((x − limit)/10)`` for dB); in an open-ended top band the excess over the lower edge in
  units of the previous band's width. Starts and spans are profile data; by default 3.4 and 4
  share grade 5 as [5, 5.5) and [5.5, 6), so continuous В is monotone in exposure and lies in
  [discrete В, discrete В + 1).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from analytics.errors import InputError, NormsError
from analytics.types import FloatArray, IntArray


class WorkingClass(StrEnum):
    """Class of working conditions (1 optimal, 2 acceptable, 3.1–3.4 harmful, 4 dangerous)."""

    C1 = "1"
    C2 = "2"
    C3_1 = "3.1"
    C3_2 = "3.2"
    C3_3 = "3.3"
    C3_4 = "3.4"
    C4 = "4"

    @property
    def rank(self) -> int:
        """Position on the ordered scale, 0 for class 1 … 6 for class 4."""
        return _RANK[self]

    @classmethod
    def parse(cls, value: str | float | WorkingClass) -> WorkingClass:
        """Parse ``"3.2"``, ``3.2`` or a member; raise :class:`InputError` otherwise."""
        if isinstance(value, WorkingClass):
            return value
        text = str(value).strip()
        if text == "1.0":
            text = "1"
        elif text in ("2.0", "4.0"):
            text = text[0]
        try:
            return cls(text)
        except ValueError:
            raise InputError(
                f"unknown class of working conditions {value!r}; use one of "
                + ", ".join(c.value for c in _ORDER)
            ) from None

    def step_up(self) -> WorkingClass:
        """The next class on the scale (class 4 stays 4)."""
        return _ORDER[min(self.rank + 1, len(_ORDER) - 1)]


_ORDER: tuple[WorkingClass, ...] = tuple(WorkingClass)
# A dict, not _ORDER.index: ranks are looked up hundreds of thousands of times in a rebuild.
_RANK: dict[WorkingClass, int] = {c: i for i, c in enumerate(_ORDER)}


def class_from_rank(rank: int) -> WorkingClass:
    """Inverse of :attr:`WorkingClass.rank`."""
    return _ORDER[rank]


@dataclass(frozen=True, slots=True)
class ClassBands:
    """Class bands of one factor metric.

    Attributes:
        name: band table id, e.g. ``"noise_lex8h"``.
        metric: what is compared, e.g. ``"lex8h_db"``.
        unit: unit of the metric.
        scale: ``"db"`` or ``"ratio"``, used for the position inside the class-2 band.
        upper: upper-inclusive edges, strictly increasing.
        classes: ``len(upper) + 1`` classes; the last lies above the last edge.
    """

    name: str
    metric: str
    unit: str
    scale: str
    upper: tuple[float, ...]
    classes: tuple[WorkingClass, ...]

    def __post_init__(self) -> None:
        if len(self.classes) != len(self.upper) + 1:
            raise NormsError(
                f"bands {self.name!r}: need len(classes) == len(upper) + 1, got "
                f"{len(self.classes)} classes for {len(self.upper)} edges"
            )
        if any(b <= a for a, b in zip(self.upper, self.upper[1:], strict=False)):
            raise NormsError(f"bands {self.name!r}: upper edges must strictly increase")
        if any(b.rank <= a.rank for a, b in zip(self.classes, self.classes[1:], strict=False)):
            raise NormsError(f"bands {self.name!r}: classes must rise from band to band")
        if self.scale not in ("db", "ratio"):
            raise NormsError(f"bands {self.name!r}: scale must be 'db' or 'ratio'")


@dataclass(frozen=True, slots=True)
class HarmfulnessScale:
    """Class → points → В and the continuous-В layout (profile data)."""

    points: Mapping[WorkingClass, int]
    offset: int
    minimum: int
    maximum: int
    continuous_start: Mapping[WorkingClass, float]
    continuous_span: Mapping[WorkingClass, float]
    position_cap: float

    def discrete(self, cls: WorkingClass) -> int:
        """``В = clamp(points(class) − offset, min, max)``."""
        return int(min(max(self.points[cls] - self.offset, self.minimum), self.maximum))

    def continuous(self, cls: WorkingClass, position: float) -> float:
        """``start(class) + span(class) · clip(position, 0, cap)``."""
        p = min(max(position, 0.0), self.position_cap)
        return float(self.continuous_start[cls] + self.continuous_span[cls] * p)


def classify(values: FloatArray | float, bands: ClassBands) -> IntArray:
    """Class rank per value (see :attr:`WorkingClass.rank`); −1 for NaN (no class)."""
    if isinstance(values, float | int):
        # One value (a sensor's metric): the same answer without numpy's cost per call.
        if math.isnan(values):
            return np.asarray(-1, dtype=np.intp)
        return np.asarray(bands.classes[bisect_left(bands.upper, values)].rank, dtype=np.intp)
    x = np.asarray(values, dtype=np.float64)
    idx = np.searchsorted(np.asarray(bands.upper), x, side="left")
    ranks = np.asarray([c.rank for c in bands.classes], dtype=np.intp)[idx]
    return np.where(np.isnan(x), -1, ranks).astype(np.intp)


def band_position(values: FloatArray | float, bands: ClassBands) -> FloatArray:
    """Position of each value inside its band (see the module docstring), unclipped; NaN → NaN."""
    if isinstance(values, float | int):
        return np.asarray(_band_position_one(float(values), bands), dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    up = np.asarray(bands.upper, dtype=np.float64)
    idx = np.searchsorted(up, x, side="left")
    n = up.size
    lower = np.where(idx > 0, up[np.maximum(idx - 1, 0)], np.nan)
    upper = np.where(idx < n, up[np.minimum(idx, n - 1)], np.nan)
    prev_width = np.where(idx >= 2, lower - up[np.maximum(idx - 2, 0)], np.nan)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        first = np.power(10.0, (x - up[0]) / 10.0) if bands.scale == "db" else x / up[0]
        middle = (x - lower) / (upper - lower)
        top = (x - lower) / prev_width
    pos = np.where(idx == 0, first, np.where(idx < n, middle, top))
    return np.where(np.isnan(x), np.nan, np.maximum(pos, 0.0))


def _band_position_one(x: float, bands: ClassBands) -> float:
    """:func:`band_position` of one value, in plain floats (the same formulas)."""
    if math.isnan(x):
        return math.nan
    up = bands.upper
    idx = bisect_left(up, x)
    if idx == 0:
        if bands.scale == "db":
            # numpy's power, not math.pow: the two can differ in the last bit.
            with np.errstate(over="ignore"):
                pos = float(np.power(10.0, (x - up[0]) / 10.0))
        else:
            pos = x / up[0] if up[0] != 0.0 else math.copysign(math.inf, x) if x else math.nan
    elif idx < len(up):
        pos = (x - up[idx - 1]) / (up[idx] - up[idx - 1])
    elif idx >= 2:
        pos = (x - up[idx - 1]) / (up[idx - 1] - up[idx - 2])
    else:
        pos = math.nan
    return math.nan if math.isnan(pos) else max(pos, 0.0)


def classify_one(value: float, bands: ClassBands) -> WorkingClass | None:
    """Class of one value, None for NaN."""
    r = int(classify(value, bands))
    return None if r < 0 else class_from_rank(r)


@dataclass(frozen=True, slots=True)
class CombinedClass:
    """Result of :func:`combine_classes` with the reason."""

    working_class: WorkingClass
    highest: WorkingClass
    rule: str
    deciding: tuple[str, ...] = field(default=())


def combine_classes(
    factors: Mapping[str, WorkingClass | str] | Iterable[WorkingClass | str],
    *,
    cap: WorkingClass | str = WorkingClass.C3_4,
    three_at_3_1_gives: WorkingClass | str = WorkingClass.C3_2,
) -> CombinedClass:
    """Combine factor classes into the workplace class (order 33н; DOMAIN.md §2).

    The highest class counts; if three or more factors are at 3.1 the result is at least
    ``three_at_3_1_gives`` (3.2); if two or more factors are at 3.2 or above the highest is
    raised one step, but not above ``cap`` (≤ 3.4; class 4 is never reached by combination).

    Args:
        factors: factor name → class (or just classes, then named ``factor_1`` …).
        cap: the highest class the raise may reach.
        three_at_3_1_gives: the class that three factors at 3.1 give.

    Raises:
        InputError: if there are no factors or ``cap`` is above 3.4.
    """
    named: dict[str, WorkingClass]
    if isinstance(factors, Mapping):
        named = {str(k): WorkingClass.parse(v) for k, v in factors.items()}
    else:
        named = {f"factor_{i + 1}": WorkingClass.parse(v) for i, v in enumerate(factors)}
    if not named:
        raise InputError("combine_classes needs at least one factor class")
    cap_c = WorkingClass.parse(cap)
    if cap_c.rank > WorkingClass.C3_4.rank:
        raise InputError("the combination cap must be 3.4 or lower: class 4 is never combined")
    three = WorkingClass.parse(three_at_3_1_gives)
    highest = max(named.values(), key=lambda c: c.rank)
    top = tuple(sorted(k for k, v in named.items() if v == highest))
    at_3_1 = tuple(sorted(k for k, v in named.items() if v == WorkingClass.C3_1))
    harmful = tuple(sorted(k for k, v in named.items() if v.rank >= WorkingClass.C3_2.rank))
    result, rule, deciding = highest, f"highest factor class {highest.value}", top
    if len(at_3_1) >= 3 and result.rank < three.rank:
        result = three
        rule = f"{len(at_3_1)} factors at class 3.1 give class {three.value}"
        deciding = at_3_1
    if len(harmful) >= 2 and highest.rank < cap_c.rank:
        raised = highest.step_up()
        if raised.rank > cap_c.rank:
            raised = cap_c
        if raised.rank > result.rank:
            result = raised
            rule = (
                f"{len(harmful)} factors at class 3.2 or above raise the highest "
                f"({highest.value}) one step to {raised.value} (cap {cap_c.value})"
            )
            deciding = harmful
    return CombinedClass(working_class=result, highest=highest, rule=rule, deciding=deciding)


def harmfulness_index(
    working_class: WorkingClass | str, scale: HarmfulnessScale, position: float = 0.0
) -> tuple[int, float]:
    """Discrete and continuous В for a class and a position inside its band.

    Returns:
        ``(В, В_continuous)``; see the module docstring for both definitions.
    """
    cls = WorkingClass.parse(working_class)
    return scale.discrete(cls), scale.continuous(cls, position)


def worst(classes: Sequence[WorkingClass]) -> WorkingClass:
    """The highest class of a non-empty sequence."""
    if not classes:
        raise InputError("worst() needs at least one class")
    return max(classes, key=lambda c: c.rank)


__all__ = [
    "ClassBands",
    "CombinedClass",
    "HarmfulnessScale",
    "WorkingClass",
    "band_position",
    "class_from_rank",
    "classify",
    "classify_one",
    "combine_classes",
    "harmfulness_index",
    "worst",
]
