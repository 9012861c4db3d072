"""Qorgau numeric core: exposure, classes of working conditions, В, EN 689 and ПР.

Pure functions over numpy arrays (numpy + scipy only): no I/O besides reading norms TOML, no
clock, no environment, no database. Vectorized across sensors: regular grids are
``(sensors, samples)`` arrays with a sample period (NaN = unmeasured); irregular samples are
concatenated 1-D arrays with group ``offsets`` (``np.add.reduceat`` order) and times in seconds
from the shift start. Formulas and references are in each module's docstring and in
``docs/exposure.md``. The names below are the stable public API.

Norms (``analytics.norms``)
    ``load_norms(name_or_path="default") -> Norms`` — versioned profile with a source per value;
    ``Norms.substance(id)``, ``Norms.band(name)``, ``Norms.sources``.

Per-quantity batched metrics
    ``noise_regular(laeq_db, *, period_s, shift_duration_s, dose_criterion_db) -> NoiseMetrics``
    ``noise_irregular(laeq_db, time_s, offsets, *, shift_duration_s, max_gap_s,
    dose_criterion_db, fallback_interval_s=1.0) -> NoiseMetrics``
    (``laeq_db, lex8h_db, lamax_db, dose_pct, measured_s, coverage, lex8h_projected_db,
    dose_projected_pct, unmeasured_s``);
    ``peak_regular`` / ``peak_irregular`` -> ``PeakMetrics`` (``lcpeak_db``);
    ``vibration_regular(a_m_s2, *, period_s, shift_duration_s, k=1.0)`` /
    ``vibration_irregular(..., k=1.0)`` -> ``VibrationMetrics`` (``a8_m_s2, a8_db, …,
    a8_projected_m_s2, a8_projected_db, unmeasured_s``);
    ``concentration_regular(conc_mg_m3, *, period_s, shift_duration_s, min_window_fraction)`` /
    ``concentration_irregular(...)`` -> ``ConcentrationMetrics``
    (``twa8h_mg_m3, mean_mg_m3, max15min_mg_m3, max_mg_m3, measured_s, coverage,
    twa8h_projected_mg_m3, unmeasured_s``). Daily values sum every sample and divide by 8 h;
    ``coverage`` is the measured share of the declared shift; ``*_projected_*`` fill its
    unmeasured time at the measured rate (``docs/exposure.md``, Conventions);
    ``hold_durations(time_s, offsets, *, shift_duration_s, max_gap_s) -> Holds`` (hold rule).

Single formulas and running sums (for streaming detectors)
    ``lex_8h``, ``noise_dose_pct``, ``a8``, ``combine_a8``, ``twa_8h``, ``mixture_index``,
    ``ppm_to_mg_m3``, ``acceleration_db``; ``sound_exposure_sum`` (Σ t·10^(L/10)),
    ``dose_sum`` (Σ C·t), ``vibration_energy_sum`` (Σ a²·t), ``lex_8h_from_exposure``,
    ``twa_8h_from_dose``, ``a8_from_energy``, ``project_sum``, ``project_unmeasured``,
    ``coverage_of``.

Classes and В
    ``WorkingClass``, ``ClassBands``, ``classify(values, bands)``, ``band_position``,
    ``combine_classes(factors, *, cap, three_at_3_1_gives) -> CombinedClass``,
    ``harmfulness_index(class, scale, position=0.0) -> (В, В_continuous)``.

Workplace
    ``assess_workplace(series, norms, *, shift_duration_s=28800, max_gap_s=None,
    entered_factors=None) -> WorkplaceAssessment`` (``.to_dict()`` is the CLI/API JSON); an
    incomplete shift is classed by ``classifying_value`` (``INCOMPLETE_SHIFT_RULE``);
    ``SensorSeries``, ``normalize_unit``, ``QUANTITIES``.

EN 689 (``analytics.en689``)
    ``exposure_statistics(values, oel) -> ExposureStatistics`` (GM, GSD, P95, exceedance,
    UTL95,95, U_R); ``preliminary_test(values, oel, norms)``; ``statistical_test(values, oel,
    norms)``; ``ut_value(n, norms)``; ``tolerance_factor(n, percentile, confidence)``.

Risk ПР (``analytics.risk``)
    ``occupational_risk(B, T, Ob, SIZ, Z, norms) -> RiskAssessment`` (with contributions),
    ``risk_score`` (vectorized), ``risk_level``, ``protection_class``,
    ``insurance_tariff(level, norms, *, activity_class=None, base_rate_pct=None) -> Tariff``,
    ``ppe_recommendation(factor, level, norms)``,
    ``ppe_for_factor(group, working_class, level, norms) -> (row, text)`` (by the factor's
    class), ``social_guarantees(level, norms)``,
    ``enterprise_risk(pr, headcount, norms) -> EnterpriseRisk``.

Errors: ``AnalyticsError(ValueError)`` ← ``InputError``, ``NormsError``.
"""

from analytics.assess import (
    INCOMPLETE_SHIFT_RULE,
    QUANTITIES,
    FactorResult,
    SensorResult,
    SensorSeries,
    WorkplaceAssessment,
    assess_sensors,
    assess_series,
    assess_workplace,
    classifying_value,
    combine_sensors,
    is_alarm_channel,
    normalize_unit,
)
from analytics.chemical import (
    ConcentrationMetrics,
    concentration_irregular,
    concentration_regular,
    mixture_index,
    twa_8h,
)
from analytics.classes import (
    ClassBands,
    CombinedClass,
    HarmfulnessScale,
    WorkingClass,
    band_position,
    classify,
    combine_classes,
    harmfulness_index,
)
from analytics.en689 import (
    ExposureStatistics,
    StatisticalTest,
    Verdict,
    exposure_statistics,
    preliminary_test,
    statistical_test,
    tolerance_factor,
    ut_value,
)
from analytics.errors import AnalyticsError, InputError, NormsError
from analytics.noise import (
    NoiseMetrics,
    PeakMetrics,
    lex_8h,
    noise_dose_pct,
    noise_irregular,
    noise_regular,
    peak_irregular,
    peak_regular,
)
from analytics.norms import Norms, Substance, load_norms
from analytics.risk import (
    EnterpriseRisk,
    RiskAssessment,
    Tariff,
    enterprise_risk,
    insurance_tariff,
    occupational_risk,
    occupational_risks,
    ppe_for_factor,
    ppe_recommendation,
    protection_class,
    risk_level,
    risk_score,
    social_guarantees,
)
from analytics.sampling import Holds, hold_durations
from analytics.sums import (
    a8_from_energy,
    coverage_of,
    dose_sum,
    lex_8h_from_exposure,
    project_sum,
    project_unmeasured,
    sound_exposure_sum,
    twa_8h_from_dose,
    vibration_energy_sum,
)
from analytics.units import acceleration_db, ppm_to_mg_m3
from analytics.vibration import (
    VibrationMetrics,
    a8,
    combine_a8,
    vibration_irregular,
    vibration_regular,
)

__all__ = [
    "INCOMPLETE_SHIFT_RULE",
    "QUANTITIES",
    "AnalyticsError",
    "ClassBands",
    "CombinedClass",
    "ConcentrationMetrics",
    "EnterpriseRisk",
    "ExposureStatistics",
    "FactorResult",
    "HarmfulnessScale",
    "Holds",
    "InputError",
    "NoiseMetrics",
    "Norms",
    "NormsError",
    "PeakMetrics",
    "RiskAssessment",
    "SensorResult",
    "SensorSeries",
    "StatisticalTest",
    "Substance",
    "Tariff",
    "Verdict",
    "VibrationMetrics",
    "WorkingClass",
    "WorkplaceAssessment",
    "a8",
    "a8_from_energy",
    "acceleration_db",
    "assess_sensors",
    "assess_series",
    "assess_workplace",
    "band_position",
    "classify",
    "classifying_value",
    "combine_a8",
    "combine_classes",
    "combine_sensors",
    "concentration_irregular",
    "concentration_regular",
    "coverage_of",
    "dose_sum",
    "enterprise_risk",
    "exposure_statistics",
    "harmfulness_index",
    "hold_durations",
    "insurance_tariff",
    "is_alarm_channel",
    "lex_8h",
    "lex_8h_from_exposure",
    "load_norms",
    "mixture_index",
    "noise_dose_pct",
    "noise_irregular",
    "noise_regular",
    "normalize_unit",
    "occupational_risk",
    "occupational_risks",
    "peak_irregular",
    "peak_regular",
    "ppe_for_factor",
    "ppe_recommendation",
    "ppm_to_mg_m3",
    "preliminary_test",
    "project_sum",
    "project_unmeasured",
    "protection_class",
    "risk_level",
    "risk_score",
    "social_guarantees",
    "sound_exposure_sum",
    "statistical_test",
    "tolerance_factor",
    "twa_8h",
    "twa_8h_from_dose",
    "ut_value",
    "vibration_energy_sum",
    "vibration_irregular",
    "vibration_regular",
]
