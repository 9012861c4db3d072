"""Alert kinds, severities and the ``[alerts]`` section of a norms profile as typed data.

Every number the detectors compare with is either a limit of the profile proper (ПДК_max,
ПДК_сс, band edges) or a leaf of ``[alerts]`` with a source from ``[sources]`` or
``[alerts.sources]``. :func:`load_alert_norms` reads a profile the same way
:func:`analytics.norms.load_norms` does (``extends`` merges included), so an enterprise profile
overrides any alert leaf.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from analytics.errors import NormsError
from analytics.norms.files import read_profile
from analytics.norms.reader import LeafReader


class AlertKind(StrEnum):
    """What an alert is about; at most one open alert per subject (sensor or device) and kind."""

    CEILING = "ceiling"  # instantaneous value above a ceiling (acute gas, LCpeak, LAmax, % LEL)
    SHORT_TERM = "short_term"  # rolling 15-min mean above ПДК_max
    PRE_EXCEEDANCE = "pre_exceedance"  # instantaneous value ≥ 80 % of a limit
    FLOOR = "floor"  # instantaneous value below a floor (oxygen deficiency, second alarm)
    PRE_FLOOR = "pre_floor"  # instantaneous value at or below the first low alarm (oxygen)
    PROJECTED_EXPOSURE = "projected_exposure"  # end-of-shift LEX,8h / TWA / A(8) projection
    TREND = "trend"  # sustained rise that crosses a limit within the horizon
    FLATLINE = "flatline"  # a sensor repeating one value
    OUT_OF_RANGE = "out_of_range"  # non-finite or outside the instrument range
    SENSOR_SILENT = "sensor_silent"  # a sensor of a live device stopped reporting
    SEQUENCE_GAP = "sequence_gap"  # messages of a device missing (sequence numbers)
    DEVICE_OFFLINE = "device_offline"  # the device's status topic says offline
    CALIBRATION_OVERDUE = "calibration_overdue"  # registry calibration date passed


#: Column order of the per-kind lifecycle arrays.
KINDS: tuple[AlertKind, ...] = tuple(AlertKind)
KIND_INDEX: Mapping[AlertKind, int] = MappingProxyType({k: i for i, k in enumerate(KINDS)})
#: Kinds that concern a device as a whole rather than one of its sensors.
DEVICE_KINDS: frozenset[AlertKind] = frozenset({AlertKind.SEQUENCE_GAP, AlertKind.DEVICE_OFFLINE})


class Severity(IntEnum):
    """Ordered severities; escalation moves one step up, to ``critical`` at most."""

    INFO = 0
    WARNING = 1
    HIGH = 2
    CRITICAL = 3

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown severity {text!r}; use one of {', '.join(s.label for s in cls)}"
            ) from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class KindRule:
    """Lifecycle timing of one kind (see :mod:`analytics.alerts.lifecycle`)."""

    severity: Severity
    min_duration_s: float
    clear_duration_s: float
    hysteresis_fraction: float
    hysteresis_db: float


@dataclass(frozen=True, slots=True)
class AlertNorms:
    """The ``[alerts]`` section of a norms profile."""

    lcpeak_ceiling_db: float
    lamax_ceiling_db: float
    gas_ceiling_pdk_max_multiple: float
    lel_ceiling_pct: float
    pre_limit_fraction: float
    lel_pre_pct: float
    oxygen_low_pct_vol: tuple[float, float]  # first and second low alarms, % vol
    oxygen_high_pct_vol: float  # enrichment alarm, % vol
    methane_pct_vol: tuple[float, float]  # first and second alarms, % vol
    short_term_window_s: float
    short_term_min_fraction: float
    noise_lex8h_levels_db: tuple[float, ...]
    noise_severities: tuple[Severity, ...]
    hand_arm_levels_m_s2: tuple[float, ...]
    hand_arm_severities: tuple[Severity, ...]
    whole_body_action_fraction: float
    whole_body_severities: tuple[Severity, ...]
    twa_action_fraction: float
    twa_severities: tuple[Severity, ...]
    projection_rate_window_s: float
    projection_min_measured_s: float
    trend_window_s: float
    trend_segments: int
    trend_horizon_s: float
    trend_min_rising_fraction: float
    trend_min_segments_fraction: float
    flatline_window_s: float
    flatline_relative_tolerance: float
    out_of_range_window_s: float
    silence_interval_factor: float
    silence_min_s: float
    silence_min_messages: int
    interval_smoothing: float
    sequence_window: int
    bin_s: float
    escalate_after_s: float
    max_escalations: int
    kinds: Mapping[AlertKind, KindRule]
    sources: Mapping[str, str]

    def rule(self, kind: AlertKind) -> KindRule:
        return self.kinds[kind]


def _severities(values: Any, path: str, n: int) -> tuple[Severity, ...]:
    try:
        out = tuple(Severity.parse(str(v)) for v in values)
    except ValueError as exc:
        raise NormsError(f"{path}: {exc}") from None
    if len(out) != n:
        raise NormsError(f"{path} needs {n} entries, one per level")
    return out


def _levels(values: Any, path: str) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if not out or any(b <= a for a, b in itertools.pairwise(out)):
        raise NormsError(f"{path} must be a non-empty, strictly increasing list")
    return out


def _alerts_reader(name_or_path: str | Path) -> LeafReader:
    """A reader of the profile with the ``[alerts]`` section's own sources merged in."""
    data, chain = read_profile(name_or_path)
    alerts = data.get("alerts")
    if not isinstance(alerts, dict):
        raise NormsError(f"norms profile {chain[-1]!r} has no [alerts] section")
    extra_sources = alerts.get("sources", {})
    if not isinstance(extra_sources, dict):
        raise NormsError("[alerts.sources] must be a table")
    merged = dict(data)
    merged["sources"] = {**data.get("sources", {}), **extra_sources}
    return LeafReader(merged, chain[-1])


def _number(r: LeafReader, path: str, *, positive: bool = False) -> float:
    value = r.number(f"alerts.{path}")
    if value < 0 or (positive and value == 0):
        raise NormsError(f"alerts.{path} must be {'positive' if positive else '≥ 0'}")
    return value


def _fraction(r: LeafReader, path: str) -> float:
    value = _number(r, path)
    if value > 1:
        raise NormsError(f"alerts.{path} must be a fraction in [0, 1]")
    return value


def _kind_rules(r: LeafReader) -> dict[AlertKind, KindRule]:
    kinds: dict[AlertKind, KindRule] = {}
    for kind in AlertKind:
        base = f"kinds.{kind.value}"
        try:
            severity = Severity.parse(str(r.leaf(f"alerts.{base}.severity")))
        except ValueError as exc:
            raise NormsError(f"alerts.{base}.severity: {exc}") from None
        kinds[kind] = KindRule(
            severity=severity,
            min_duration_s=_number(r, f"{base}.min_duration_s"),
            clear_duration_s=_number(r, f"{base}.clear_duration_s"),
            hysteresis_fraction=_fraction(r, f"{base}.hysteresis_fraction"),
            hysteresis_db=_number(r, f"{base}.hysteresis_db"),
        )
    return kinds


def _gas_alarms(r: LeafReader) -> tuple[tuple[float, ...], float, tuple[float, ...]]:
    """The oxygen low alarms (increasing, as every level list: [second, first]), the oxygen
    high alarm and the methane alarms [first, second], % vol."""
    o2_low = _levels(r.leaf("alerts.oxygen.low_pct_vol"), "oxygen.low_pct_vol")
    if len(o2_low) != 2 or o2_low[0] <= 0:
        raise NormsError("alerts.oxygen.low_pct_vol must be [second, first] low alarms, % vol")
    o2_high = _number(r, "oxygen.high_pct_vol", positive=True)
    if not o2_high > o2_low[1]:
        raise NormsError("alerts.oxygen.high_pct_vol must lie above the low alarms")
    ch4 = _levels(r.leaf("alerts.methane.pct_vol"), "methane.pct_vol")
    if len(ch4) != 2:
        raise NormsError("alerts.methane.pct_vol must be [first, second]")
    return o2_low, o2_high, ch4


def load_alert_norms(name_or_path: str | Path = "default") -> AlertNorms:
    """Read the ``[alerts]`` section of a norms profile (built-in name or TOML path).

    Raises:
        NormsError: when the section or a value is missing, malformed or cites an undefined
            source.
    """
    r = _alerts_reader(name_or_path)

    def num(path: str, *, positive: bool = False) -> float:
        return _number(r, path, positive=positive)

    def fraction(path: str) -> float:
        return _fraction(r, path)

    kinds = _kind_rules(r)
    noise_levels = _levels(r.leaf("alerts.projection.noise_lex8h_db"), "noise_lex8h_db")
    hav_levels = _levels(r.leaf("alerts.projection.hand_arm_a8_m_s2"), "hand_arm_a8_m_s2")
    short_window = num("short_term.window_s", positive=True)
    bin_s = num("engine.bin_s", positive=True)
    if short_window / bin_s > 4096:
        raise NormsError("alerts.engine.bin_s is too small for alerts.short_term.window_s")
    segments = int(num("trend.segments", positive=True))
    if segments < 3:
        raise NormsError("alerts.trend.segments must be at least 3")
    o2_low, o2_high, ch4 = _gas_alarms(r)
    return AlertNorms(
        oxygen_low_pct_vol=(o2_low[1], o2_low[0]),
        oxygen_high_pct_vol=o2_high,
        methane_pct_vol=(ch4[0], ch4[1]),
        lcpeak_ceiling_db=num("ceiling.noise_lcpeak_db"),
        lamax_ceiling_db=num("ceiling.noise_lamax_db"),
        gas_ceiling_pdk_max_multiple=num("ceiling.gas_pdk_max_multiple", positive=True),
        lel_ceiling_pct=num("ceiling.lel_pct", positive=True),
        pre_limit_fraction=fraction("pre_exceedance.limit_fraction"),
        lel_pre_pct=num("pre_exceedance.lel_pct", positive=True),
        short_term_window_s=short_window,
        short_term_min_fraction=fraction("short_term.min_window_fraction"),
        noise_lex8h_levels_db=noise_levels,
        noise_severities=_severities(
            r.leaf("alerts.projection.noise_severities"), "noise_severities", len(noise_levels)
        ),
        hand_arm_levels_m_s2=hav_levels,
        hand_arm_severities=_severities(
            r.leaf("alerts.projection.hand_arm_severities"), "hand_arm_severities", len(hav_levels)
        ),
        whole_body_action_fraction=fraction("projection.whole_body_action_fraction"),
        whole_body_severities=_severities(
            r.leaf("alerts.projection.whole_body_severities"), "whole_body_severities", 2
        ),
        twa_action_fraction=fraction("projection.twa_action_fraction"),
        twa_severities=_severities(r.leaf("alerts.projection.twa_severities"), "twa_severities", 2),
        projection_rate_window_s=num("projection.rate_window_s", positive=True),
        projection_min_measured_s=num("projection.min_measured_s"),
        trend_window_s=num("trend.window_s", positive=True),
        trend_segments=segments,
        trend_horizon_s=num("trend.horizon_s", positive=True),
        trend_min_rising_fraction=fraction("trend.min_rising_fraction"),
        trend_min_segments_fraction=fraction("trend.min_segments_fraction"),
        flatline_window_s=num("health.flatline_window_s", positive=True),
        flatline_relative_tolerance=num("health.flatline_relative_tolerance"),
        out_of_range_window_s=num("health.out_of_range_window_s", positive=True),
        silence_interval_factor=num("health.silence_interval_factor", positive=True),
        silence_min_s=num("health.silence_min_s"),
        silence_min_messages=int(num("health.silence_min_messages", positive=True)),
        interval_smoothing=fraction("health.interval_smoothing"),
        sequence_window=int(num("health.sequence_window", positive=True)),
        bin_s=bin_s,
        escalate_after_s=num("engine.escalate_after_s", positive=True),
        max_escalations=int(num("engine.max_escalations")),
        kinds=MappingProxyType(kinds),
        sources=MappingProxyType({k: v for k, v in r.sources.items() if k.startswith("alerts.")}),
    )


__all__ = [
    "DEVICE_KINDS",
    "KINDS",
    "KIND_INDEX",
    "AlertKind",
    "AlertNorms",
    "KindRule",
    "Severity",
    "load_alert_norms",
]


#: The ``[alerts.actions]`` keys: hazards, and ``device`` for the sensor-health kinds.
ACTION_KEYS = ("gas", "dust", "noise", "vibration", "oxygen", "methane", "device")


def load_alert_actions(name_or_path: str | Path = "default") -> dict[str, str]:
    """What a notified person should do, per key of :data:`ACTION_KEYS` (``[alerts.actions]`` of
    a norms profile, each with its source). English text, which the message catalogues
    translate.

    Raises:
        NormsError: when an action is missing, not text or cites an undefined source.
    """
    data, chain = read_profile(name_or_path)
    alerts = data.get("alerts")
    if not isinstance(alerts, dict):
        raise NormsError(f"norms profile {chain[-1]!r} has no [alerts] section")
    merged = dict(data)
    merged["sources"] = {**data.get("sources", {}), **alerts.get("sources", {})}
    r = LeafReader(merged, chain[-1])
    actions: dict[str, str] = {}
    for key in ACTION_KEYS:
        value = r.leaf(f"alerts.actions.{key}")
        if not isinstance(value, str) or not value.strip():
            raise NormsError(f"alerts.actions.{key} must be a non-empty text")
        actions[key] = value
    return actions
