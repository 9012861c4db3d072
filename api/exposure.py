"""Exposure of a workplace over one shift, from raw readings through ``analytics``.

The shell part only: which sensors belong to the workplace, their samples over the shift window
(times in seconds from the shift start), the classes entered for unmeasured factors in force on
the shift's date; :func:`analytics.assess_workplace` does every formula.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from psycopg import AsyncConnection

from analytics import (
    AnalyticsError,
    Norms,
    SensorSeries,
    WorkplaceAssessment,
    assess_workplace,
    is_alarm_channel,
    normalize_unit,
)
from api.shifts import Schedule, Shift, shifts_between
from store.assessments import current_factors, factor_entries, in_force
from store.catalog import Row
from store.workplace_data import fetch_window, sensors_of


@dataclass(frozen=True, slots=True)
class SensorRef:
    id: int
    code: str
    quantity: str
    unit: str
    substance: str | None


@dataclass(frozen=True, slots=True)
class Skipped:
    sensor: SensorRef
    reason: str
    samples: int = 0


@dataclass(frozen=True, slots=True)
class ShiftExposure:
    """One shift of one workplace: the analytics result plus what could not be assessed."""

    shift: Shift
    assessment: WorkplaceAssessment | None
    samples: Mapping[str, int]  # sensor code → samples in the window
    sensor_ids: Mapping[str, int]
    skipped: tuple[Skipped, ...]
    entered: Mapping[str, Row] = field(default_factory=dict)
    note: str = ""
    # Set when the shift was assessed from rollups: coverage counted from sample counts, and
    # the sensors whose coverage is below the minimum by that count.
    coverage: Mapping[str, float] | None = None
    insufficient: tuple[str, ...] | None = None
    source: str = "raw readings"

    @property
    def b(self) -> int | None:
        return None if self.assessment is None else self.assessment.b

    @property
    def b_continuous(self) -> float | None:
        if self.assessment is None or self.assessment.b_continuous is None:
            return None
        return float(self.assessment.b_continuous)


def schedule_of(workplace: Row) -> Schedule:
    return Schedule.of(
        workplace["shift_starts"], workplace["shift_duration_s"], workplace["timezone"]
    )


async def workplace_sensors(conn: AsyncConnection[Any], workplace_id: int) -> list[SensorRef]:
    return (await sensors_by_workplace(conn, [workplace_id]))[workplace_id]


async def sensors_by_workplace(
    conn: AsyncConnection[Any], workplace_ids: Sequence[int]
) -> dict[int, list[SensorRef]]:
    found = await sensors_of(conn, workplace_ids)
    return {w: [SensorRef(**row) for row in rows] for w, rows in found.items()}


def assessable(sensor: SensorRef, norms: Norms) -> bool:
    return why_not_assessable(sensor, norms) is None


def why_not_assessable(sensor: SensorRef, norms: Norms) -> str | None:
    """Why ``sensor`` cannot be assessed with ``norms``, or None when it can."""
    try:
        normalize_unit(sensor.quantity, sensor.unit)
        if sensor.quantity in ("gas", "dust") and not is_alarm_channel(
            sensor.quantity, sensor.unit
        ):  # % vol and % LEL channels are reported without a substance limit
            norms.substance(sensor.substance or "")
    except AnalyticsError as exc:
        return f"not assessed: {exc}"
    return None


async def assess_shift(
    conn: AsyncConnection[Any],
    norms: Norms,
    workplace: Row,
    shift: Shift,
    *,
    sensors: Sequence[SensorRef] | None = None,
    entered: Mapping[str, Row] | None = None,
) -> ShiftExposure:
    """Assess ``shift`` of ``workplace`` (a row of the workplace kind of ``store.catalog``)."""
    if sensors is None:
        sensors = await workplace_sensors(conn, workplace["id"])
    if entered is None:
        entered = (await current_factors(conn, [workplace["id"]], on=shift.day)).get(
            workplace["id"], {}
        )
    skipped: list[Skipped] = []
    usable: list[SensorRef] = []
    for sensor in sensors:
        reason = why_not_assessable(sensor, norms)
        if reason:
            skipped.append(Skipped(sensor, reason))
        else:
            usable.append(sensor)
    data = await fetch_window(conn, [s.id for s in usable], shift.start, shift.end)
    series: list[SensorSeries] = []
    samples: dict[str, int] = {}
    for sensor in usable:
        got = data.get(sensor.id)
        if got is None or got.values.size == 0:
            skipped.append(Skipped(sensor, "no readings in this shift"))
            continue
        samples[sensor.code] = int(got.values.size)
        series.append(
            SensorSeries(
                sensor=sensor.code,
                quantity=sensor.quantity,
                unit=sensor.unit,
                substance=sensor.substance,
                time_s=got.time_s,
                values=got.values,
            )
        )
    factor_classes = {name: row["working_class"] for name, row in entered.items()}
    ids = {s.code: s.id for s in sensors}
    if not series and not factor_classes:
        return ShiftExposure(
            shift, None, samples, ids, tuple(skipped), entered,
            "no readings and no entered factor classes: nothing to assess",
        )  # fmt: skip
    assessment = assess_workplace(
        series,
        norms,
        shift_duration_s=shift.duration_s,
        entered_factors=factor_classes,
    )
    return ShiftExposure(shift, assessment, samples, ids, tuple(skipped), entered)


async def assess_period(
    conn: AsyncConnection[Any], norms: Norms, workplace: Row, first: date, last: date
) -> list[ShiftExposure]:
    """Every shift of ``first..last`` (local dates), oldest first.

    Computed from raw readings shift by shift; the registry lookups are shared.
    """
    sensors = await workplace_sensors(conn, workplace["id"])
    entries = await factor_entries(conn, workplace["id"])
    found = []
    for s in shifts_between(schedule_of(workplace), first, last):
        entered = in_force(entries, "factor", s.day)
        found.append(
            await assess_shift(conn, norms, workplace, s, sensors=sensors, entered=entered)
        )
    return found


def insufficient(found: ShiftExposure) -> tuple[str, ...]:
    """Sensors of the shift whose coverage is below the norms profile's minimum."""
    if found.insufficient is not None:
        return found.insufficient
    return () if found.assessment is None else tuple(found.assessment.insufficient_data)


def sufficient(found: ShiftExposure) -> bool:
    """Whether every assessed sensor of the shift covered enough of it (analytics' minimum)."""
    return found.assessment is not None and not insufficient(found)


def worst(shifts: Sequence[ShiftExposure]) -> ShiftExposure | None:
    """The shift with the highest В (then the highest continuous В; then the latest).

    Shifts with sufficient coverage are preferred: analytics extrapolates a partly measured
    shift at its measured average, so a few minutes of a loud start must not set В while full
    shifts exist. Only when no shift is sufficient does the worst insufficient one count.
    """
    rated = [s for s in shifts if s.b is not None]
    if not rated:
        return None
    full = [s for s in rated if sufficient(s)]
    return max(
        reversed(full or rated),
        key=lambda s: (s.b or 0, s.b_continuous if s.b_continuous is not None else -math.inf),
    )
