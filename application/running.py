"""Exposure of the shift in progress: running LEX,8h / TWA / A(8), their projection to the end
of the shift at the current rate, and the class and В if the shift goes on as it has.

The running figures are the alert engine's own: the workplace's sensors get a detector state
rebuilt from stored readings (``application.detector_warmup``, what the engine does when it
starts), and ``analytics.alerts.running_projections`` turns its shift sums and rate window into
"so far" and "projected" — the function the ``projected_exposure`` detector compares with its
levels. So the dashboard and the alert say the same number for the same readings. Limits are
the engine's projection levels (``analytics.alerts.thresholds_for``) in the sensor's own unit.
The class, В and coverage are the stored assessment of the running shift
(``application.assessments``), the same row every other surface shows, refreshed by the
assessment service as readings arrive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from psycopg import AsyncConnection

from analytics import Norms
from analytics.alerts import (
    AlertNorms,
    DetectorState,
    ShiftCalendar,
    SubjectSpec,
    Thresholds,
    add_subject,
    new_state,
    running_projections,
    set_calendars,
    time_to_level,
)
from analytics.alerts.subjects import PROJ_A8, PROJ_LEX, PROJ_NONE, PROJ_TWA
from application.assessments import (
    SensorRef,
    schedule_of,
    sensors_by_workplace,
    stored_shift,
    why_not_assessable,
)
from application.detector_warmup import warm_detectors
from application.schedule import Shift, bounds_s, current_shift
from store.catalog import Row
from store.workplace_data import latest_readings

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
    at: datetime  # the latest reading: the figures are as of then


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


def running_state(
    norms: Norms,
    alert_norms: AlertNorms,
    workplace: Row,
    enterprise_code: str,
    sensors: Sequence[SensorRef],
    now: datetime,
) -> tuple[DetectorState, dict[int, int]]:
    """A detector state holding ``sensors`` of ``workplace`` (sensor id → slot), with the
    calendar of its schedule around ``now``: what the alert engine holds for them, empty."""
    schedule = schedule_of(workplace)
    zone = schedule.timezone
    state = new_state(norms, alert_norms, capacity=len(sensors) + 1)
    device = f"workplace-{workplace['id']}"
    add_subject(state, SubjectSpec(enterprise=enterprise_code, device=device, timezone=zone))
    slots = {
        s.id: add_subject(
            state,
            SubjectSpec(
                enterprise=enterprise_code,
                device=device,
                sensor=s.code,
                quantity=s.quantity,
                unit=s.unit,
                substance=s.substance,
                workplace=workplace["code"],
                sensor_id=s.id,
                schedule=schedule,
                timezone=zone,
            ),
        )
        for s in sensors
    }
    span = timedelta(seconds=2 * schedule.duration_s) + timedelta(days=1)
    set_calendars(state, {schedule: ShiftCalendar.of(*bounds_s(schedule, now - span, now + span))})
    return state, slots


def running_metrics(
    state: DetectorState, slots: Sequence[int], shift: Shift
) -> list[RunningMetric | None]:
    """The running figures of ``slots`` (None: no daily value, or no reading in ``shift``) at
    each one's latest reading, by :func:`analytics.alerts.running_projections`."""
    found: list[RunningMetric | None] = [None] * len(slots)
    idx = np.asarray(slots, dtype=np.intp)
    ours = (
        (state.projection[idx] != PROJ_NONE)
        & (state.shift_start[idx] == shift.start.timestamp())
        & (state.shift_w[idx] > 0)
        & np.isfinite(state.last_time[idx])
    )
    if not ours.any():
        return found
    chosen = idx[ours]
    p = running_projections(state, chosen)
    rate_window_s = state.alerts.projection_rate_window_s
    for j, (i, slot) in enumerate(zip(np.flatnonzero(ours).tolist(), chosen.tolist(), strict=True)):
        th = state.thresholds[slot]
        levels = th.projection_levels
        limit = levels[-1] if levels else None
        projected = float(p.projected[j])
        time_to_limit = None
        if limit is not None:
            time_to_limit = time_to_level(
                int(state.projection[slot]),
                limit,
                float(state.proj_k[slot]),
                float(state.shift_sum[slot]),
                float(p.rate[j]),
                projected,
            )
        found[i] = RunningMetric(
            metric=_METRIC_LABEL[th.projection],
            unit=th.projection_unit,
            so_far=float(p.so_far[j]),
            projected=projected,
            action_level=levels[0] if len(levels) > 1 else None,
            limit=limit,
            rate_window_s=rate_window_s,
            measured_s=float(state.shift_w[slot]),
            time_to_limit_s=time_to_limit,
            at=datetime.fromtimestamp(float(state.last_time[slot]), UTC),
        )
    return found


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
        lines.append(
            LimitLine(f"{th.projection_metric} limit {_fmt(limit)} {unit}", limit, "limit")
        )
    if math.isfinite(th.short_term):
        lines.append(
            LimitLine(f"ПДК_max {_fmt(th.short_term)} {unit}", th.short_term, "short_term")
        )
    elif th.projection == PROJ_NONE and math.isfinite(th.pre):
        # Alarm channels (% LEL, methane): the first alarm below the ceiling.
        lines.append(LimitLine(f"first alarm {_fmt(th.pre)} {unit}", th.pre, "action"))
    if math.isfinite(th.ceiling) and th.projection != PROJ_TWA:
        if "LCpeak" in th.ceiling_label:
            unit = "dB(C)"
        elif th.is_db:
            unit = "dB(A)"
        lines.append(
            LimitLine(f"{th.ceiling_label} {_fmt(th.ceiling)} {unit}", th.ceiling, "ceiling")
        )
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
    state, slots = running_state(norms, alert_norms, workplace, enterprise_code, sensors, now)
    await warm_detectors(
        conn,
        {sensor_id: (state, slot) for sensor_id, slot in slots.items()},
        now.timestamp(),
        longest_shift_s=shift.duration_s,
    )
    metrics = running_metrics(state, [slots[s.id] for s in sensors], shift)
    latest = await latest_readings(conn, [s.id for s in sensors], shift.start, end)
    assessed = await stored_shift(conn, norms, workplace, shift, late_s)
    classes = {r["sensor"]: r["working_class"] for r in assessed.sensors}
    results: list[RunningSensor] = []
    for sensor, running in zip(sensors, metrics, strict=True):
        th = state.thresholds[slots[sensor.id]]
        note = why_not_assessable(sensor, norms) or ""
        last = latest.get(sensor.id)
        samples = 0 if last is None else last.samples
        latest_at = None if last is None else last.at
        latest_value = None if last is None else last.value
        if not samples and not note:
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
