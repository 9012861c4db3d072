"""Plain-words pieces of alert messages (numbers rounded for people, units spelled out)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

from analytics.alerts.params import AlertKind
from analytics.alerts.subjects import SubjectSpec

KIND_TEXT: dict[AlertKind, str] = {
    AlertKind.CEILING: "ceiling exceeded",
    AlertKind.SHORT_TERM: "15-minute mean above ПДК_max",
    AlertKind.PRE_EXCEEDANCE: "approaching a limit",
    AlertKind.FLOOR: "below a floor",
    AlertKind.PRE_FLOOR: "approaching a floor",
    AlertKind.PROJECTED_EXPOSURE: "projected end-of-shift over-exposure",
    AlertKind.TREND: "rising towards a limit",
    AlertKind.FLATLINE: "sensor stuck on one value",
    AlertKind.OUT_OF_RANGE: "samples out of range",
    AlertKind.SENSOR_SILENT: "sensor silent",
    AlertKind.SEQUENCE_GAP: "messages missing",
    AlertKind.DEVICE_OFFLINE: "device offline",
    AlertKind.CALIBRATION_OVERDUE: "calibration overdue",
}

#: Formats epoch seconds for a person in an IANA zone: ``(time_s, zone) -> text``.
TimeText = Callable[[float, str], str]


def utc_time_text(time_s: float, zone: str) -> str:
    """Epoch seconds as ``HH:MM UTC``: right, though not local (the core reads no zone data;
    the shell passes a formatter that gives the enterprise's local time with its zone)."""
    return f"{datetime.fromtimestamp(time_s, UTC):%H:%M} UTC"


def fmt(x: float) -> str:
    """A number with about three significant digits."""
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}".rstrip("0").rstrip(".") if abs(x) >= 0.01 else f"{x:.3g}"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def what(spec: SubjectSpec) -> str:
    if spec.quantity in ("gas", "dust") and spec.substance:
        return spec.substance
    return {
        "noise_laeq": "noise level",
        "noise_lamax": "LAmax",
        "noise_lcpeak": "LCpeak",
        "vib_hav": "hand-arm vibration",
        "vib_wbv_x": "whole-body vibration X",
        "vib_wbv_y": "whole-body vibration Y",
        "vib_wbv_z": "whole-body vibration Z",
    }.get(spec.quantity or "", spec.quantity or "device")


def where(spec: SubjectSpec) -> str:
    place = f" at workplace {spec.workplace}" if spec.workplace else ""
    return f"sensor {spec.sensor}{place}" if spec.sensor else f"device {spec.device}{place}"


def cleared(kind: AlertKind, spec: SubjectSpec, value: float, unit: str) -> str:
    now = f": now {fmt(value)} {unit}".rstrip() if unit and math.isfinite(value) else ""
    return f"cleared ({KIND_TEXT[kind]}) at {where(spec)}{now}"


__all__ = [
    "KIND_TEXT",
    "TimeText",
    "cleared",
    "duration",
    "fmt",
    "utc_time_text",
    "what",
    "where",
]
