"""What an alert can be about (a sensor or a device) and the thresholds that apply to it.

Thresholds are derived once per subject from the norms profile (limits) and its ``[alerts]``
section (what the detectors add), converted into the sensor's own unit, so that the detectors
compare raw values with arrays and never look anything up per sample.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field

from analytics.alerts.params import AlertNorms, Severity
from analytics.norms import Norms
from analytics.units import MOLAR_VOLUME_20C_L_MOL, acceleration_from_db

#: Quantity codes of the per-subject arrays. ``DEVICE`` marks a device subject.
QUANTITY_CODES: dict[str, int] = {
    "noise_laeq": 0,
    "noise_lamax": 1,
    "noise_lcpeak": 2,
    "vib_hav": 3,
    "vib_wbv_x": 4,
    "vib_wbv_y": 5,
    "vib_wbv_z": 6,
    "gas": 7,
    "dust": 8,
}
DEVICE = 9

# How projections turn a running sum into the daily value.
PROJ_NONE, PROJ_LEX, PROJ_A8, PROJ_TWA = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class SubjectSpec:
    """A sensor (``sensor`` set) or a device (``sensor`` None) as the shell registers it.

    ``schedule`` names the shift schedule of the sensor's workplace (any hashable: the shell
    uses ``application.schedule.Schedule``); the shell gives the state one calendar per
    schedule (:func:`analytics.alerts.set_calendars`), and a sensor's shift sums and
    projections run over the shifts of its calendar. None (a device, or a sensor of no
    workplace): no shift, so no projection. ``timezone`` is the enterprise's IANA zone, in
    which messages state times.
    """

    enterprise: str
    device: str
    sensor: str | None = None
    quantity: str | None = None
    unit: str = ""
    substance: str | None = None
    workplace: str | None = None
    sensor_id: int | None = None
    schedule: Hashable | None = None
    timezone: str = "UTC"
    calibration_due_s: float = math.nan

    @property
    def key(self) -> str:
        return f"{self.device}/{self.sensor}" if self.sensor is not None else self.device

    @property
    def is_device(self) -> bool:
        return self.sensor is None


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Per-subject thresholds in the subject's unit (NaN: the detector does not apply)."""

    ceiling: float = math.nan
    ceiling_label: str = ""
    pre: float = math.nan
    pre_of: float = math.nan  # the limit the pre-exceedance is a fraction of
    pre_label: str = ""
    floor: float = math.nan  # second low alarm (oxygen deficiency)
    floor_label: str = ""
    pre_floor: float = math.nan  # first low alarm
    pre_floor_label: str = ""
    short_term: float = math.nan  # ПДК_max for the 15-min mean
    trend: float = math.nan
    trend_label: str = ""
    projection: int = PROJ_NONE
    projection_k: float = 1.0
    projection_levels: tuple[float, ...] = ()
    projection_severities: tuple[Severity, ...] = ()
    projection_unit: str = ""
    projection_metric: str = ""
    is_db: bool = False
    linear: int = 0  # 0: x as is, 1: 10^(x/10) (levels), 2: x² (vibration)
    labels: dict[str, str] = field(default_factory=dict)


def _gas_factor(unit: str, molar_mass: float | None) -> float | None:
    """Multiply a limit in mg/m³ by this to get it in ``unit``; None if it cannot be done."""
    if unit == "mg/m3":
        return 1.0
    if unit == "ppm" and molar_mass:
        return MOLAR_VOLUME_20C_L_MOL / molar_mass
    return None


def thresholds_for(spec: SubjectSpec, norms: Norms, alerts: AlertNorms) -> Thresholds:
    """Derive the thresholds of one subject from the profile; NaN where nothing applies."""
    q = spec.quantity
    if q is None:
        return Thresholds()
    if q == "noise_laeq":
        return Thresholds(
            projection=PROJ_LEX,
            projection_levels=alerts.noise_lex8h_levels_db,
            projection_severities=alerts.noise_severities,
            projection_unit="dB(A)",
            projection_metric="LEX,8h",
            is_db=True,
            linear=1,
        )
    if q == "noise_lamax":
        return Thresholds(
            ceiling=alerts.lamax_ceiling_db, ceiling_label="LAmax ceiling", is_db=True, linear=1
        )
    if q == "noise_lcpeak":
        return Thresholds(
            ceiling=alerts.lcpeak_ceiling_db, ceiling_label="LCpeak ceiling", is_db=True, linear=1
        )
    if q == "vib_hav":
        return Thresholds(
            projection=PROJ_A8,
            projection_levels=alerts.hand_arm_levels_m_s2,
            projection_severities=alerts.hand_arm_severities,
            projection_unit="m/s2",
            projection_metric="hand-arm A(8)",
            linear=2,
        )
    if q in ("vib_wbv_x", "vib_wbv_y", "vib_wbv_z"):
        z = q == "vib_wbv_z"
        band = norms.band("vibration_whole_body_z" if z else "vibration_whole_body_xy")
        limit = float(acceleration_from_db(band.upper[0]))
        return Thresholds(
            projection=PROJ_A8,
            projection_k=norms.k_z if z else norms.k_xy,
            projection_levels=(alerts.whole_body_action_fraction * limit, limit),
            projection_severities=alerts.whole_body_severities,
            projection_unit="m/s2",
            projection_metric=f"whole-body A(8) {q[-1].upper()}",
            linear=2,
        )
    if q == "gas" and spec.unit == "%vol":
        return _volume_alarms(spec, alerts)
    if q == "gas" and spec.unit == "%LEL":
        return Thresholds(
            ceiling=alerts.lel_ceiling_pct,
            ceiling_label="flammability alarm",
            pre=alerts.lel_pre_pct,
            pre_of=alerts.lel_ceiling_pct,
            pre_label="first flammability alarm",
            trend=alerts.lel_ceiling_pct,
            trend_label="flammability alarm",
        )
    if q in ("gas", "dust") and spec.substance:
        return _substance_limits(spec, spec.substance, norms, alerts)
    return Thresholds()


def _volume_alarms(spec: SubjectSpec, alerts: AlertNorms) -> Thresholds:
    """A gas measured in % vol: the oxygen or methane alarms of the profile."""
    gas = (spec.substance or "").upper()
    if gas == "O2":
        first, second = alerts.oxygen_low_pct_vol
        return Thresholds(
            ceiling=alerts.oxygen_high_pct_vol,
            ceiling_label="oxygen enrichment alarm",
            floor=second,
            floor_label="second oxygen alarm",
            pre_floor=first,
            pre_floor_label="first oxygen alarm",
        )
    if gas == "CH4":
        first, second = alerts.methane_pct_vol
        return Thresholds(
            ceiling=second,
            ceiling_label="second methane alarm",
            pre=first,
            pre_of=second,
            pre_label="second methane alarm",
            trend=second,
            trend_label="second methane alarm",
        )
    return Thresholds()


def _substance_limits(
    spec: SubjectSpec, substance: str, norms: Norms, alerts: AlertNorms
) -> Thresholds:
    """A gas or dust with its ПДК in the profile, converted to the sensor's unit."""
    key = next((k for k in norms.substances if k.lower() == substance.lower()), None)
    if key is None:
        return Thresholds()
    sub = norms.substances[key]
    factor = _gas_factor(spec.unit, sub.molar_mass_g_mol)
    if factor is None:
        return Thresholds()
    pmax = sub.pdk_max_mg_m3 * factor if sub.pdk_max_mg_m3 is not None else math.nan
    pss = sub.pdk_ss_mg_m3 * factor if sub.pdk_ss_mg_m3 is not None else math.nan
    acute = spec.quantity == "gas" and sub.group == "acute"
    twa_levels: tuple[float, ...] = ()
    if not math.isnan(pss):
        twa_levels = (alerts.twa_action_fraction * pss, pss)
    trend_limit = pmax if not math.isnan(pmax) else pss
    return Thresholds(
        ceiling=alerts.gas_ceiling_pdk_max_multiple * pmax if acute else math.nan,
        ceiling_label=f"ceiling ({alerts.gas_ceiling_pdk_max_multiple:g} × ПДК_max)",
        pre=alerts.pre_limit_fraction * pmax,
        pre_of=pmax,
        pre_label="ПДК_max",
        short_term=pmax,
        trend=trend_limit,
        trend_label="ПДК_max" if not math.isnan(pmax) else "ПДК_сс",
        projection=PROJ_TWA if twa_levels else PROJ_NONE,
        projection_levels=twa_levels,
        projection_severities=alerts.twa_severities if twa_levels else (),
        projection_unit=spec.unit,
        projection_metric="shift TWA",
    )


__all__ = [
    "DEVICE",
    "PROJ_A8",
    "PROJ_LEX",
    "PROJ_NONE",
    "PROJ_TWA",
    "QUANTITY_CODES",
    "SubjectSpec",
    "Thresholds",
    "thresholds_for",
]
