"""Exposure statistics of a similar exposure group and the EN 689:2018 compliance tests.

Log-normal model (EN 689:2018 Annex F; Leidel, Busch & Lynch, NIOSH 77-173):

* ``GM = exp(mean(ln x))``, ``GSD = exp(sd(ln x))`` (sample sd, n − 1);
* 95th percentile ``X95 = GM·GSD^z₀.₉₅``;
* exceedance fraction ``F = 1 − Φ((ln OEL − ln GM)/ln GSD)``;
* upper tolerance limit ``UTL(p, γ) = exp(ȳ + K·s)``, ``K = t'(γ; n−1; z_p·√n)/√n`` with
  ``t'`` the noncentral-t quantile;
* preliminary test (§5.5.2 / Annex F): 3, 4 or 5 results all below 0.1, 0.15 or 0.2 × OELV →
  compliance; any result above the OELV → non-compliance; otherwise no decision;
* statistical test (Annex F): ``U_R = (ln OELV − ln GM)/ln GSD`` vs ``U_T`` for 70 % confidence
  on the 95th percentile (table F.1, n ≥ 6): ``U_R ≥ U_T`` → compliance, else non-compliance.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import stats

from analytics.errors import InputError, NormsError
from analytics.norms import Norms
from analytics.types import FloatArray


class Verdict(StrEnum):
    """Outcome of an EN 689 test."""

    COMPLIANCE = "compliance"
    NON_COMPLIANCE = "non-compliance"
    NO_DECISION = "no decision"


@dataclass(frozen=True, slots=True)
class ExposureStatistics:
    """Log-normal summary of a similar exposure group against one OEL."""

    n: int
    gm: float
    gsd: float
    p95: float
    exceedance_fraction: float
    utl95_95: float
    ur: float


@dataclass(frozen=True, slots=True)
class StatisticalTest:
    """EN 689 Annex F statistical test."""

    n: int
    ur: float
    ut: float
    ut_source: str
    verdict: Verdict


def _positive(values: object, min_n: int) -> FloatArray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < min_n:
        raise InputError(f"need a 1-D array of at least {min_n} exposure results, got {x.shape}")
    if not np.all(np.isfinite(x)) or np.any(x <= 0.0):
        raise InputError(
            "exposure results must be positive and finite (replace results below the limit of "
            "quantification by LoQ/2 or use a censored-data method)"
        )
    return x


def gm_gsd(values: object, axis: int = -1) -> tuple[FloatArray, FloatArray]:
    """Geometric mean and geometric standard deviation along ``axis`` (sd with n − 1)."""
    x = np.asarray(values, dtype=np.float64)
    if np.any(~np.isfinite(x)) or np.any(x <= 0.0):
        raise InputError("values must be positive and finite")
    if x.shape[axis] < 2:
        raise InputError("GSD needs at least two values")
    y = np.log(x)
    return np.exp(y.mean(axis=axis)), np.exp(y.std(axis=axis, ddof=1))


def tolerance_factor(n: int, percentile: float, confidence: float) -> float:
    """One-sided tolerance factor ``K = t'(γ; n−1; z_p·√n)/√n`` (noncentral t)."""
    if n < 2:
        raise InputError("the tolerance factor needs n ≥ 2")
    if not (0.0 < percentile < 1.0 and 0.0 < confidence < 1.0):
        raise InputError("percentile and confidence must lie in (0, 1)")
    z = stats.norm.ppf(percentile)
    return float(stats.nct.ppf(confidence, n - 1, z * np.sqrt(n)) / np.sqrt(n))


def ut_value(n: int, norms: Norms | None = None) -> tuple[float, str]:
    """``U_T`` for ``n`` results: from the profile's table F.1 when listed, else computed.

    Returns:
        ``(U_T, "table" | "noncentral-t")``.
    """
    if norms is not None and n in norms.en689.ut_table:
        return norms.en689.ut_table[n], "table"
    conf = norms.en689.confidence if norms is not None else 0.70
    pct = norms.en689.percentile if norms is not None else 0.95
    return tolerance_factor(n, pct, conf), "noncentral-t"


def exposure_statistics(values: object, oel: float) -> ExposureStatistics:
    """GM, GSD, 95th percentile, exceedance fraction, UTL95%,95% and ``U_R`` against ``oel``."""
    x = _positive(values, 2)
    if not np.isfinite(oel) or oel <= 0.0:
        raise InputError(f"oel must be positive, got {oel!r}")
    gm, gsd = (float(v) for v in gm_gsd(x))
    z95 = float(stats.norm.ppf(0.95))
    ln_gsd = np.log(gsd)
    if ln_gsd > 0.0:
        ur = float((np.log(oel) - np.log(gm)) / ln_gsd)
        exceed = float(stats.norm.sf(ur))
    else:  # all results equal: a degenerate distribution
        ur = float("inf") if gm <= oel else float("-inf")
        exceed = 0.0 if gm <= oel else 1.0
    k = tolerance_factor(x.size, 0.95, 0.95)
    return ExposureStatistics(
        n=int(x.size),
        gm=gm,
        gsd=gsd,
        p95=float(gm * gsd**z95),
        exceedance_fraction=exceed,
        utl95_95=float(np.exp(np.log(gm) + k * ln_gsd)),
        ur=ur,
    )


def preliminary_test(values: object, oel: float, norms: Norms) -> Verdict:
    """EN 689 preliminary test with 3–5 results (fractions of the OELV are profile data)."""
    x = _positive(values, 1)
    fractions = norms.en689.preliminary_fraction
    if x.size not in fractions:
        raise InputError(
            f"the preliminary test takes {sorted(fractions)} results, got {x.size}; "
            "use statistical_test with 6 or more"
        )
    if np.any(x > oel):
        return Verdict.NON_COMPLIANCE
    if np.all(x < fractions[x.size] * oel):
        return Verdict.COMPLIANCE
    return Verdict.NO_DECISION


def statistical_test(values: object, oel: float, norms: Norms) -> StatisticalTest:
    """EN 689 Annex F test: compliance when ``U_R ≥ U_T`` (n ≥ 6)."""
    need = norms.en689.min_n_statistical
    x = _positive(values, need)
    st = exposure_statistics(x, oel)
    ut, src = ut_value(x.size, norms)
    if not np.isfinite(ut):
        raise NormsError("U_T is not finite")
    verdict = Verdict.COMPLIANCE if st.ur >= ut else Verdict.NON_COMPLIANCE
    return StatisticalTest(n=st.n, ur=st.ur, ut=ut, ut_source=src, verdict=verdict)


__all__ = [
    "ExposureStatistics",
    "StatisticalTest",
    "Verdict",
    "exposure_statistics",
    "gm_gsd",
    "preliminary_test",
    "statistical_test",
    "tolerance_factor",
    "ut_value",
]
