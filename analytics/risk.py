"""Occupational risk ПР and what it drives (Safe Labour Concept 2030; DOMAIN.md §4).

``ПР = w₁·(В+Т)/2 + w₂·(Об+СИЗ)/2 + w₃·З`` with weights 0.7 / 0.2 / 0.1 in the default profile
(seed slide "Assessment of occupational risk"). Each indicator lies in 1..5. The level is the
first ``n`` with ``ПР < threshold[n-1]`` (1.5 / 2.5 / 3.5 / 4.5 by default), else 5. The level
selects the protection class, the insurance-tariff coefficient (1.0 / 1.2 / 1.3 / 1.4 / 1.5),
the PPE per factor and the social guarantees. All of those are profile data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analytics.classes import WorkingClass
from analytics.errors import InputError, NormsError
from analytics.norms import Norms, RiskNorms
from analytics.types import FloatArray


@dataclass(frozen=True, slots=True)
class Contribution:
    """One indicator's weighted share of ПР."""

    indicator: str
    value: float
    weight: float
    contribution: float


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """ПР of one workplace with its level and the explanation."""

    pr: float
    level: int
    level_name: str
    protection_class: str
    protection_name: str
    contributions: tuple[Contribution, ...]

    @property
    def explanation(self) -> str:
        """Human-readable breakdown, largest contribution first."""
        parts = sorted(self.contributions, key=lambda c: -c.contribution)
        body = " + ".join(
            f"{c.indicator} {c.value:g}×{c.weight:g} = {c.contribution:.3f}" for c in parts
        )
        return f"ПР {self.pr:.3f} = {body} → level {self.level} ({self.level_name})"


@dataclass(frozen=True, slots=True)
class Tariff:
    """Insurance tariff: base rate of the activity's risk class × level coefficient."""

    base_rate_pct: float
    coefficient: float
    tariff_pct: float
    level: int
    activity_class: int | None
    # Where the base rate comes from: the norms profile's source text for the class (it carries
    # "[default]" when the rate is not sourced), or None when the caller gave the rate.
    base_rate_reference: str | None = None

    @property
    def base_rate_is_default(self) -> bool:
        return self.base_rate_reference is not None and "[default" in self.base_rate_reference


@dataclass(frozen=True, slots=True)
class EnterpriseRisk:
    """Integral risk of an enterprise for the digital map."""

    mean_pr: float
    level: int
    level_name: str
    headcount: float
    headcount_by_level: Mapping[int, float]
    share_by_level: Mapping[int, float]


def _check_indicator(name: str, value: FloatArray | float, rn: RiskNorms) -> FloatArray:
    v = np.asarray(value, dtype=np.float64)
    if np.any(~np.isfinite(v)) or np.any(v < rn.indicator_min) or np.any(v > rn.indicator_max):
        raise InputError(
            f"indicator {name} must lie in {rn.indicator_min}..{rn.indicator_max}, got {value!r}"
        )
    return v


def risk_score(
    B: FloatArray | float,
    T: FloatArray | float,
    Ob: FloatArray | float,
    SIZ: FloatArray | float,
    Z: FloatArray | float,
    norms: Norms,
) -> FloatArray:
    """Vectorized ``ПР = w₁·(В+Т)/2 + w₂·(Об+СИЗ)/2 + w₃·З`` (arrays broadcast)."""
    rn = norms.risk
    b, t, ob, siz, z = (
        _check_indicator(n, v, rn)
        for n, v in (("В", B), ("Т", T), ("Об", Ob), ("СИЗ", SIZ), ("З", Z))
    )
    return np.asarray(
        rn.weight_bt * (b + t) / 2.0 + rn.weight_os * (ob + siz) / 2.0 + rn.weight_z * z,
        dtype=np.float64,
    )


def risk_level(pr: FloatArray | float, norms: Norms) -> FloatArray:
    """Level 1..5: the first ``n`` with ``ПР < threshold[n−1]``, else the top level."""
    p = np.asarray(pr, dtype=np.float64)
    if np.any(~np.isfinite(p)):
        raise InputError("ПР must be finite")
    th = np.asarray(norms.risk.level_thresholds, dtype=np.float64)
    return np.asarray(np.searchsorted(th, p, side="right") + 1, dtype=np.float64)


def _level_index(level: int, rn: RiskNorms) -> int:
    n = len(rn.level_thresholds) + 1
    if not 1 <= int(level) <= n:
        raise InputError(f"risk level must be 1..{n}, got {level!r}")
    return int(level) - 1


def occupational_risk(
    B: float, T: float, Ob: float, SIZ: float, Z: float, norms: Norms
) -> RiskAssessment:
    """ПР of one workplace with level, protection class and each indicator's contribution.

    Worked case (DOMAIN.md §4): В=3, Т=4, Об=2, СИЗ=3, З=1 → ПР 3.05, level 3.
    """
    (found,) = occupational_risks([B], [T], [Ob], [SIZ], [Z], norms)
    return found


def occupational_risks(
    B: Sequence[float] | FloatArray,
    T: Sequence[float] | FloatArray,
    Ob: Sequence[float] | FloatArray,
    SIZ: Sequence[float] | FloatArray,
    Z: Sequence[float] | FloatArray,
    norms: Norms,
) -> list[RiskAssessment]:
    """:func:`occupational_risk` of many workplaces at once (equally long sequences): ПР and
    levels computed over arrays, for the map and the exports."""
    rn = norms.risk
    b, t, ob, siz, z = arrays = [np.asarray(x, dtype=np.float64) for x in (B, T, Ob, SIZ, Z)]
    pr = risk_score(b, t, ob, siz, z, norms)
    levels = risk_level(pr, norms).astype(np.int64)
    half_bt, half_os, wz = rn.weight_bt / 2.0, rn.weight_os / 2.0, rn.weight_z
    found = []
    for b, t, ob, siz, z, p, level in zip(
        *(a.tolist() for a in arrays), pr.tolist(), levels.tolist(), strict=True
    ):
        i = level - 1
        found.append(
            RiskAssessment(
                pr=p,
                level=level,
                level_name=rn.level_names[i],
                protection_class=rn.protection_classes[i],
                protection_name=rn.protection_names[i],
                contributions=(
                    Contribution("В", b, half_bt, half_bt * b),
                    Contribution("Т", t, half_bt, half_bt * t),
                    Contribution("Об", ob, half_os, half_os * ob),
                    Contribution("СИЗ", siz, half_os, half_os * siz),
                    Contribution("З", z, wz, wz * z),
                ),
            )
        )
    return found


def protection_class(level: int, norms: Norms) -> str:
    """Protection class (A maximum … D minimal, or none) for a risk level."""
    return norms.risk.protection_classes[_level_index(level, norms.risk)]


def insurance_tariff(
    level: int,
    norms: Norms,
    *,
    activity_class: int | None = None,
    base_rate_pct: float | None = None,
) -> Tariff:
    """Tariff = base rate (% of payroll) × the level's coefficient.

    Give either ``activity_class`` (1..22, looked up in the profile) or ``base_rate_pct``.
    Worked cases (seed): class 14 (1.55 %), level 4 → 2.17 %; level 2 → 1.86 %.

    Raises:
        NormsError: if the profile has no base rate for ``activity_class``.
    """
    rn = norms.risk
    i = _level_index(level, rn)
    if (activity_class is None) == (base_rate_pct is None):
        raise InputError("give exactly one of activity_class and base_rate_pct")
    if activity_class is not None:
        if not 1 <= activity_class <= 22:
            raise InputError(f"activity risk class must be 1..22, got {activity_class}")
        if activity_class not in rn.activity_base_rate_pct:
            raise NormsError(
                f"norms profile {norms.name!r} has no base rate for occupational risk "
                f"class {activity_class} (known: {sorted(rn.activity_base_rate_pct)}); pass "
                "base_rate_pct or load an enterprise profile that adds it"
            )
        base = rn.activity_base_rate_pct[activity_class]
        reference = norms.sources.get(f"risk.activity_base_rate_pct.{activity_class}")
    else:
        reference = None
        base = float(base_rate_pct)  # type: ignore[arg-type]
        if not np.isfinite(base) or base <= 0.0:
            raise InputError(f"base_rate_pct must be positive, got {base_rate_pct!r}")
    coeff = rn.tariff_coefficients[i]
    return Tariff(
        base_rate_pct=base,
        coefficient=coeff,
        tariff_pct=base * coeff,
        level=int(level),
        activity_class=activity_class,
        base_rate_reference=reference,
    )


def ppe_recommendation(factor: str, level: int, norms: Norms) -> str:
    """PPE for a factor (``noise``, ``gas``, ``dust``, ``vibration``) at a risk level."""
    rn = norms.risk
    i = _level_index(level, rn)
    if factor not in rn.ppe:
        raise InputError(f"no PPE matrix for factor {factor!r}; known: {', '.join(sorted(rn.ppe))}")
    return rn.ppe[factor][i]


def ppe_for_factor(
    group: str, working_class: WorkingClass | str, level: int, norms: Norms
) -> tuple[int, str]:
    """PPE row (1 = baseline …) and recommendation for one harmful factor.

    The row follows the factor's own class (``risk.ppe_rows.by_class``), so a factor at class
    3.4 in a workplace of low risk level still gets the strongest protection. For the groups
    in ``risk.ppe_rows.by_level_too`` a harmful factor (class 3.1 or above) gets the higher
    of its class row and the workplace's risk level. ``group``: ``noise``, ``gas``, ``dust``,
    ``vibration`` (hand-arm) or ``vibration_whole_body`` (never gloves).
    """
    rn = norms.risk
    _level_index(level, rn)
    if group not in rn.ppe:
        raise InputError(f"no PPE matrix for factor {group!r}; known: {', '.join(sorted(rn.ppe))}")
    cls = WorkingClass.parse(working_class)
    row = rn.ppe_row_by_class.get(cls, 1)
    if group in rn.ppe_by_level_too and cls.rank >= WorkingClass.C3_1.rank:
        row = max(row, int(level))
    return row, rn.ppe[group][row - 1]


def social_guarantees(level: int, norms: Norms) -> tuple[str, ...]:
    """Social guarantees due at a risk level."""
    return norms.risk.guarantees[_level_index(level, norms.risk)]


def enterprise_risk(
    pr: Sequence[float] | FloatArray, headcount: Sequence[float] | FloatArray, norms: Norms
) -> EnterpriseRisk:
    """Headcount-weighted mean ПР of an enterprise's workplaces and the distribution of levels.

    ``ПР_ent = Σ nᵢ·ПРᵢ / Σ nᵢ`` (DOMAIN.md §4, [default]); its level uses the same thresholds.
    """
    p = np.asarray(pr, dtype=np.float64)
    n = np.asarray(headcount, dtype=np.float64)
    if p.ndim != 1 or p.shape != n.shape or p.size == 0:
        raise InputError("pr and headcount must be non-empty 1-D arrays of equal length")
    if np.any(n < 0.0) or not np.isfinite(n).all() or n.sum() <= 0.0:
        raise InputError("headcounts must be ≥ 0 with a positive total")
    levels = risk_level(p, norms).astype(np.intp)
    total = float(n.sum())
    mean = float(np.dot(p, n) / total)
    lvl = int(risk_level(mean, norms))
    n_levels = len(norms.risk.level_thresholds) + 1
    by = np.bincount(levels - 1, weights=n, minlength=n_levels)
    return EnterpriseRisk(
        mean_pr=mean,
        level=lvl,
        level_name=norms.risk.level_names[lvl - 1],
        headcount=total,
        headcount_by_level={i + 1: float(by[i]) for i in range(n_levels)},
        share_by_level={i + 1: float(by[i] / total) for i in range(n_levels)},
    )


__all__ = [
    "Contribution",
    "EnterpriseRisk",
    "RiskAssessment",
    "Tariff",
    "enterprise_risk",
    "insurance_tariff",
    "occupational_risk",
    "ppe_for_factor",
    "ppe_recommendation",
    "protection_class",
    "risk_level",
    "risk_score",
    "social_guarantees",
]
