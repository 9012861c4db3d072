"""``[risk]``: the occupational risk (ПР) data: weights, risk levels and their names, the
protection classes and insurance tariff coefficients per level, activity base rates, and the
PPE and social-guarantee matrices.

Every per-level list must have one entry per level, checked on load: a short tariff list would
otherwise shift every coefficient by one level without an error.
"""

from __future__ import annotations

from types import MappingProxyType

from analytics.errors import NormsError
from analytics.norms.model import RiskNorms
from analytics.norms.reader import LeafReader, class_map


def read_risk(r: LeafReader) -> RiskNorms:
    rates: dict[int, float] = {}
    for k in r.node("risk.activity_base_rate_pct"):
        rates[int(k)] = r.number(f"risk.activity_base_rate_pct.{k}")
    ppe = {str(f): tuple(str(x) for x in r.leaf(f"risk.ppe.{f}")) for f in r.node("risk.ppe")}
    risk = RiskNorms(
        weight_bt=r.number("risk.weight_bt"),
        weight_os=r.number("risk.weight_os"),
        weight_z=r.number("risk.weight_z"),
        indicator_min=int(r.number("risk.indicator_min")),
        indicator_max=int(r.number("risk.indicator_max")),
        level_thresholds=tuple(float(x) for x in r.leaf("risk.level_thresholds")),
        level_names=tuple(str(x) for x in r.leaf("risk.level_names")),
        level_names_ru=tuple(str(x) for x in r.leaf("risk.level_names_ru")),
        level_names_kz=tuple(str(x) for x in r.leaf("risk.level_names_kz")),
        protection_classes=tuple(str(x) for x in r.leaf("risk.protection_classes")),
        protection_names=tuple(str(x) for x in r.leaf("risk.protection_names")),
        tariff_coefficients=tuple(float(x) for x in r.leaf("risk.tariff_coefficients")),
        activity_base_rate_pct=MappingProxyType(rates),
        ppe=MappingProxyType(ppe),
        ppe_row_by_class=MappingProxyType(
            class_map(r.leaf("risk.ppe_rows.by_class"), "risk.ppe_rows.by_class", int)
        ),
        ppe_by_level_too=frozenset(str(x) for x in r.leaf("risk.ppe_rows.by_level_too")),
        guarantees=tuple(tuple(str(x) for x in lvl) for lvl in r.leaf("risk.guarantees.by_level")),
    )
    _check_levels(risk)
    return risk


def _check_levels(risk: RiskNorms) -> None:
    n_levels = len(risk.level_thresholds) + 1
    for fname, seq in (
        ("level_names", risk.level_names),
        ("level_names_ru", risk.level_names_ru),
        ("level_names_kz", risk.level_names_kz),
        ("protection_classes", risk.protection_classes),
        ("protection_names", risk.protection_names),
        ("tariff_coefficients", risk.tariff_coefficients),
        ("guarantees.by_level", risk.guarantees),
        *((f"ppe.{k}", v) for k, v in risk.ppe.items()),
    ):
        if len(seq) != n_levels:
            raise NormsError(f"risk.{fname} needs {n_levels} entries, one per risk level")
    if any(not 1 <= row <= n_levels for row in risk.ppe_row_by_class.values()):
        raise NormsError(f"risk.ppe_rows.by_class rows must be 1..{n_levels}")
    if any(b <= a for a, b in zip(risk.level_thresholds, risk.level_thresholds[1:], strict=False)):
        raise NormsError("risk.level_thresholds must strictly increase")


__all__ = ["read_risk"]
