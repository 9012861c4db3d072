"""What a shift report says, as plain data: filled by the API (or the CLI) from the analytics
results, rendered to PDF, CSV or Excel by ``dashboards.reports``. No I/O here. Labels here are
English message ids of the ``reports`` catalogue: the renderer translates them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

# The registry's record of an instrument is what the report shows, field for field.
from store.registry import InstrumentRecord

# metric key → (label, unit, scale): how each analytics metric is shown.
METRICS: Mapping[str, tuple[str, str, float]] = {
    "lex8h_db": ("LEX,8h", "dB(A)", 1.0),
    "lex8h_projected_db": ("LEX,8h projected", "dB(A)", 1.0),
    "laeq_db": ("LAeq", "dB(A)", 1.0),
    "lamax_db": ("LAmax", "dB(A)", 1.0),
    "dose_pct": ("noise dose", "%", 1.0),
    "dose_projected_pct": ("noise dose projected", "%", 1.0),
    "lcpeak_db": ("LCpeak", "dB(C)", 1.0),
    "a8_m_s2": ("A(8)", "m/s²", 1.0),
    "a8_db": ("A(8)", "dB", 1.0),
    "a8_projected_m_s2": ("A(8) projected", "m/s²", 1.0),
    "a8_projected_db": ("A(8) projected", "dB", 1.0),
    "a_rms_m_s2": ("a r.m.s.", "m/s²", 1.0),
    "twa8h_mg_m3": ("TWA", "mg/m³", 1.0),
    "twa8h_projected_mg_m3": ("TWA projected", "mg/m³", 1.0),
    "mean_mg_m3": ("mean", "mg/m³", 1.0),
    "max15min_mg_m3": ("max 15-min mean", "mg/m³", 1.0),
    "max_mg_m3": ("max", "mg/m³", 1.0),
    "k_twa": ("K = TWA/ПДК_сс (classed on)", "", 1.0),
    "k_twa_measured": ("K = TWA/ПДК_сс measured", "", 1.0),
    "k_max15": ("K = max 15-min/ПДК_max", "", 1.0),
    "coverage": ("coverage", "%", 100.0),
    "measured_s": ("measured", "h", 1.0 / 3600.0),
    "unmeasured_s": ("unmeasured", "h", 1.0 / 3600.0),
    "min_pct_vol": ("min", "% vol", 1.0),
    "max_pct_vol": ("max", "% vol", 1.0),
    "mean_pct_vol": ("mean", "% vol", 1.0),
    "min_pct_lel": ("min", "% LEL", 1.0),
    "max_pct_lel": ("max", "% LEL", 1.0),
    "mean_pct_lel": ("mean", "% LEL", 1.0),
}

QUANTITY_TITLES: Mapping[str, str] = {
    "noise_laeq": "Noise LAeq",
    "noise_lamax": "Noise LAmax",
    "noise_lcpeak": "Peak LCpeak",
    "vib_hav": "Hand-arm vibration a_hv",
    "vib_wbv_x": "Whole-body vibration X",
    "vib_wbv_y": "Whole-body vibration Y",
    "vib_wbv_z": "Whole-body vibration Z",
    "gas": "Gas",
    "dust": "Dust",
}


def quantity_title(
    quantity: str, substance: str | None, translate: Callable[[str], str] = str
) -> str:
    title = translate(QUANTITY_TITLES[quantity]) if quantity in QUANTITY_TITLES else quantity
    return f"{title} {substance}" if substance else title


def metric_cell(key: str, value: float | None) -> tuple[str, str, float | None]:
    """``(label, unit, shown value)`` of a metric."""
    label, unit, scale = METRICS.get(key, (key, "", 1.0))
    return label, unit, None if value is None else value * scale


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    if value == 0:
        return "0"
    magnitude = int(np.floor(np.log10(abs(value))))
    decimals = max(0, min(digits - 1 - magnitude, 4))
    return f"{value:.{decimals}f}"


@dataclass(frozen=True, slots=True)
class LimitMark:
    label: str
    value: float
    kind: str  # action, limit, short_term, ceiling, floor


@dataclass(frozen=True, slots=True)
class SensorSection:
    sensor: str
    quantity: str
    unit: str
    substance: str | None
    samples: int
    metrics: Mapping[str, float | None]
    working_class: str | None
    factor: str | None
    basis: str
    insufficient: bool
    chart_label: str  # which statistic the chart shows per minute
    chart_times: NDArray[np.datetime64]  # bucket starts, UTC
    chart_values: NDArray[np.float64]
    lines: tuple[LimitMark, ...] = ()

    @property
    def title(self) -> str:
        return quantity_title(self.quantity, self.substance)


@dataclass(frozen=True, slots=True)
class FactorRow:
    factor: str
    working_class: str
    b: int
    b_continuous: float
    source: str  # measured or entered
    basis: str


@dataclass(frozen=True, slots=True)
class RiskSummary:
    pr: float
    level: int
    level_name: str
    protection_class: str
    indicators: Mapping[str, float]  # В, T, Ob, SIZ, Z
    explanation: str
    level_names: Mapping[str, str] = field(default_factory=dict)  # language → the norms' name


@dataclass(frozen=True, slots=True)
class AlertRow:
    opened_at: datetime
    severity: str
    kind: str
    state: str
    sensor: str | None
    message: str
    acknowledged_by: str | None
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class ShiftReport:
    enterprise: str
    enterprise_name: str
    workplace: str
    workplace_name: str
    profession: str | None
    headcount: int
    timezone: str
    shift_date: str
    shift_number: int
    start: datetime
    end: datetime
    working_class: str | None
    b: int | None
    b_continuous: float | None
    rule: str | None
    deciding_factors: tuple[str, ...]
    explanation: str
    sensors: tuple[SensorSection, ...]
    factors: tuple[FactorRow, ...]
    risk: RiskSummary | None
    risk_note: str | None
    alerts: tuple[AlertRow, ...]
    norms: str  # name and version of the norms profile
    generated_at: datetime
    skipped: tuple[tuple[str, str], ...] = field(default=())  # (sensor, why not assessed)
    status: str = "final"  # of the stored assessment: running, provisional or final
    coverage_min: float | None = None  # lowest coverage (0..1) of the sensors
    insufficient_data: bool = False  # below the norms' coverage minimum: a provisional result
    instruments: tuple[InstrumentRecord, ...] = ()
    norms_description: str = ""
    norms_references: tuple[str, ...] = ()  # the sources of the tables and formulas applied

    @property
    def has_readings(self) -> bool:
        """Whether any sensor measured in this shift: a report without is not written in bulk."""
        return any(s.samples for s in self.sensors)

    def file_stem(self) -> str:
        return (
            f"qorgau-{self.enterprise}-{self.workplace}-{self.shift_date}-shift{self.shift_number}"
        )
