"""Workplace assessment: per-sensor metrics and classes, factor classes, combined class and В.

:func:`assess_workplace` takes each sensor's samples (times in seconds from the shift start),
groups sensors by quantity and runs one vectorized irregular computation per quantity, then
classifies (order 33н tables of the profile), combines factors (sensor factors plus classes
entered for unmeasured factors) and derives В. Used by the CLI, the API and reports.

Quantities and units (canonical unit first):

========================  ===========================  ==========================================
quantity                  units accepted               factor / band table
========================  ===========================  ==========================================
``noise_laeq``            dB(A)                        ``noise`` / ``noise_lex8h`` on LEX,8h
``noise_lcpeak``          dB(C)                        reported only (no class table)
``vib_hav``               m/s2, m/s²                   ``vibration_hand_arm`` on A(8) dB
``vib_wbv_x|y``           m/s2, m/s²                   ``vibration_whole_body`` / XY band
``vib_wbv_z``             m/s2, m/s²                   ``vibration_whole_body`` / Z band
``gas``                   mg/m3, ppm (→ ·M/24.04)      ``chemical:<id>`` / acute or general, K
``dust``                  mg/m3                        ``dust:<id>`` / fibrogenic strong or weak
========================  ===========================  ==========================================

Chemicals are classed on ``K = TWA/ПДК_сс`` and ``K = max15/ПДК_max``; the worse counts. Each
substance (and each dust) is its own factor; several sensors of one factor → the worse sensor,
except hand-arm vibration, whose sensors are the worker's tools: their partial A(8) add up as
``√Σ Aᵢ(8)²`` (ISO 5349-1 eq. 4) when that is worse.
Mixtures ``Σ TWAᵢ/ПДК_ссᵢ`` per substance group are reported, not classed (see docs).
A sensor whose coverage is below the profile's minimum is flagged ``insufficient_data`` but
still classed (never zero-filled) and still counts in the workplace.

Daily values and the class of an incomplete shift (:data:`INCOMPLETE_SHIFT_RULE`): the reported
``lex8h_db`` / ``a8_m_s2`` / ``twa8h_mg_m3`` are the standards' 8-h values of what was measured
(Σ over every sample / 8 h); ``*_projected_*`` fill the part of the declared shift without
readings at the measured rate. The class is taken from the larger of the two
(:func:`classifying_value`), which is the projected value whenever readings are missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analytics.chemical import concentration_irregular
from analytics.classes import (
    ClassBands,
    CombinedClass,
    WorkingClass,
    band_position,
    class_from_rank,
    classify,
    combine_classes,
)
from analytics.errors import InputError, NormsError
from analytics.noise import noise_irregular, peak_irregular
from analytics.norms import Norms, Substance
from analytics.types import FloatArray, IntArray
from analytics.units import MOLAR_VOLUME_20C_L_MOL, acceleration_db
from analytics.vibration import combine_a8, vibration_irregular
from vocabulary.protocol.quantities import UNITS_BY_QUANTITY, Quantity, normalise_unit

#: The quantities a shift is assessed on, with the units each is accepted in (canonical spelling
#: first): the wire format's one table (``vocabulary.protocol.quantities``), less LAmax, which
#: no class table takes (the alert engine's ceiling uses it).
QUANTITY_UNITS: Mapping[str, tuple[str, ...]] = {
    quantity.value: units
    for quantity, units in UNITS_BY_QUANTITY.items()
    if quantity is not Quantity.NOISE_LAMAX
}
QUANTITIES: tuple[str, ...] = tuple(QUANTITY_UNITS)

#: Gas units of alarm channels (oxygen and methane by volume, combustibles in % of the lower
#: explosive limit): reported (minimum, maximum, mean) but not classed, since no class table
#: takes them; their two-level alarms are the alert engine's.
ALARM_UNITS: tuple[str, ...] = ("%vol", "%LEL")


def is_alarm_channel(quantity: str, unit: str) -> bool:
    """Whether a gas sensor reports an alarm quantity (% vol, % LEL) rather than a
    concentration that a ПДК applies to."""
    return quantity == "gas" and normalize_unit(quantity, unit) in ALARM_UNITS


#: The one rule for which value classes a shift, stated in every assessment (``to_dict``). Why
#: the projected value: a reading missing inside the declared shift is unknown, not silence or
#: clean air; the measured-only 8-h value would class a shift better the less of it was
#: measured (4 h at 83 dB(A) of an 8-h shift: 80.0 dB(A), class 2), while the projection never
#: lies below it and equals it once the shift is covered. A shift truly shorter than 8 h is
#: declared as such (``--shift-hours``, the workplace's schedule) and then has nothing to fill.
INCOMPLETE_SHIFT_RULE = (
    "classed on the larger of the measured 8-h value (Σ over the measured time / 8 h) and the "
    "projected value (the declared shift's unmeasured time at the measured rate); they are "
    "equal when the shift is covered"
)


def classifying_value(measured: float, projected: float) -> float:
    """The value a sensor is classed on (:data:`INCOMPLETE_SHIFT_RULE`): the larger of the
    measured 8-h value and the projected one (NaN only if both are)."""
    return float(np.fmax(measured, projected))


def vibration_weighting(norms: Norms, quantity: str) -> tuple[float, str, str]:
    """Axis factor ``k``, class table and factor name of a vibration quantity (``vib_*``)."""
    if quantity == "vib_hav":
        return 1.0, "vibration_hand_arm", "vibration_hand_arm"
    if quantity.rsplit("_", 1)[-1] == "z":
        return norms.k_z, "vibration_whole_body_z", "vibration_whole_body"
    return norms.k_xy, "vibration_whole_body_xy", "vibration_whole_body"


def substance_bands(norms: Norms, sub: Substance) -> ClassBands:
    """The class table of a substance: fibrogenic dust by its ПДК_сс, other substances by their
    hazard group.

    Raises:
        NormsError: for a dust without ``pdk_ss_mg_m3``.
    """
    if sub.kind == "dust":
        if sub.pdk_ss_mg_m3 is None:
            raise NormsError(f"dust {sub.id!r} needs pdk_ss_mg_m3")
        strong = sub.pdk_ss_mg_m3 <= norms.dust_fibrogenic_threshold_mg_m3
        return norms.band("dust_fibrogenic_strong" if strong else "dust_fibrogenic_weak")
    return norms.band("chemical_acute" if sub.group == "acute" else "chemical_general")


def physical_range(
    norms: Norms, quantity: str, unit: str, substance: Substance | None = None
) -> tuple[float, float]:
    """The range a reading of ``quantity`` in ``unit`` can physically take (profile data,
    ``[physical_range]``); a value outside it is a fault, never exposure.

    A gas in mg/m³ is bounded by the pure gas (``ppm`` maximum × M / 24.04) when the substance
    has a molar mass, else by the profile's generic ``gas_mg_m3``.
    """
    r = norms.physical_range
    u = normalize_unit(quantity, unit)
    if quantity in ("noise_laeq", "noise_lcpeak"):
        return r[quantity]
    if quantity.startswith("vib_"):
        return r["vibration_m_s2"]
    if quantity == "dust":
        return r["dust_mg_m3"]
    if u == "ppm":
        return r["gas_ppm"]
    if u == "%vol":
        return r["gas_pct_vol"]
    if u == "%LEL":
        return r["gas_pct_lel"]
    if substance is not None and substance.molar_mass_g_mol is not None:
        lo, hi = r["gas_ppm"]
        scale = substance.molar_mass_g_mol / MOLAR_VOLUME_20C_L_MOL
        return lo * scale, hi * scale
    return r["gas_mg_m3"]


def physical_fault(norms: Norms, s: SensorSeries, substance: Substance | None = None) -> str | None:
    """Why a series cannot be exposure, or None: the first value outside
    :func:`physical_range` (or NaN/inf), with the range and the fix."""
    lo, hi = physical_range(norms, s.quantity, s.unit, substance)
    v = np.asarray(s.values, dtype=np.float64)
    bad = ~((v >= lo) & (v <= hi))  # NaN fails both comparisons
    if not np.any(bad):
        return None
    i = int(np.flatnonzero(bad)[0])
    return (
        f"sensor {s.sensor!r} ({s.quantity}, {s.unit}): sample {i} is {v[i]!r}, outside the "
        f"physical range [{lo:g}, {hi:g}]; a reading there is a sensor or unit fault: drop it "
        "or fix the unit"
    )


def check_physical(norms: Norms, s: SensorSeries, substance: Substance | None = None) -> None:
    """Refuse a series holding a value outside :func:`physical_range` (or NaN/inf).

    Raises:
        InputError: naming the sensor, the first bad sample and the range.
    """
    fault = physical_fault(norms, s, substance)
    if fault is not None:
        raise InputError(fault)


def normalize_unit(quantity: str, unit: str) -> str:
    """Canonical unit (``dB(A)``, ``dB(C)``, ``m/s2``, ``mg/m3`` or ``ppm``) for a quantity.

    Raises:
        InputError: for an unknown quantity or a unit the quantity does not take.
    """
    if quantity not in QUANTITY_UNITS:
        raise InputError(f"unknown quantity {quantity!r}; use one of {', '.join(QUANTITIES)}")
    accepted = QUANTITY_UNITS[quantity]
    canonical = normalise_unit(unit.replace(" ", ""))  # "% vol", "mg / m3" as instruments write
    if canonical in accepted:
        return canonical
    raise InputError(
        f"unit {unit!r} does not fit quantity {quantity!r}; use {' or '.join(accepted)}"
    )


@dataclass(frozen=True, slots=True)
class SensorSeries:
    """One sensor's samples over the shift.

    Attributes:
        sensor: sensor id.
        quantity: one of :data:`QUANTITIES`.
        unit: unit of ``values`` (see :func:`normalize_unit`).
        substance: substance or dust id from the norms (gas/dust), else None.
        time_s: sample times, seconds from the shift start, non-decreasing.
        values: sample values.
    """

    sensor: str
    quantity: str
    unit: str
    substance: str | None
    time_s: FloatArray
    values: FloatArray


@dataclass(frozen=True, slots=True)
class SensorResult:
    """Per-sensor metrics and class."""

    sensor: str
    quantity: str
    substance: str | None
    metrics: Mapping[str, float]
    working_class: WorkingClass | None
    factor: str | None
    b_continuous: float | None
    insufficient_data: bool
    basis: str
    projected: bool = False


@dataclass(frozen=True, slots=True)
class FactorResult:
    """One factor of the workplace (measured or entered)."""

    factor: str
    working_class: WorkingClass
    b: int
    b_continuous: float
    sensors: tuple[str, ...]
    basis: str


@dataclass(frozen=True, slots=True)
class WorkplaceAssessment:
    """Everything :func:`assess_workplace` computes."""

    sensors: tuple[SensorResult, ...]
    factors: tuple[FactorResult, ...]
    working_class: WorkingClass | None
    b: int | None
    b_continuous: float | None
    combination: CombinedClass | None
    insufficient_data: tuple[str, ...]
    mixture_index: Mapping[str, float]
    shift_duration_s: float
    norms_name: str
    norms_version: str
    explanation: str = field(default="")
    projected: tuple[str, ...] = ()
    classification_rule: str = INCOMPLETE_SHIFT_RULE
    refused: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN → None), the ``qorgau assess --json`` contract."""
        return {
            "sensors": [
                {
                    "sensor": s.sensor,
                    "quantity": s.quantity,
                    "substance": s.substance,
                    "metrics": {k: _num(v) for k, v in s.metrics.items()},
                    "class": None if s.working_class is None else s.working_class.value,
                    "factor": s.factor,
                    "B_continuous": _num(s.b_continuous),
                    "insufficient_data": s.insufficient_data,
                    "classified_by": "projected" if s.projected else "measured",
                    "basis": s.basis,
                }
                for s in self.sensors
            ],
            "workplace": {
                "class": None if self.working_class is None else self.working_class.value,
                "B": self.b,
                "B_continuous": _num(self.b_continuous),
                "factors": [
                    {
                        "factor": f.factor,
                        "class": f.working_class.value,
                        "B": f.b,
                        "B_continuous": _num(f.b_continuous),
                        "sensors": list(f.sensors),
                        "basis": f.basis,
                    }
                    for f in self.factors
                ],
                "rule": None if self.combination is None else self.combination.rule,
                "deciding_factors": []
                if self.combination is None
                else list(self.combination.deciding),
                "insufficient_data": list(self.insufficient_data),
                "projected": list(self.projected),
                "refused": list(self.refused),
                "classification_rule": self.classification_rule,
                "mixture_index": {k: _num(v) for k, v in self.mixture_index.items()},
                "explanation": self.explanation,
                "shift_hours": self.shift_duration_s / 3600.0,
                "norms": {"name": self.norms_name, "version": self.norms_version},
            },
        }


def _num(v: float | None) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if not math.isfinite(f) else round(f, 6)


def _concat(
    series: Sequence[SensorSeries], values: Sequence[FloatArray]
) -> tuple[FloatArray, FloatArray, IntArray]:
    counts = np.array([s.time_s.size for s in series], dtype=np.intp)
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.intp)
    t = np.concatenate([np.asarray(s.time_s, dtype=np.float64) for s in series])
    v = np.concatenate([np.asarray(x, dtype=np.float64) for x in values])
    return t, v, offsets


def _classify_with_position(value: float, bands: ClassBands) -> tuple[WorkingClass | None, float]:
    r = int(classify(value, bands))
    if r < 0:
        return None, math.nan
    return class_from_rank(r), float(band_position(value, bands))


def _gas_substance(norms: Norms, s: SensorSeries) -> Substance:
    if not s.substance:
        raise InputError(f"sensor {s.sensor!r} ({s.quantity}) needs a substance id")
    sub = norms.substance(s.substance)
    if sub.kind != ("gas" if s.quantity == "gas" else "dust"):
        raise InputError(
            f"sensor {s.sensor!r}: substance {sub.id!r} is a {sub.kind}, not a {s.quantity}"
        )
    return sub


def assess_workplace(
    series: Sequence[SensorSeries],
    norms: Norms,
    *,
    shift_duration_s: float = 8.0 * 3600.0,
    max_gap_s: float | None = None,
    entered_factors: Mapping[str, WorkingClass | str] | None = None,
) -> WorkplaceAssessment:
    """Assess one workplace over one shift.

    Args:
        series: each sensor's samples; times are seconds from the shift start.
        norms: the norms profile (:func:`analytics.norms.load_norms`).
        shift_duration_s: the declared shift length: coverage is counted against it and its
            unmeasured time is projected at the measured rate; the 8-h values themselves sum
            every sample and divide by 8 h.
        max_gap_s: the longest interval still counted as measured (profile default if None).
        entered_factors: classes of unmeasured factors (``{"microclimate": "3.1"}``), which
            join the combination.

    Raises:
        InputError: malformed series, unknown quantity/unit/substance.
        NormsError: a substance lacks a limit or molar mass the computation needs.
    """
    if not series and not entered_factors:
        raise InputError("nothing to assess: give at least one sensor series or entered factor")
    sensors, refused = assess_sensors(
        series, norms, shift_duration_s=shift_duration_s, max_gap_s=max_gap_s
    )
    return combine_sensors(
        sensors,
        norms,
        shift_duration_s=shift_duration_s,
        entered_factors=entered_factors,
        refused=refused,
    )


def assess_sensors(
    series: Sequence[SensorSeries],
    norms: Norms,
    *,
    shift_duration_s: float = 8.0 * 3600.0,
    max_gap_s: float | None = None,
) -> tuple[tuple[SensorResult, ...], tuple[str, ...]]:
    """The per-sensor half of :func:`assess_workplace`: metrics and class of each series, in
    order, and the names of the series refused for impossible values. Every step is per sensor
    (vectorized over the sensors of a quantity), so the series of several shifts of one length
    can be assessed in one call and combined shift by shift with :func:`combine_sensors`."""
    results, refused = assess_series(
        series, norms, shift_duration_s=shift_duration_s, max_gap_s=max_gap_s
    )
    return results, tuple(series[i].sensor for i in refused)


def assess_series(
    series: Sequence[SensorSeries],
    norms: Norms,
    *,
    shift_duration_s: float = 8.0 * 3600.0,
    max_gap_s: float | None = None,
) -> tuple[tuple[SensorResult, ...], tuple[int, ...]]:
    """:func:`assess_sensors` with the refused series given by their index: series of
    several shifts may then share a sensor's name."""
    gap = norms.sampling.max_gap_s if max_gap_s is None else float(max_gap_s)
    results, refused, by_q = _admit(series, norms)
    kw = {
        "shift_duration_s": shift_duration_s,
        "max_gap_s": gap,
        "fallback_interval_s": norms.sampling.fallback_interval_s,
    }
    for q, idx in by_q.items():
        found = _quantity_results(q, [series[i] for i in idx], norms, kw)
        results.update(zip(idx, found, strict=True))
    return tuple(results[i] for i in range(len(series))), tuple(sorted(refused))


def _admit(
    series: Sequence[SensorSeries], norms: Norms
) -> tuple[dict[int, SensorResult], list[int], dict[str, list[int]]]:
    """Check each series: the results of those refused for impossible values, their indices,
    and the indices of the others by the quantity (or ``gas_alarm``) that assesses them.

    The unit, substance and physical range are looked up once per kind of sensor, and the
    values of all series are checked against their ranges in one pass (a call per series
    cost more than the check)."""
    results: dict[int, SensorResult] = {}
    refused: list[int] = []
    by_q: dict[str, list[int]] = {}
    kinds: dict[tuple[str, str, str | None], tuple[str, Substance | None, float, float]] = {}
    chosen: list[tuple[str, Substance | None, float, float]] = []
    sizes = np.empty(len(series), dtype=np.intp)
    for i, s in enumerate(series):
        key = (s.quantity, s.unit, s.substance)
        kind = kinds.get(key)
        if kind is None:
            normalize_unit(s.quantity, s.unit)
        size = np.asarray(s.time_s).size
        if size == 0 or np.asarray(s.time_s).shape != np.asarray(s.values).shape:
            raise InputError(f"sensor {s.sensor!r}: time_s and values must be equal, non-empty")
        if kind is None:
            alarm = is_alarm_channel(s.quantity, s.unit)
            substance = (
                _gas_substance(norms, s) if s.quantity in ("gas", "dust") and not alarm else None
            )
            lo, hi = physical_range(norms, s.quantity, s.unit, substance)
            kind = kinds[key] = ("gas_alarm" if alarm else s.quantity, substance, lo, hi)
        chosen.append(kind)
        sizes[i] = size
    for i in _outside_range(series, chosen, sizes):
        # Never a class from impossible data: a series with a value outside the physical range
        # is refused (no metrics, no class) and named, the other sensors are assessed. A
        # service assessing stored data must not stop on one faulty sensor.
        s = series[i]
        fault = physical_fault(norms, s, chosen[i][1])
        assert fault is not None  # the same test, one series
        refused.append(i)
        results[i] = SensorResult(
            s.sensor, s.quantity, s.substance, {}, None, None, None, False, f"REFUSED: {fault}"
        )
    for i, kind in enumerate(chosen):
        if i not in results:
            by_q.setdefault(kind[0], []).append(i)
    return results, refused, by_q


def _outside_range(
    series: Sequence[SensorSeries],
    kinds: Sequence[tuple[str, Substance | None, float, float]],
    sizes: IntArray,
) -> list[int]:
    """The indices of the series holding a value outside their physical range (or NaN)."""
    if not series:
        return []
    v = np.concatenate([np.asarray(s.values, dtype=np.float64).ravel() for s in series])
    lo = np.repeat(np.array([k[2] for k in kinds], dtype=np.float64), sizes)
    hi = np.repeat(np.array([k[3] for k in kinds], dtype=np.float64), sizes)
    bad = ~((v >= lo) & (v <= hi))  # NaN fails both comparisons
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    return [int(i) for i in np.flatnonzero(np.logical_or.reduceat(bad, starts))]


def _quantity_results(
    q: str, ss: list[SensorSeries], norms: Norms, kw: dict[str, float]
) -> list[SensorResult]:
    """The results of the series ``ss`` of quantity ``q`` (``gas_alarm`` for alarm channels),
    in order, vectorized over the series; ``kw`` are the shift length and sampling rules."""
    if q == "noise_laeq":
        return _noise_results(ss, norms, kw)
    if q == "noise_lcpeak":
        return _peak_results(ss, kw)
    if q == "gas_alarm":
        return _alarm_channel_results(ss, norms, kw)
    if q.startswith("vib_"):
        return _vibration_results(q, ss, norms, kw)
    return _substance_results(q, ss, norms, kw)


def _noise_results(
    ss: list[SensorSeries], norms: Norms, kw: dict[str, float]
) -> list[SensorResult]:
    """LAeq series: LEX,8h (projected over the unmeasured part) classed by the profile."""
    found: list[SensorResult] = []
    t, v, off = _concat(ss, [s.values for s in ss])
    m = noise_irregular(v, t, off, dose_criterion_db=norms.dose_criterion_db, **kw)
    bands = norms.band("noise_lex8h")
    # Columns as lists once: a numpy scalar per sensor and metric cost more than the metric.
    columns = _columns(
        laeq_db=m.laeq_db,
        lex8h_db=m.lex8h_db,
        lex8h_projected_db=m.lex8h_projected_db,
        lamax_db=m.lamax_db,
        dose_pct=m.dose_pct,
        dose_projected_pct=m.dose_projected_pct,
        measured_s=m.measured_s,
        unmeasured_s=m.unmeasured_s,
        coverage=m.coverage,
    )
    for s, metrics in zip(ss, columns, strict=True):
        found.append(
            _classed(s, metrics, "lex8h_db", bands, "noise", "LEX,8h", f" vs {bands.name}")
        )
    return found


def _classed(
    s: SensorSeries,
    metrics: dict[str, float],
    level: str,
    bands: ClassBands,
    factor: str,
    what: str,
    against: str,
) -> SensorResult:
    """A sensor classed on its daily ``level`` in dB (``metrics[level]``, or the projected one
    when readings are missing, ``level`` with ``_projected`` before ``_db``)."""
    projected_level = level.removesuffix("_db") + "_projected_db"
    value = classifying_value(metrics[level], metrics[projected_level])
    cls, pos = _classify_with_position(value, bands)
    proj = _projects(metrics)
    basis = f"projected {what}{against}" if proj else f"{what}{against}"
    return _result(s, metrics, cls, pos, factor, basis, proj)


def _peak_results(ss: list[SensorSeries], kw: dict[str, float]) -> list[SensorResult]:
    """LCpeak series: reported, not classed."""
    found: list[SensorResult] = []
    t, v, off = _concat(ss, [s.values for s in ss])
    p = peak_irregular(v, t, off, **kw)
    for j, s in enumerate(ss):
        metrics = {
            "lcpeak_db": float(p.lcpeak_db[j]),
            "measured_s": float(p.measured_s[j]),
            "coverage": float(p.coverage[j]),
        }
        found.append(
            _result(
                s,
                metrics,
                None,
                math.nan,
                None,
                "LCpeak reported only: the profile has no class table",
            )
        )
    return found


def _alarm_channel_results(
    ss: list[SensorSeries], norms: Norms, kw: dict[str, float]
) -> list[SensorResult]:
    """Alarm channels (% vol, % LEL): reported, not classed."""
    found: list[SensorResult] = []
    t, v, off = _concat(ss, [s.values for s in ss])
    # The hold rule and coverage as for any gas; min and max of held samples only.
    cm = concentration_irregular(
        v, t, off, min_window_fraction=norms.sampling.min_window_fraction, **kw
    )
    for j, s in enumerate(ss):
        x = np.asarray(s.values, dtype=np.float64)
        unit = normalize_unit(s.quantity, s.unit).lstrip("%").lower()
        metrics = {
            f"min_pct_{unit}": float(x.min()),
            f"max_pct_{unit}": float(cm.max_mg_m3[j]),
            f"mean_pct_{unit}": float(cm.mean_mg_m3[j]),
            **_times(cm.measured_s[j], cm.unmeasured_s[j], cm.coverage[j]),
        }
        found.append(
            _result(
                s,
                metrics,
                None,
                math.nan,
                None,
                f"alarm channel ({s.unit}): reported only, no class table takes it; its "
                "alarms are the alert engine's",
            )
        )
    return found


def _vibration_results(
    q: str, ss: list[SensorSeries], norms: Norms, kw: dict[str, float]
) -> list[SensorResult]:
    """Vibration series: A(8) (projected over the unmeasured part) classed by the profile."""
    found: list[SensorResult] = []
    k, band_name, factor = vibration_weighting(norms, q)
    t, v, off = _concat(ss, [s.values for s in ss])
    vm = vibration_irregular(v, t, off, k=k, **kw)
    bands = norms.band(band_name)
    columns = _columns(
        a8_m_s2=vm.a8_m_s2,
        a8_db=vm.a8_db,
        a8_projected_m_s2=vm.a8_projected_m_s2,
        a8_projected_db=vm.a8_projected_db,
        a_rms_m_s2=vm.a_rms_m_s2,
        measured_s=vm.measured_s,
        unmeasured_s=vm.unmeasured_s,
        coverage=vm.coverage,
    )
    for s, metrics in zip(ss, columns, strict=True):
        found.append(_classed(s, metrics, "a8_db", bands, factor, "A(8)", f" dB vs {band_name}"))
    return found


def _substance_results(
    q: str, ss: list[SensorSeries], norms: Norms, kw: dict[str, float]
) -> list[SensorResult]:
    """Gas and dust series: TWA, 15-minute maximum and maximum classed against the ПДК."""
    found: list[SensorResult] = []
    known: dict[tuple[str | None, str], tuple[Substance, str]] = {}
    for s in ss:
        if (s.substance, s.unit) not in known:
            known[s.substance, s.unit] = (
                _gas_substance(norms, s),
                normalize_unit(s.quantity, s.unit),
            )
    subs = [known[s.substance, s.unit][0] for s in ss]
    vals = []
    for s, sub in zip(ss, subs, strict=True):
        x = np.asarray(s.values, dtype=np.float64)
        if known[s.substance, s.unit][1] == "ppm":
            if sub.molar_mass_g_mol is None:
                raise NormsError(
                    f"substance {sub.id!r} has no molar mass in the profile; "
                    "report it in mg/m3 or add molar_mass_g_mol"
                )
            x = x * (sub.molar_mass_g_mol / MOLAR_VOLUME_20C_L_MOL)
        vals.append(x)
    t, v, off = _concat(ss, vals)
    cm = concentration_irregular(
        v, t, off, min_window_fraction=norms.sampling.min_window_fraction, **kw
    )
    columns = _columns(
        twa8h_mg_m3=cm.twa8h_mg_m3,
        twa8h_projected_mg_m3=cm.twa8h_projected_mg_m3,
        mean_mg_m3=cm.mean_mg_m3,
        max15min_mg_m3=cm.max15min_mg_m3,
        max_mg_m3=cm.max_mg_m3,
        measured_s=cm.measured_s,
        unmeasured_s=cm.unmeasured_s,
        coverage=cm.coverage,
    )
    prefix = "chemical" if q == "gas" else "dust"
    for s, sub, metrics in zip(ss, subs, columns, strict=True):
        cls, pos, basis = _classify_substance(norms, sub, metrics)
        found.append(_result(s, metrics, cls, pos, f"{prefix}:{sub.id}", basis, _projects(metrics)))
    return found


def combine_sensors(
    sensors: Sequence[SensorResult],
    norms: Norms,
    *,
    shift_duration_s: float = 8.0 * 3600.0,
    entered_factors: Mapping[str, WorkingClass | str] | None = None,
    refused: Sequence[str] = (),
) -> WorkplaceAssessment:
    """The workplace half of :func:`assess_workplace`: one shift's sensor results (from
    :func:`assess_sensors`) flagged for coverage, grouped into factors with the entered
    classes, combined into the workplace class, В and the explanation."""
    minimum = norms.sampling.min_coverage
    insufficient = tuple(s.sensor for s in sensors if s.metrics.get("coverage", 1.0) < minimum)
    flagged = tuple(_replace_insufficient(s, s.sensor in insufficient) for s in sensors)
    return _combine(
        flagged, norms, entered_factors or {}, insufficient, shift_duration_s, tuple(refused)
    )


def _columns(**arrays: FloatArray) -> list[dict[str, float]]:
    """Per sensor, ``{name: float(arrays[name][j])}`` in the order given."""
    names = list(arrays)
    rows = zip(*(np.asarray(a, dtype=np.float64).tolist() for a in arrays.values()), strict=True)
    return [dict(zip(names, row, strict=True)) for row in rows]


def _times(measured_s: float, unmeasured_s: float, coverage: float) -> dict[str, float]:
    return {
        "measured_s": float(measured_s),
        "unmeasured_s": float(unmeasured_s),
        "coverage": float(coverage),
    }


def _projects(metrics: Mapping[str, float]) -> bool:
    """Whether the sensor's class rests on a projection (readings missing in the shift)."""
    return metrics.get("unmeasured_s", 0.0) > 0.0


def _result(
    s: SensorSeries,
    metrics: dict[str, float],
    cls: WorkingClass | None,
    pos: float,
    factor: str | None,
    basis: str,
    projected: bool = False,
) -> SensorResult:
    return SensorResult(
        sensor=s.sensor,
        quantity=s.quantity,
        substance=s.substance,
        metrics=metrics,
        working_class=cls,
        factor=factor,
        b_continuous=pos,  # position for now; turned into В in _combine
        insufficient_data=False,
        basis=basis,
        projected=projected,
    )


def _replace_insufficient(s: SensorResult, flag: bool) -> SensorResult:
    if not flag:
        return s
    return SensorResult(
        s.sensor,
        s.quantity,
        s.substance,
        s.metrics,
        s.working_class,
        s.factor,
        s.b_continuous,
        True,
        s.basis + "; INSUFFICIENT DATA: coverage below the minimum",
        s.projected,
    )


def _classify_substance(
    norms: Norms, sub: Substance, metrics: dict[str, float]
) -> tuple[WorkingClass | None, float, str]:
    bands = substance_bands(norms, sub)
    twa = classifying_value(metrics["twa8h_mg_m3"], metrics["twa8h_projected_mg_m3"])
    label = "projected TWA" if _projects(metrics) else "TWA"
    if sub.pdk_ss_mg_m3 is not None:
        # k_twa is the ratio the class is taken on; k_twa_measured that of the measured TWA.
        metrics["k_twa"] = twa / sub.pdk_ss_mg_m3
        metrics["k_twa_measured"] = metrics["twa8h_mg_m3"] / sub.pdk_ss_mg_m3
    if sub.kind == "dust":
        assert sub.pdk_ss_mg_m3 is not None  # substance_bands refuses a dust without it
        k = metrics["k_twa"]
        cls, pos = _classify_with_position(k, bands)
        return cls, pos, f"{label}/ПДК_сс = {k:.3g} vs {bands.name}"
    candidates: list[tuple[WorkingClass, float, str]] = []
    if sub.pdk_ss_mg_m3 is not None:
        k = metrics["k_twa"]
        c, p = _classify_with_position(k, bands)
        if c is not None:
            candidates.append((c, p, f"{label}/ПДК_сс = {k:.3g}"))
    if sub.pdk_max_mg_m3 is not None:
        k = metrics["max15min_mg_m3"] / sub.pdk_max_mg_m3
        metrics["k_max15"] = k
        c, p = _classify_with_position(k, bands)
        if c is not None:
            candidates.append((c, p, f"max 15-min/ПДК_max = {k:.3g}"))
    if not candidates:
        return None, math.nan, "no class: no limit could be compared (too little data)"
    cls, pos, why = max(candidates, key=lambda c: (c[0].rank, c[1]))
    return cls, pos, f"{why} vs {bands.name} (worse of {label} and 15-min)"


def _hand_arm_tools(
    worst: FactorResult, members: Sequence[SensorResult], norms: Norms
) -> FactorResult:
    """Hand-arm vibration from several tools of one worker: the partial exposures add up,
    ``A(8) = √Σ Aᵢ(8)²`` (ISO 5349-1:2001 eq. 4; Directive 2002/44/EC Annex A.1), so the
    factor is classed on that sum when it is worse than the worst single sensor (which, under
    :data:`INCOMPLETE_SHIFT_RULE`, may be a projected value)."""
    total = float(combine_a8(np.array([m.metrics["a8_m_s2"] for m in members])))
    total_db = float(acceleration_db(total))
    bands = norms.band("vibration_hand_arm")
    cls, pos = _classify_with_position(total_db, bands)
    if cls is None:
        return worst
    b_cont = norms.harmfulness.continuous(cls, pos)
    if (cls.rank, b_cont) <= (worst.working_class.rank, worst.b_continuous):
        return worst
    return FactorResult(
        factor=worst.factor,
        working_class=cls,
        b=norms.harmfulness.discrete(cls),
        b_continuous=b_cont,
        sensors=worst.sensors,
        basis=(
            f"√ΣA(8)² of {len(members)} tools = {total:.3g} m/s² ({total_db:.1f} dB) "
            f"vs {bands.name} (ISO 5349-1 eq. 4)"
        ),
    )


def _with_continuous_b(
    sensors: tuple[SensorResult, ...], norms: Norms
) -> tuple[list[SensorResult], dict[str, list[SensorResult]]]:
    """The sensors with their continuous В on the harmfulness scale, and those classed by
    factor."""
    scale = norms.harmfulness
    final_sensors: list[SensorResult] = []
    groups: dict[str, list[SensorResult]] = {}
    for s in sensors:
        b_cont = None
        if s.working_class is not None:
            b_cont = scale.continuous(s.working_class, float(s.b_continuous or 0.0))
        fs = SensorResult(
            s.sensor,
            s.quantity,
            s.substance,
            s.metrics,
            s.working_class,
            s.factor,
            b_cont,
            s.insufficient_data,
            s.basis,
            s.projected,
        )
        final_sensors.append(fs)
        if fs.working_class is not None and fs.factor is not None:
            groups.setdefault(fs.factor, []).append(fs)
    return final_sensors, groups


def _measured_factors(groups: Mapping[str, list[SensorResult]], norms: Norms) -> list[FactorResult]:
    """Each measured factor classed by its worst sensor (hand-arm tools combined)."""
    scale = norms.harmfulness
    factors: list[FactorResult] = []
    for name, members in groups.items():
        top = max(
            members,
            key=lambda m: (m.working_class.rank if m.working_class else -1, m.b_continuous or 0.0),
        )
        assert top.working_class is not None
        found = FactorResult(
            factor=name,
            working_class=top.working_class,
            b=scale.discrete(top.working_class),
            b_continuous=float(top.b_continuous or 0.0),
            sensors=tuple(m.sensor for m in members),
            basis=f"sensor {top.sensor}: {top.basis}",
        )
        if name == "vibration_hand_arm" and len(members) > 1:
            found = _hand_arm_tools(found, members, norms)
        factors.append(found)
    return factors


def _entered_factors(
    entered: Mapping[str, WorkingClass | str],
    measured: Mapping[str, list[SensorResult]],
    norms: Norms,
) -> list[FactorResult]:
    """The factors entered from assessment records; one also measured is an error."""
    scale = norms.harmfulness
    factors: list[FactorResult] = []
    for name, value in entered.items():
        if name in measured:
            raise InputError(f"entered factor {name!r} clashes with a measured factor")
        c = WorkingClass.parse(value)
        factors.append(
            FactorResult(
                name,
                c,
                scale.discrete(c),
                scale.continuous(c, 0.0),
                (),
                "entered from assessment records",
            )
        )
    return factors


def _mixture_index(sensors: list[SensorResult], norms: Norms) -> dict[str, float]:
    """Per substance group, the sum of ``k_twa`` (the TWA / ПДК_сс ratio the class is taken
    on), each substance counted once, at its highest ratio."""
    mixture: dict[str, float] = {}
    best_twa: dict[str, tuple[float, Substance]] = {}
    for s in sensors:
        if s.quantity == "gas" and s.substance and "k_twa" in s.metrics:
            sub = norms.substance(s.substance)
            k = s.metrics.get("k_twa", math.nan)
            if math.isfinite(k) and (sub.id not in best_twa or k > best_twa[sub.id][0]):
                best_twa[sub.id] = (k, sub)
    for k, sub in best_twa.values():
        mixture[sub.group] = mixture.get(sub.group, 0.0) + k
    return mixture


def _combine(
    sensors: tuple[SensorResult, ...],
    norms: Norms,
    entered: Mapping[str, WorkingClass | str],
    insufficient: tuple[str, ...],
    shift_duration_s: float,
    refused: tuple[str, ...] = (),
) -> WorkplaceAssessment:
    scale = norms.harmfulness
    projected = tuple(s.sensor for s in sensors if s.projected and s.working_class is not None)
    final_sensors, groups = _with_continuous_b(sensors, norms)
    factors = [*_measured_factors(groups, norms), *_entered_factors(entered, groups, norms)]
    mixture = _mixture_index(final_sensors, norms)
    if not factors:
        return WorkplaceAssessment(
            tuple(final_sensors),
            (),
            None,
            None,
            None,
            None,
            insufficient,
            mixture,
            shift_duration_s,
            norms.name,
            norms.version,
            "no factor could be classed"
            + (
                f"; refused (values outside the physical range): {', '.join(refused)}"
                if refused
                else ""
            ),
            projected,
            refused=refused,
        )
    combined = combine_classes(
        {f.factor: f.working_class for f in factors},
        cap=norms.combination_cap,
        three_at_3_1_gives=norms.three_at_3_1_gives,
    )
    wc = combined.working_class
    b = scale.discrete(wc)
    if wc == combined.highest:
        b_cont = max(f.b_continuous for f in factors if f.factor in combined.deciding)
    else:
        b_cont = scale.continuous(wc, 0.0)
    deciding = ", ".join(combined.deciding)
    text = (
        f"class {wc.value} ({combined.rule}; deciding: {deciding}); "
        f"В = {b} (continuous {b_cont:.2f})"
    )
    if refused:
        text += "; refused (values outside the physical range): " + ", ".join(refused)
    if projected:
        text += "; classed on projected values (readings missing in the shift): " + ", ".join(
            projected
        )
    if insufficient:
        text += f"; insufficient data (coverage < {norms.sampling.min_coverage:.0%}): " + ", ".join(
            insufficient
        )
    return WorkplaceAssessment(
        sensors=tuple(final_sensors),
        factors=tuple(sorted(factors, key=lambda f: (-f.working_class.rank, f.factor))),
        working_class=wc,
        b=b,
        b_continuous=b_cont,
        combination=combined,
        insufficient_data=insufficient,
        mixture_index=mixture,
        shift_duration_s=shift_duration_s,
        norms_name=norms.name,
        norms_version=norms.version,
        explanation=text,
        projected=projected,
        refused=refused,
    )


__all__ = [
    "ALARM_UNITS",
    "INCOMPLETE_SHIFT_RULE",
    "QUANTITIES",
    "QUANTITY_UNITS",
    "FactorResult",
    "SensorResult",
    "SensorSeries",
    "WorkplaceAssessment",
    "assess_series",
    "assess_workplace",
    "check_physical",
    "classifying_value",
    "is_alarm_channel",
    "normalize_unit",
    "physical_range",
]
