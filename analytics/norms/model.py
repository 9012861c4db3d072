"""The typed, frozen form of a loaded norms profile (what every caller of
:func:`analytics.norms.load_norms` works with); reading and checking the TOML is elsewhere in
this package, one module per section.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analytics.classes import ClassBands, HarmfulnessScale, WorkingClass
from analytics.errors import NormsError

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


__all__ = [
    "PHYSICAL_RANGE_KEYS",
    "En689Norms",
    "Norms",
    "RiskNorms",
    "SamplingPolicy",
    "Substance",
]
