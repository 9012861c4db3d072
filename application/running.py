"""Exposure of the shift in progress: running LEX,8h / TWA / A(8), their projection to the end
of the shift at the current rate, and the class and В if the shift goes on as it has.

Every number comes from ``analytics``: the hold rule (``hold_durations``) gives each sample its
duration, the running sums (``sound_exposure_sum``, ``dose_sum``, ``vibration_energy_sum``) add
them up, ``project_sum`` carries a sum to the end of the shift at the mean rate of the last
``projection.rate_window_s`` (the alert engine's rate window, so the dashboard and the
``projected_exposure`` alert agree), and ``lex_8h_from_exposure`` / ``twa_8h_from_dose`` /
``a8_from_energy`` turn sums into daily values. Limits are the alert engine's projection levels
(``analytics.alerts.thresholds_for``) in the sensor's own unit. The class, В and coverage are
the stored assessment of the running shift (``application.assessments``), the same row every
other surface shows, refreshed by the assessment service as readings arrive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from psycopg import AsyncConnection

from analytics import (
    Norms,
    a8_from_energy,
    dose_sum,
    hold_durations,
    lex_8h_from_exposure,
    project_sum,
    sound_exposure_sum,
    twa_8h_from_dose,
    vibration_energy_sum,
)
from analytics.alerts import AlertNorms, SubjectSpec, Thresholds, thresholds_for
from analytics.alerts.subjects import PROJ_A8, PROJ_LEX, PROJ_NONE, PROJ_TWA
from application.assessments import (
    SensorRef,
    schedule_of,
    sensors_by_workplace,
    stored_shift,
    why_not_assessable,
)
from application.schedule import Shift, current_shift
from store.catalog import Row
from store.workplace_data import fetch_window

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

# Resolution of the time-to-limit search: one candidate per minute of the remaining shift.
_TIME_STEP_S = 60.0

_METRIC_LABEL = {PROJ_LEX: "LEX,8h", PROJ_TWA: "TWA", PROJ_A8: "A(8)"}


@dataclass(frozen=True, slots=True)
class LimitLine:
    """A horizontal line for the sensor's chart, in the sensor's unit."""

    label: str
    value: float
    kind: str  # action, limit, short_term (ПДК_max), ceiling or floor (a low alarm)


@dataclass(frozen=True, slots=True)
class RunningMetric:
    metric: str  # LEX,8h, TWA or A(8)
    unit: str
    so_far: float  # the exposure received so far, as a daily value
    projected: float  # at the end of the shift at the current rate
    action_level: float | None
    limit: float | None
    rate_window_s: float
    measured_s: float
    time_to_limit_s: float | None  # None: not reached this shift at the current rate


@dataclass(frozen=True, slots=True)
class RunningSensor:
    sensor: SensorRef
    samples: int
    latest_at: datetime | None
    latest_value: float | None
    running: RunningMetric | None
    lines: tuple[LimitLine, ...]
    working_class: str | None
    note: str


@dataclass(frozen=True, slots=True)
class RunningExposure:
    shift: Shift
    at: datetime
    elapsed_s: float
    sensors: tuple[RunningSensor, ...]
    working_class: str | None
    b: int | None
    b_continuous: float | None
    deciding_factors: tuple[str, ...]
    explanation: str
    insufficient_data: bool = True
    coverage_min: float | None = None
    assessed_at: datetime | None = None  # when the stored assessment was computed

    @property
    def running(self) -> bool:
        return self.at < self.shift.end


def _metric_of(kind: int, total: FloatArray, k: float) -> FloatArray:
    if kind == PROJ_LEX:
        return lex_8h_from_exposure(total)
    if kind == PROJ_A8:
        return a8_from_energy(total, k)
    return twa_8h_from_dose(total)


def _sum_of(kind: int, values: FloatArray, durations: FloatArray) -> float:
    if kind == PROJ_LEX:
        return float(sound_exposure_sum(values, durations))
    if kind == PROJ_A8:
        return float(vibration_energy_sum(values, durations))
    return float(dose_sum(values, durations))


def running_metric(
    th: Thresholds,
    time_s: FloatArray,
    values: FloatArray,
    *,
    elapsed_s: float,
    shift_duration_s: float,
    norms: Norms,
    rate_window_s: float,
) -> RunningMetric | None:
    """Running daily value of one sensor ``elapsed_s`` into its shift (samples at ``time_s``
    seconds from the shift start) and its projection to the end of the shift."""
    kind = th.projection
    if kind == PROJ_NONE or time_s.size == 0:
        return None
    holds = hold_durations(
        time_s,
        np.zeros(1, dtype=np.intp),
        shift_duration_s=shift_duration_s,
        max_gap_s=norms.sampling.max_gap_s,
        fallback_interval_s=norms.sampling.fallback_interval_s,
    )
    durations = holds.duration_s
    total = _sum_of(kind, values, durations)
    recent = holds.start_s >= max(elapsed_s - rate_window_s, 0.0)
    recent_s = float(durations[recent].sum())
    rate = _sum_of(kind, values[recent], durations[recent]) / recent_s if recent_s > 0 else 0.0
    k = th.projection_k
    projected_sum = project_sum(total, elapsed_s, shift_duration_s, rate)
    so_far = float(_metric_of(kind, np.asarray(total, dtype=np.float64), k))
    projected = float(_metric_of(kind, projected_sum, k))
    levels = th.projection_levels
    limit = levels[-1] if levels else None
    time_to_limit: float | None = None
    if limit is not None:
        remaining = max(shift_duration_s - elapsed_s, 0.0)
        steps = np.arange(0.0, remaining + _TIME_STEP_S, _TIME_STEP_S)
        # S + r·t for each candidate t: project_sum to a shift that ends t from now.
        ahead = _metric_of(kind, project_sum(total, elapsed_s, elapsed_s + steps, rate), k)
        over = np.flatnonzero(ahead >= limit)
        if over.size:
            time_to_limit = float(min(steps[over[0]], remaining))
    return RunningMetric(
        metric=_METRIC_LABEL[kind],
        unit=th.projection_unit,
        so_far=so_far,
        projected=projected,
        action_level=levels[0] if len(levels) > 1 else None,
        limit=limit,
        rate_window_s=rate_window_s,
        measured_s=float(durations.sum()),
        time_to_limit_s=time_to_limit,
    )


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def limit_lines(th: Thresholds, unit: str = "") -> tuple[LimitLine, ...]:
    """What a chart of the sensor's raw values is drawn against, in the sensor's unit
    (``unit``: the sensor's, for the alarm channels whose thresholds carry none)."""
    lines: list[LimitLine] = []
    unit = th.projection_unit or unit
    if th.projection == PROJ_TWA:
        pdk = th.projection_levels[-1]
        lines.append(LimitLine(f"ПДК_сс {_fmt(pdk)} {unit}", pdk, "limit"))
    elif th.projection in (PROJ_LEX, PROJ_A8) and th.projection_levels:
        *actions, limit = th.projection_levels
        for level in actions:
            lines.append(LimitLine(f"action {_fmt(level)} {unit}", level, "action"))
        lines.append(LimitLine(f"{th.projection_metric} limit {_fmt(limit)} {unit}", limit,
                               "limit"))  # fmt: skip
    if math.isfinite(th.short_term):
        lines.append(LimitLine(f"ПДК_max {_fmt(th.short_term)} {unit}", th.short_term,
                               "short_term"))  # fmt: skip
    elif th.projection == PROJ_NONE and math.isfinite(th.pre):
        # Alarm channels (% LEL, methane): the first alarm below the ceiling.
        lines.append(LimitLine(f"first alarm {_fmt(th.pre)} {unit}", th.pre, "action"))
    if math.isfinite(th.ceiling) and th.projection != PROJ_TWA:
        if "LCpeak" in th.ceiling_label:
            unit = "dB(C)"
        elif th.is_db:
            unit = "dB(A)"
        lines.append(LimitLine(f"{th.ceiling_label} {_fmt(th.ceiling)} {unit}", th.ceiling,
                               "ceiling"))  # fmt: skip
    for value, label in ((th.pre_floor, th.pre_floor_label), (th.floor, th.floor_label)):
        if math.isfinite(value):  # oxygen: the low alarms
            lines.append(LimitLine(f"{label} {_fmt(value)} {unit}", value, "floor"))
    return tuple(lines)


async def running_exposure(
    conn: AsyncConnection[Any],
    norms: Norms,
    alert_norms: AlertNorms,
    workplace: Row,
    enterprise_code: str,
    now: datetime | None = None,
    *,
    late_s: float,
    sensors: Sequence[SensorRef] | None = None,
) -> RunningExposure:
    now = now or datetime.now(UTC)
    shift = current_shift(schedule_of(workplace), now)
    end = min(now, shift.end)
    elapsed = max((end - shift.start).total_seconds(), 0.0)
    if sensors is None:
        sensors = (await sensors_by_workplace(conn, [workplace["id"]]))[workplace["id"]]
    data = await fetch_window(conn, [s.id for s in sensors], shift.start, end)
    assessed = await stored_shift(conn, norms, workplace, shift, late_s)
    classes = {r["sensor"]: r["working_class"] for r in assessed.sensors}
    results: list[RunningSensor] = []
    for sensor in sensors:
        spec = SubjectSpec(
            enterprise=enterprise_code,
            device="",
            sensor=sensor.code,
            quantity=sensor.quantity,
            unit=sensor.unit,
            substance=sensor.substance,
        )
        th = thresholds_for(spec, norms, alert_norms)
        got = data.get(sensor.id)
        running: RunningMetric | None = None
        latest_at: datetime | None = None
        latest_value: float | None = None
        note = why_not_assessable(sensor, norms) or ""
        samples = 0 if got is None else int(got.values.size)
        if got is not None and samples:
            latest_at = shift.start + timedelta(seconds=float(got.time_s[-1]))
            latest_value = float(got.values[-1])
            running = running_metric(
                th,
                got.time_s,
                got.values,
                elapsed_s=elapsed,
                shift_duration_s=shift.duration_s,
                norms=norms,
                rate_window_s=alert_norms.projection_rate_window_s,
            )
        elif not note:
            note = "no readings in this shift yet"
        results.append(
            RunningSensor(
                sensor,
                samples,
                latest_at,
                latest_value,
                running,
                limit_lines(th, sensor.unit),
                classes.get(sensor.code),
                note,
            )
        )
    return RunningExposure(
        shift=shift,
        at=now,
        elapsed_s=elapsed,
        sensors=tuple(results),
        working_class=assessed.working_class,
        b=assessed.b,
        b_continuous=assessed.b_continuous,
        deciding_factors=tuple(assessed.deciding_factors),
        explanation=assessed.explanation or assessed.note,
        insufficient_data=assessed.insufficient_data,
        coverage_min=assessed.coverage_min,
        assessed_at=assessed.computed_at,
    )
