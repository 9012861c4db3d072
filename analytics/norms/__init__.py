"""Norms profiles: limits, class bands, substances, В and ПР parameters as versioned data.

A profile is a TOML file under ``analytics/norms/`` (``default.toml`` ships) or any path. Every
number is a leaf ``{ value = ..., source = "<key>" }`` whose key is defined in ``[sources]``.
A profile may start with ``extends = "<name or path>"``: it is merged over its parent (tables
merge key by key, a leaf replaces the parent's leaf, ``[sources]`` merge). :func:`load_norms`
returns a frozen :class:`Norms` with typed fields and, in :attr:`Norms.sources`, the source
text of every leaf keyed by its dotted path.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from analytics.classes import ClassBands, HarmfulnessScale, WorkingClass
from analytics.errors import NormsError

_PACKAGE = "analytics.norms"

#: Keys of ``[physical_range]`` every profile has (see ``analytics.assess.physical_range``).
PHYSICAL_RANGE_KEYS = (
    "noise_laeq",
    "noise_lcpeak",
    "vibration_m_s2",
    "gas_ppm",
    "gas_mg_m3",
    "gas_pct_vol",
    "gas_pct_lel",
    "dust_mg_m3",
)


@dataclass(frozen=True, slots=True)
class Substance:
    """A gas, vapour or dust with its limits (mg/m³) and properties."""

    id: str
    name: str
    kind: str  # "gas" or "dust"
    group: str  # "acute" or "general" (gas); "" for dust
    molar_mass_g_mol: float | None
    pdk_max_mg_m3: float | None
    pdk_ss_mg_m3: float | None
    hazard_class: int | None


@dataclass(frozen=True, slots=True)
class SamplingPolicy:
    """How samples become exposure time."""

    max_gap_s: float
    fallback_interval_s: float
    min_coverage: float
    min_window_fraction: float


@dataclass(frozen=True, slots=True)
class RiskNorms:
    """ПР weights, levels, tariffs, PPE and social-guarantee matrices."""

    weight_bt: float
    weight_os: float
    weight_z: float
    indicator_min: int
    indicator_max: int
    level_thresholds: tuple[float, ...]
    level_names: tuple[str, ...]
    level_names_ru: tuple[str, ...]
    level_names_kz: tuple[str, ...]
    protection_classes: tuple[str, ...]
    protection_names: tuple[str, ...]
    tariff_coefficients: tuple[float, ...]
    activity_base_rate_pct: Mapping[int, float]
    ppe: Mapping[str, tuple[str, ...]]
    ppe_row_by_class: Mapping[WorkingClass, int]
    ppe_by_level_too: frozenset[str]
    guarantees: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class En689Norms:
    """EN 689 test parameters."""

    preliminary_fraction: Mapping[int, float]
    confidence: float
    percentile: float
    min_n_statistical: int
    ut_table: Mapping[int, float]


@dataclass(frozen=True, slots=True)
class Norms:
    """A loaded norms profile (frozen)."""

    name: str
    version: str
    description: str
    chain: tuple[str, ...]
    sampling: SamplingPolicy
    dose_criterion_db: float
    k_xy: float
    k_z: float
    bands: Mapping[str, ClassBands]
    dust_fibrogenic_threshold_mg_m3: float
    combination_cap: WorkingClass
    three_at_3_1_gives: WorkingClass
    harmfulness: HarmfulnessScale
    substances: Mapping[str, Substance]
    risk: RiskNorms
    en689: En689Norms
    sources: Mapping[str, str] = field(default_factory=dict)
    physical_range: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def substance(self, substance_id: str) -> Substance:
        """Look a substance up by id (case-insensitive)."""
        key = _find_key(self.substances, substance_id)
        if key is None:
            raise NormsError(
                f"substance {substance_id!r} is not in norms profile {self.name!r}; known: "
                + ", ".join(sorted(self.substances))
                + '. Add it to an enterprise profile (extends = "default")'
            )
        return self.substances[key]

    def band(self, name: str) -> ClassBands:
        """A band table by id."""
        try:
            return self.bands[name]
        except KeyError:
            raise NormsError(f"norms profile {self.name!r} has no band table {name!r}") from None


def _find_key(mapping: Mapping[str, Any], key: str) -> str | None:
    if key in mapping:
        return key
    low = key.lower()
    for k in mapping:
        if k.lower() == low:
            return k
    return None


def _is_leaf(node: object) -> bool:
    return isinstance(node, dict) and "value" in node and "source" in node


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if k in out and isinstance(out[k], dict) and isinstance(v, dict) and not _is_leaf(v):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _read(
    name_or_path: str | Path, seen: tuple[str, ...]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    text: str
    label: str
    path = Path(name_or_path)
    as_str = str(name_or_path)
    if path.suffix == ".toml" or "/" in as_str or path.exists():
        if not path.is_file():
            raise NormsError(f"norms profile file {as_str!r} does not exist")
        text = path.read_text(encoding="utf-8")
        label = str(path.resolve())
    else:
        if not as_str.replace("_", "").replace("-", "").isalnum():
            raise NormsError(f"bad norms profile name {as_str!r}")
        res = resources.files(_PACKAGE).joinpath(f"{as_str}.toml")
        if not res.is_file():
            raise NormsError(
                f"no built-in norms profile {as_str!r}; use 'default' or a path to a .toml file"
            )
        text = res.read_text(encoding="utf-8")
        label = as_str
    if label in seen:
        raise NormsError(f"norms profile {label!r} extends itself (cycle: {' → '.join(seen)})")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NormsError(f"norms profile {label!r} is not valid TOML: {exc}") from None
    parent = data.pop("extends", None)
    chain = (*seen, label)
    if parent is None:
        return data, chain
    if not isinstance(parent, str):
        raise NormsError(f"{label}: 'extends' must be a profile name or path")
    if not Path(parent).is_absolute() and (parent.endswith(".toml") or "/" in parent):
        parent = str((path.parent / parent) if path.is_file() else Path(parent))
    base, chain = _read(parent, chain)
    return _merge(base, data), chain


class _Reader:
    """Pulls typed leaves out of the merged dict and records their sources."""

    def __init__(self, data: dict[str, Any], label: str) -> None:
        self.data = data
        self.label = label
        src = data.get("sources", {})
        if not isinstance(src, dict):
            raise NormsError(f"{label}: [sources] must be a table")
        self.source_text: dict[str, str] = {str(k): str(v) for k, v in src.items()}
        self.sources: dict[str, str] = {}

    def node(self, path: str) -> Any:
        cur: Any = self.data
        for part in path.split("."):
            if not isinstance(cur, dict) or part not in cur:
                raise NormsError(f"norms profile {self.label!r} lacks '{path}'")
            cur = cur[part]
        return cur

    def leaf(self, path: str) -> Any:
        node = self.node(path)
        if not _is_leaf(node):
            raise NormsError(
                f"norms profile {self.label!r}: '{path}' must be "
                '{ value = ..., source = "..." }'
            )
        key = str(node["source"])
        if key not in self.source_text:
            raise NormsError(
                f"norms profile {self.label!r}: '{path}' cites source {key!r}, "
                "which is not defined in [sources]"
            )
        self.sources[path] = self.source_text[key]
        return node["value"]

    def opt_leaf(self, path: str) -> Any:
        try:
            self.node(path)
        except NormsError:
            return None
        return self.leaf(path)

    def number(self, path: str) -> float:
        v = self.leaf(path)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise NormsError(f"norms profile {self.label!r}: '{path}' must be a number")
        return float(v)


def _classes(values: Any, path: str) -> tuple[WorkingClass, ...]:
    try:
        return tuple(WorkingClass.parse(v) for v in values)
    except ValueError as exc:
        raise NormsError(f"{path}: {exc}") from None


def _class_map(values: Any, path: str, kind: type[float] | type[int]) -> dict[WorkingClass, Any]:
    if not isinstance(values, dict):
        raise NormsError(f"{path} must map classes to numbers")
    out = {WorkingClass.parse(k): kind(v) for k, v in values.items()}
    missing = [c.value for c in WorkingClass if c not in out]
    if missing:
        raise NormsError(f"{path} lacks classes {', '.join(missing)}")
    return out


def builtin_profiles() -> tuple[str, ...]:
    """Names of the norms profiles that ship with Qorgau (``analytics/norms/<name>.toml``), the
    ones an enterprise may be set to through the API."""
    return tuple(
        sorted(
            entry.name.removesuffix(".toml")
            for entry in resources.files(_PACKAGE).iterdir()
            if entry.name.endswith(".toml")
        )
    )


def _bands(r: _Reader) -> dict[str, ClassBands]:
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
            classes=_classes(r.leaf(f"{base}.classes"), f"{base}.classes"),
        )
    return bands


def _substance(r: _Reader, sid: str) -> Substance:
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


def _harmfulness(r: _Reader) -> HarmfulnessScale:
    return HarmfulnessScale(
        points=_class_map(r.leaf("harmfulness.points"), "harmfulness.points", int),
        offset=int(r.number("harmfulness.offset")),
        minimum=int(r.number("harmfulness.min")),
        maximum=int(r.number("harmfulness.max")),
        continuous_start=_class_map(
            r.leaf("harmfulness.continuous_start"), "harmfulness.continuous_start", float
        ),
        continuous_span=_class_map(
            r.leaf("harmfulness.continuous_span"), "harmfulness.continuous_span", float
        ),
        position_cap=r.number("harmfulness.position_cap"),
    )


def _risk(r: _Reader) -> RiskNorms:
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
            _class_map(r.leaf("risk.ppe_rows.by_class"), "risk.ppe_rows.by_class", int)
        ),
        ppe_by_level_too=frozenset(str(x) for x in r.leaf("risk.ppe_rows.by_level_too")),
        guarantees=tuple(tuple(str(x) for x in lvl) for lvl in r.leaf("risk.guarantees.by_level")),
    )
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
    return risk


def _en689(r: _Reader) -> En689Norms:
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


def _sampling(r: _Reader) -> SamplingPolicy:
    sampling = SamplingPolicy(
        max_gap_s=r.number("sampling.max_gap_s"),
        fallback_interval_s=r.number("sampling.fallback_interval_s"),
        min_coverage=r.number("sampling.min_coverage"),
        min_window_fraction=r.number("sampling.min_window_fraction"),
    )
    if sampling.max_gap_s <= 0 or sampling.fallback_interval_s <= 0:
        raise NormsError("sampling.max_gap_s and fallback_interval_s must be positive")
    return sampling


def _require_bands(bands: Mapping[str, ClassBands], label: str) -> None:
    for needed in (
        "noise_lex8h",
        "vibration_hand_arm",
        "vibration_whole_body_z",
        "vibration_whole_body_xy",
        "chemical_general",
        "chemical_acute",
        "dust_fibrogenic_strong",
        "dust_fibrogenic_weak",
    ):
        if needed not in bands:
            raise NormsError(f"norms profile {label!r} lacks band table 'bands.{needed}'")


def _physical_ranges(r: _Reader, label: str) -> dict[str, tuple[float, float]]:
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


def load_norms(name_or_path: str | Path = "default") -> Norms:
    """Load a norms profile by built-in name (``"default"``) or by path to a TOML file.

    Raises:
        NormsError: when the file is missing, malformed, cites an undefined source, or lacks a
            required value.
    """
    data, chain = _read(name_or_path, ())
    label = chain[-1]
    r = _Reader(data, label)
    prof = data.get("profile", {})

    bands = _bands(r)
    substances = {sid: _substance(r, sid) for sid in r.node("substances")}

    harm = _harmfulness(r)
    risk = _risk(r)
    en = _en689(r)
    sampling = _sampling(r)
    _require_bands(bands, label)
    ranges = _physical_ranges(r, label)
    cap = WorkingClass.parse(r.leaf("combination.cap"))
    if cap.rank > WorkingClass.C3_4.rank:
        raise NormsError("combination.cap must be 3.4 or lower (class 4 is never combined)")
    return Norms(
        name=str(prof.get("name", label)),
        version=str(prof.get("version", "")),
        description=str(prof.get("description", "")),
        chain=chain,
        sampling=sampling,
        dose_criterion_db=r.number("noise.dose_criterion_db"),
        k_xy=r.number("vibration.k_xy"),
        k_z=r.number("vibration.k_z"),
        bands=MappingProxyType(bands),
        dust_fibrogenic_threshold_mg_m3=r.number("dust.fibrogenic_threshold_mg_m3"),
        combination_cap=cap,
        three_at_3_1_gives=WorkingClass.parse(r.leaf("combination.three_at_3_1_gives")),
        harmfulness=harm,
        substances=MappingProxyType(substances),
        risk=risk,
        en689=en,
        sources=MappingProxyType(dict(r.sources)),
        physical_range=MappingProxyType(ranges),
    )


__all__ = [
    "En689Norms",
    "Norms",
    "RiskNorms",
    "SamplingPolicy",
    "Substance",
    "builtin_profiles",
    "load_norms",
]
