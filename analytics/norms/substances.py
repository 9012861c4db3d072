"""``[substances]``: gases, vapours and dusts with their limits (mg/m³) and properties.

Checked on load (kind, group of a gas, at least one limit, positive numbers), since a bad limit
would otherwise surface as a wrong class much later.
"""

from __future__ import annotations

from analytics.errors import NormsError
from analytics.norms.model import Substance
from analytics.norms.reader import LeafReader


def read_substances(r: LeafReader) -> dict[str, Substance]:
    return {sid: _substance(r, sid) for sid in r.node("substances")}


def _substance(r: LeafReader, sid: str) -> Substance:
    base = f"substances.{sid}"
    node = r.node(base)
    kind = str(node.get("kind", "gas"))
    if kind not in ("gas", "dust"):
        raise NormsError(f"{base}.kind must be 'gas' or 'dust'")
    group = r.opt_leaf(f"{base}.group")
    if kind == "gas" and group not in ("acute", "general"):
        raise NormsError(f"{base}.group must be 'acute' or 'general' for a gas")
    mm = r.opt_leaf(f"{base}.molar_mass_g_mol")
    pmax = r.opt_leaf(f"{base}.pdk_max_mg_m3")
    pss = r.opt_leaf(f"{base}.pdk_ss_mg_m3")
    hc = r.opt_leaf(f"{base}.hazard_class")
    if pmax is None and pss is None:
        raise NormsError(f"{base} needs pdk_max_mg_m3 or pdk_ss_mg_m3")
    for label_, val in (("pdk_max_mg_m3", pmax), ("pdk_ss_mg_m3", pss), ("molar", mm)):
        if val is not None and float(val) <= 0.0:
            raise NormsError(f"{base}.{label_} must be positive")
    return Substance(
        id=sid,
        name=str(node.get("name", sid)),
        kind=kind,
        group=str(group) if group is not None else "",
        molar_mass_g_mol=None if mm is None else float(mm),
        pdk_max_mg_m3=None if pmax is None else float(pmax),
        pdk_ss_mg_m3=None if pss is None else float(pss),
        hazard_class=None if hc is None else int(hc),
    )


__all__ = ["read_substances"]
