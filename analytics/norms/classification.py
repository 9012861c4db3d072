"""Working-class data: the band tables that turn a measured value into a class, the
harmfulness scale of the combined assessment, and the combination rules (``[bands]``,
``[harmfulness]``, ``[combination]``).
"""

from __future__ import annotations

from collections.abc import Mapping

from analytics.classes import ClassBands, HarmfulnessScale, WorkingClass
from analytics.errors import NormsError
from analytics.norms.reader import LeafReader, class_map, classes_of

#: Band tables the assessments look up by name; a profile without one of them cannot assess.
REQUIRED_BANDS = (
    "noise_lex8h",
    "vibration_hand_arm",
    "vibration_whole_body_z",
    "vibration_whole_body_xy",
    "chemical_general",
    "chemical_acute",
    "dust_fibrogenic_strong",
    "dust_fibrogenic_weak",
)


def read_bands(r: LeafReader) -> dict[str, ClassBands]:
    bands: dict[str, ClassBands] = {}
    for bname in r.node("bands"):
        base = f"bands.{bname}"
        node = r.node(base)
        bands[bname] = ClassBands(
            name=bname,
            metric=str(node.get("metric", "")),
            unit=str(node.get("unit", "")),
            scale=str(node.get("scale", "ratio")),
            upper=tuple(float(x) for x in r.leaf(f"{base}.upper")),
            classes=classes_of(r.leaf(f"{base}.classes"), f"{base}.classes"),
        )
    return bands


def require_bands(bands: Mapping[str, ClassBands], label: str) -> None:
    for needed in REQUIRED_BANDS:
        if needed not in bands:
            raise NormsError(f"norms profile {label!r} lacks band table 'bands.{needed}'")


def read_harmfulness(r: LeafReader) -> HarmfulnessScale:
    return HarmfulnessScale(
        points=class_map(r.leaf("harmfulness.points"), "harmfulness.points", int),
        offset=int(r.number("harmfulness.offset")),
        minimum=int(r.number("harmfulness.min")),
        maximum=int(r.number("harmfulness.max")),
        continuous_start=class_map(
            r.leaf("harmfulness.continuous_start"), "harmfulness.continuous_start", float
        ),
        continuous_span=class_map(
            r.leaf("harmfulness.continuous_span"), "harmfulness.continuous_span", float
        ),
        position_cap=r.number("harmfulness.position_cap"),
    )


def read_combination_cap(r: LeafReader) -> WorkingClass:
    """The highest class a combination of factors may give (class 4 is never combined)."""
    cap = WorkingClass.parse(r.leaf("combination.cap"))
    if cap.rank > WorkingClass.C3_4.rank:
        raise NormsError("combination.cap must be 3.4 or lower (class 4 is never combined)")
    return cap


def read_three_at_3_1_gives(r: LeafReader) -> WorkingClass:
    """The class that three or more factors at 3.1 give at least, together."""
    return WorkingClass.parse(r.leaf("combination.three_at_3_1_gives"))


__all__ = [
    "REQUIRED_BANDS",
    "read_bands",
    "read_combination_cap",
    "read_harmfulness",
    "read_three_at_3_1_gives",
    "require_bands",
]
