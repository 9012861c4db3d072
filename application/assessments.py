"""Assessed shifts: computing one from the rollups, and reading the stored ones.

A shift is assessed from its workplace's sensors' rollups (``store.rollups``): every bucket
becomes two samples holding the bucket's representative statistic (energy-mean level for LAeq,
r.m.s. for vibration, mean for concentrations) for exactly the bucket's width, and
``analytics.assess_workplace`` does every formula. The rollups are sufficient statistics, so over
fully measured buckets LEX,8h, A(8) and TWA are the exact time-weighted figures of a regularly
sampled sensor; a partly measured bucket counts as measured at its average.

Hour buckets are used for a workplace whose shifts all start and end on whole UTC hours (the
default 08:00 shift in a whole-hour zone such as Asia/Almaty), minute buckets otherwise: the
same figures for fully measured hours at a sixtieth of the rows. The cost: 15-min maxima of
concentrations are maxima of bucket means, exact with minute buckets and an underestimate with
hour buckets (acute-gas classes then rest on the TWA; the alert engine watches the 15-min means
on the stream itself).

Coverage of a sensor is counted from sample counts: its fullest bucket of the shift counts as
fully measured, every other bucket in proportion, over the shift's duration. Below the norms
profile's minimum the sensor, and the shift, are "insufficient data" on every surface.

The result is stored once (``store.shift_assessments``) by the assessment service and read by
every surface; :func:`assess_shifts` is the only place that computes it.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final, NamedTuple

import numpy as np
from psycopg import AsyncConnection

from analytics import (
    AnalyticsError,
    Norms,
    NormsError,
    SensorResult,
    SensorSeries,
    WorkplaceAssessment,
    assess_series,
    combine_sensors,
    is_alarm_channel,
    load_norms,
    normalize_unit,
)
from application.schedule import Schedule, Shift, shifts_between
from store import shift_assessments as stored
from store.assessments import factor_entries_of, in_force
from store.catalog import Row, translate_errors
from store.rollups import BUCKET_US, Bucket, BucketLevels, fetch_levels
from store.workplace_data import sensors_of

US_PER_S = 1_000_000
SOURCE: Final = "rollups"
NOTHING_TO_ASSESS = "no readings and no entered factor classes: nothing to assess"
# The basis of a sensor without readings in the shift, which also marks it as such.
NO_READINGS_BASIS = "no readings in this shift"
FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SensorRef:
    id: int
    code: str
    quantity: str
    unit: str
    substance: str | None


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


async def sensors_by_workplace(
    conn: AsyncConnection[Any], workplace_ids: Sequence[int]
) -> dict[int, list[SensorRef]]:
    found = await sensors_of(conn, workplace_ids)
    return {w: [SensorRef(**row) for row in rows] for w, rows in found.items()}


@dataclass(frozen=True, slots=True)
class AssessedShift:
    """One shift of one workplace as stored: the headline figures and, in ``detail``, per
    sensor and per factor what the API's exposure answer shows."""

    workplace_id: int
    shift: Shift
    timezone: str
    status: str  # running, provisional or final
    working_class: str | None
    b: int | None
    b_continuous: float | None
    coverage_min: float | None
    insufficient_data: bool
    deciding_factors: tuple[str, ...]
    detail: Mapping[str, Any]
    norms_profile: str
    norms_version: str
    inputs_digest: bytes = b""
    computed_at: datetime | None = None
    stored: bool = field(default=True)

    @property
    def rated(self) -> bool:
        return self.b is not None

    @property
    def sufficient(self) -> bool:
        return self.rated and not self.insufficient_data

    @property
    def insufficient_sensors(self) -> list[str]:
        return list(self.detail.get("insufficient_sensors", ()))

    @property
    def explanation(self) -> str:
        return str(self.detail.get("explanation", ""))

    @property
    def note(self) -> str:
        return str(self.detail.get("note", ""))

    @property
    def factors(self) -> list[Mapping[str, Any]]:
        return list(self.detail.get("factors", ()))

    @property
    def sensors(self) -> list[Mapping[str, Any]]:
        return list(self.detail.get("sensors", ()))

    def row(self) -> dict[str, Any]:
        s = self.shift
        return {
            "workplace_id": self.workplace_id,
            "shift_start": s.start,
            "shift_end": s.end,
            "local_day": s.day,
            "shift_number": s.number,
            "timezone": self.timezone,
            "status": self.status,
            "working_class": self.working_class,
            "b": self.b,
            "b_continuous": self.b_continuous,
            "coverage_min": self.coverage_min,
            "insufficient_data": self.insufficient_data,
            "deciding_factors": list(self.deciding_factors),
            "detail": dict(self.detail),
            "norms_profile": self.norms_profile,
            "norms_version": self.norms_version,
            "inputs_digest": self.inputs_digest,
        }

    @classmethod
    def of_row(cls, row: Row) -> AssessedShift:
        return cls(
            workplace_id=int(row["workplace_id"]),
            shift=Shift(
                row["local_day"], int(row["shift_number"]), row["shift_start"], row["shift_end"]
            ),
            timezone=row["timezone"],
            status=row["status"],
            working_class=row["working_class"],
            b=row["b"],
            b_continuous=row["b_continuous"],
            coverage_min=row["coverage_min"],
            insufficient_data=bool(row["insufficient_data"]),
            deciding_factors=tuple(row["deciding_factors"]),
            detail=row["detail"],
            norms_profile=row["norms_profile"],
            norms_version=row["norms_version"],
            inputs_digest=bytes(row["inputs_digest"]),
            computed_at=row["computed_at"],
        )


def status_at(s: Shift, now: datetime, late_s: float) -> str:
    """running until the shift ends, provisional while ingest still accepts readings for it,
    final after."""
    if now < s.end:
        return "running"
    if (now - s.end).total_seconds() < late_s:
        return "provisional"
    return "final"


def unassessed(
    workplace: Row,
    s: Shift,
    sensors: Sequence[SensorRef],
    norms: Norms,
    now: datetime,
    late_s: float,
) -> AssessedShift:
    """The answer for a shift without a stored row: nothing was measured or entered."""
    rows = [_missing_sensor(ref, why_not_assessable(ref, norms)) for ref in sensors]
    return AssessedShift(
        workplace_id=int(workplace["id"]),
        shift=s,
        timezone=workplace["timezone"],
        status=status_at(s, now, late_s),
        working_class=None,
        b=None,
        b_continuous=None,
        coverage_min=0.0 if rows else None,
        insufficient_data=True,
        deciding_factors=(),
        detail={
            "sensors": rows,
            "factors": [],
            "rule": None,
            "deciding_factors": [],
            "mixture_index": {},
            "explanation": NOTHING_TO_ASSESS,
            "note": NOTHING_TO_ASSESS,
            "insufficient_sensors": [r["sensor"] for r in rows if r["insufficient_data"]],
            "source": SOURCE,
        },
        norms_profile=norms.name,
        norms_version=norms.version,
        stored=False,
    )


def _missing_sensor(ref: SensorRef, reason: str | None) -> dict[str, Any]:
    no_data = reason is None
    return {
        "sensor_id": ref.id,
        "sensor": ref.code,
        "quantity": ref.quantity,
        "substance": ref.substance,
        "samples": 0,
        "metrics": {"coverage": 0.0} if no_data else {},
        "working_class": None,
        "factor": None,
        "B_continuous": None,
        "insufficient_data": no_data,
        "basis": NO_READINGS_BASIS if no_data else reason,
    }


@dataclass(frozen=True, slots=True)
class _Sensor:
    """One sensor's minute buckets over the span being assessed."""

    ref: SensorRef
    starts_us: np.ndarray[Any, np.dtype[np.int64]]
    n: np.ndarray[Any, np.dtype[np.int64]]
    level: FloatArray


@dataclass(frozen=True, slots=True)
class WorkplaceInputs:
    """Everything the shifts of one workplace are assessed from."""

    workplace: Row
    sensors: tuple[SensorRef, ...]
    buckets: tuple[_Sensor, ...]
    entries: tuple[Row, ...]
    bucket: Bucket

    @property
    def width_us(self) -> int:
        return BUCKET_US[self.bucket]


def bucket_for(shifts: Sequence[Shift]) -> Bucket:
    """Hour buckets when every shift starts and ends on a whole UTC hour, else minutes."""
    aligned = all(int(t.timestamp()) % 3600 == 0 for s in shifts for t in (s.start, s.end))
    return "1 hour" if aligned else "1 min"


def _num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 6)


def _digest(
    norms: Norms,
    inputs: WorkplaceInputs,
    s: Shift,
    classes: Mapping[str, str],
    parts: Sequence[_Part],
    sensors_repr: str,
) -> bytes:
    h = hashlib.blake2b(digest_size=20, person=b"qorgau-shift")
    # The repr of the tuple (workplace, start, duration, number, profile, version, classes,
    # sensors), with the sensors' part (the same for every shift) formatted once per workplace.
    head = ", ".join(
        [
            repr(inputs.workplace["id"]),
            repr(s.start.isoformat()),
            repr(s.duration_s),
            repr(s.number),
            repr(norms.name),
            repr(norms.version),
            repr(sorted(classes.items())),
            sensors_repr,
        ]
    )
    h.update(f"({head})".encode())
    for p in parts:
        b, i, j = p.sensor, p.i, p.j
        h.update(p.id_bytes)
        h.update(b.starts_us[i:j].tobytes())
        h.update(b.n[i:j].tobytes())
        # Rounded: a real-time aggregate may add a bucket's floats in another order per query,
        # and the last bits must not make an unchanged shift look changed.
        h.update(p.rounded[i:j].tobytes())
    return h.digest()


class _Part(NamedTuple):
    """One sensor's buckets ``i:j`` in one shift, with what is derived from them: the samples
    the numeric core assesses (views of arrays computed once per sensor), and the bucket counts
    coverage is taken from. (A tuple: made once per sensor and shift, where a frozen
    dataclass's construction showed in the profile.)"""

    sensor: _Sensor
    i: int
    j: int
    time_s: FloatArray
    values: FloatArray
    samples: int
    ratio_sum: float  # Σ min(n / fullest bucket's n, 1) over the buckets
    id_bytes: bytes
    rounded: FloatArray  # the sensor's levels rounded for the digest (all buckets)


def _series(b: _Sensor, i: int, j: int, s: Shift, width_us: int, *, name: str) -> SensorSeries:
    """Buckets ``i:j`` of sensor ``b`` in shift ``s`` as samples, one shift alone: the
    definition :func:`_sensor_parts` computes for every shift at once."""
    offset_s = (b.starts_us[i:j] - int(s.start.timestamp() * US_PER_S)) / US_PER_S
    time_s = np.empty(2 * offset_s.size)
    time_s[0::2] = offset_s
    time_s[1::2] = offset_s + width_us / US_PER_S / 2.0
    r = b.ref
    return SensorSeries(name, r.quantity, r.unit, r.substance, time_s, np.repeat(b.level[i:j], 2))


def _sensor_parts(b: _Sensor, lo_us: IntArray, hi_us: IntArray, width_us: int) -> dict[int, _Part]:
    """The parts of sensor ``b`` in the shifts ``[lo_us, hi_us)`` (µs), by shift index, with
    every array computed once for all of them (the cost is per sensor, not per shift)."""
    first = np.searchsorted(b.starts_us, lo_us, side="left")
    end = np.searchsorted(b.starts_us, hi_us, side="left")
    ks = np.flatnonzero(first < end)
    if ks.size == 0:
        return {}
    lens = end[ks] - first[ks]
    seg = np.cumsum(lens) - lens  # where each part begins among the selected buckets
    # The selected buckets, shift after shift (a bucket twice if shifts overlap).
    sel = np.arange(int(lens.sum())) + np.repeat(first[ks] - seg, lens)
    offset_s = (b.starts_us[sel] - np.repeat(lo_us[ks], lens)) / US_PER_S
    # Two samples per bucket, at its start and its middle, so every interval is half a
    # bucket, the hold rule gives each bucket exactly its width and a missing bucket is a gap.
    time_s = np.empty(2 * offset_s.size)
    time_s[0::2] = offset_s
    time_s[1::2] = offset_s + width_us / US_PER_S / 2.0
    values = np.repeat(b.level[sel], 2)
    n = b.n[sel]
    full = np.maximum.reduceat(n, seg)
    samples = np.add.reduceat(n, seg).tolist()
    ratio = np.minimum(n / np.repeat(full, lens), 1.0)
    id_bytes = np.int64(b.ref.id).tobytes()
    rounded = np.round(b.level, 9)
    found = {}
    for m, (k, i, j, a, size) in enumerate(
        zip(
            ks.tolist(),
            first[ks].tolist(),
            end[ks].tolist(),
            seg.tolist(),
            lens.tolist(),
            strict=True,
        )
    ):
        found[k] = _Part(
            b,
            i,
            j,
            time_s[2 * a : 2 * (a + size)],
            values[2 * a : 2 * (a + size)],
            samples[m],
            float(ratio[a : a + size].sum()),
            id_bytes,
            rounded,
        )
    return found


@dataclass(frozen=True, slots=True)
class _Due:
    """A shift to assess and what it is assessed from."""

    shift: Shift
    parts: tuple[_Part, ...]
    classes: Mapping[str, str]  # entered factor classes in force
    status: str
    digest: bytes


def _due_shifts(
    norms: Norms,
    inputs: WorkplaceInputs,
    shifts: Sequence[Shift],
    now: datetime,
    late_s: float,
    known: Mapping[datetime, tuple[bytes, str]] | None,
) -> list[_Due]:
    """The shifts with something to assess whose digest and status differ from ``known``."""
    usable = [b for b in inputs.buckets if why_not_assessable(b.ref, norms) is None]
    lo_us = np.array([int(s.start.timestamp() * US_PER_S) for s in shifts], dtype=np.int64)
    hi_us = np.array([int(s.end.timestamp() * US_PER_S) for s in shifts], dtype=np.int64)
    by_sensor = [_sensor_parts(b, lo_us, hi_us, inputs.width_us) for b in usable]
    sensors_repr = repr([(r.id, r.code, r.quantity, r.unit, r.substance) for r in inputs.sensors])
    due: list[_Due] = []
    for k, s in enumerate(shifts):
        parts = [got[k] for got in by_sensor if k in got]
        entered = in_force(inputs.entries, "factor", s.day)
        classes = {name: row["working_class"] for name, row in entered.items()}
        if not parts and not classes:
            continue
        digest = _digest(norms, inputs, s, classes, parts, sensors_repr)
        status = status_at(s, now, late_s)
        if known is not None and known.get(s.start) == (digest, status):
            continue
        due.append(_Due(s, tuple(parts), classes, status, digest))
    return due


def assess_shifts(
    norms: Norms,
    inputs: WorkplaceInputs,
    shifts: Sequence[Shift],
    now: datetime,
    late_s: float,
    known: Mapping[datetime, tuple[bytes, str]] | None = None,
) -> list[AssessedShift]:
    """Assess ``shifts`` of one workplace; a shift whose digest and status equal ``known``'s
    (stored ones) is left out, as is a shift with nothing to assess. Pure.

    The sensors of all the shifts go through ``analytics.assess_sensors`` in one call (every
    step there is per sensor), then each shift's results are combined on their own
    (``analytics.combine_sensors``): the same figures as ``assess_workplace`` shift by shift,
    without its fixed cost per shift."""
    due = _due_shifts(norms, inputs, shifts, now, late_s, known)
    if not due:
        return []
    # One schedule, one shift length (shifts of several lengths: one call per length).
    found: list[AssessedShift] = []
    for duration in sorted({d.shift.duration_s for d in due}):
        group = [d for d in due if d.shift.duration_s == duration]
        # Series named by their sensor's code (the shifts' series share the names: results and
        # refusals are matched by position).
        owner: list[int] = []
        series: list[SensorSeries] = []
        for k, d in enumerate(group):
            for p in d.parts:
                ref = p.sensor.ref
                owner.append(k)
                series.append(
                    SensorSeries(
                        ref.code, ref.quantity, ref.unit, ref.substance, p.time_s, p.values
                    )
                )
        results, refused = (
            assess_series(
                series, norms, shift_duration_s=duration, max_gap_s=inputs.width_us / US_PER_S
            )
            if series
            else ((), ())
        )
        by_shift: list[list[SensorResult]] = [[] for _ in group]
        for r, index in zip(results, owner, strict=True):
            by_shift[index].append(r)
        refused_by: list[list[str]] = [[] for _ in group]
        for i in refused:
            refused_by[owner[i]].append(series[i].sensor)
        for k, d in enumerate(group):
            if not by_shift[k] and not d.classes:
                continue
            a = combine_sensors(
                by_shift[k],
                norms,
                shift_duration_s=duration,
                entered_factors=dict(d.classes),
                refused=refused_by[k],
            )
            found.append(_assessed(norms, inputs, d, a))
    found.sort(key=lambda x: x.shift.start)
    return found


def _assessed(
    norms: Norms, inputs: WorkplaceInputs, d: _Due, a: WorkplaceAssessment
) -> AssessedShift:
    """The stored form of shift ``d``'s assessment ``a``, with coverage counted from the
    buckets' sample counts."""
    s, parts, classes, status, digest = d.shift, d.parts, d.classes, d.status, d.digest
    width_us = inputs.width_us
    coverage: dict[str, float] = {}
    samples: dict[str, int] = {}
    for p in parts:
        code = p.sensor.ref.code
        coverage[code] = min(p.ratio_sum * width_us / US_PER_S / s.duration_s, 1.0)
        samples[code] = p.samples
    short = [code for code, c in coverage.items() if c < norms.sampling.min_coverage]
    ids = {r.code: r.id for r in inputs.sensors}
    sensors: list[dict[str, Any]] = []
    finite = math.isfinite
    for sr in a.sensors:
        # _num inline: a call per metric showed in a rebuild's profile.
        metrics = {
            k: None if v is None or not finite(v) else round(float(v), 6)
            for k, v in sr.metrics.items()
        }
        metrics["coverage"] = _num(coverage.get(sr.sensor))
        sensors.append(
            {
                "sensor_id": ids.get(sr.sensor),
                "sensor": sr.sensor,
                "quantity": sr.quantity,
                "substance": sr.substance,
                "samples": samples.get(sr.sensor, 0),
                "metrics": metrics,
                "working_class": None if sr.working_class is None else sr.working_class.value,
                "factor": sr.factor,
                "B_continuous": _num(sr.b_continuous),
                "insufficient_data": sr.sensor in short,
                "classified_by": "projected" if sr.projected else "measured",
                "basis": sr.basis,
            }
        )
    measured = {p.sensor.ref.code for p in parts}
    for ref in inputs.sensors:
        if ref.code not in measured:
            row = _missing_sensor(ref, why_not_assessable(ref, norms))
            sensors.append(row)
            if row["insufficient_data"]:
                short.append(ref.code)
    coverages = [float(c) for c in coverage.values()]
    coverages += [0.0 for r in sensors if r["basis"] == NO_READINGS_BASIS]
    factors = [
        {
            "factor": f.factor,
            "working_class": f.working_class.value,
            "B": f.b,
            "B_continuous": round(f.b_continuous, 6),
            "source": "measured" if f.sensors else "entered",
            "sensors": list(f.sensors),
            "basis": f.basis,
        }
        for f in a.factors
    ]
    combination = a.combination
    return AssessedShift(
        workplace_id=int(inputs.workplace["id"]),
        shift=s,
        timezone=inputs.workplace["timezone"],
        status=status,
        working_class=None if a.working_class is None else a.working_class.value,
        b=a.b,
        b_continuous=_num(a.b_continuous),
        coverage_min=_num(min(coverages)) if coverages else None,
        insufficient_data=bool(short),
        deciding_factors=() if combination is None else tuple(combination.deciding),
        detail={
            "sensors": sensors,
            "factors": factors,
            "rule": None if combination is None else combination.rule,
            "deciding_factors": [] if combination is None else list(combination.deciding),
            "mixture_index": {k: _num(v) for k, v in a.mixture_index.items()},
            "explanation": a.explanation,
            "classification_rule": a.classification_rule,
            "projected": list(a.projected),
            "note": "",
            "insufficient_sensors": short,
            "source": f"{SOURCE} ({inputs.bucket})",
            "entered": {name: {"working_class": c} for name, c in classes.items()},
        },
        norms_profile=norms.name,
        norms_version=norms.version,
        inputs_digest=digest,
    )


class Profiles:
    """Each enterprise's norms profile (``enterprises.norms_profile``; none: the service's
    default), loaded once."""

    def __init__(self, default: Norms) -> None:
        self.default = default
        self._loaded: dict[str, Norms] = {}

    def of(self, workplace: Row) -> Norms:
        name = workplace.get("norms_profile")
        if not name or name == self.default.name:
            return self.default
        if name not in self._loaded:
            try:
                self._loaded[name] = load_norms(name)
            except NormsError as exc:
                log.error(
                    "norms profile %r of workplace %s cannot be loaded (%s); the default "
                    "profile %r is used",
                    name,
                    workplace["id"],
                    exc,
                    self.default.name,
                )
                self._loaded[name] = self.default
        return self._loaded[name]


async def load_inputs(
    conn: AsyncConnection[Any],
    profiles: Profiles,
    workplaces: Sequence[Row],
    shifts: Mapping[int, Sequence[Shift]],
) -> dict[int, WorkplaceInputs]:
    """The sensors, buckets over ``shifts`` and factor entries of ``workplaces``, with one
    query per kind of data (and bucket width) for all of them."""
    ids = [int(w["id"]) for w in workplaces]
    sensors = await sensors_by_workplace(conn, ids)
    entries = await factor_entries_of(conn, ids)
    wanted: dict[Bucket, tuple[dict[int, str], datetime, datetime]] = {}
    buckets: dict[int, Bucket] = {}
    for w in workplaces:
        todo = shifts.get(int(w["id"]), ())
        if not todo:
            continue
        bucket = buckets[int(w["id"])] = bucket_for(todo)
        usable, lo, hi = wanted.get(bucket, ({}, todo[0].start, todo[-1].end))
        usable.update(
            (s.id, s.quantity)
            for s in sensors[int(w["id"])]
            if why_not_assessable(s, profiles.of(w)) is None
        )
        wanted[bucket] = (usable, min(lo, todo[0].start), max(hi, todo[-1].end))
    levels: dict[Bucket, dict[int, BucketLevels]] = {}
    for bucket, (usable, lo, hi) in wanted.items():
        async with translate_errors():
            levels[bucket] = await fetch_levels(conn, usable, lo, hi, bucket) if usable else {}
    found = {}
    for w in workplaces:
        wid = int(w["id"])
        if wid not in buckets:
            continue
        got = levels[buckets[wid]]
        found[wid] = WorkplaceInputs(
            w,
            tuple(sensors[wid]),
            tuple(_sensor(ref, got[ref.id]) for ref in sensors[wid] if ref.id in got),
            tuple(entries.get(wid, ())),
            buckets[wid],
        )
    return found


def _sensor(ref: SensorRef, r: BucketLevels) -> _Sensor:
    keep = np.isfinite(r.level) & (r.n > 0)
    return _Sensor(ref, r.starts_us[keep], r.n[keep], r.level[keep])


# ---------------------------------------------------------------------------------------------
# Reading what is stored: every surface goes through these.


def schedule_of(workplace: Row) -> Schedule:
    return Schedule.of_workplace(workplace)


async def stored_shift(
    conn: AsyncConnection[Any], norms: Norms, workplace: Row, s: Shift, late_s: float
) -> AssessedShift:
    """The stored assessment of shift ``s``, or the "nothing measured" answer."""
    row = await stored.shift_at(conn, int(workplace["id"]), s.start)
    if row is not None:
        return AssessedShift.of_row(row)
    sensors = (await sensors_by_workplace(conn, [int(workplace["id"])]))[int(workplace["id"])]
    return unassessed(workplace, s, sensors, norms, datetime.now(UTC), late_s)


async def stored_period(
    conn: AsyncConnection[Any],
    norms: Norms,
    workplace: Row,
    first: date,
    last: date,
    late_s: float,
) -> list[AssessedShift]:
    """Every started shift of local dates ``first..last``, oldest first: the stored ones, and
    the schedule's other (unmeasured) shifts as "nothing to assess"."""
    rows = await stored.shifts_of(conn, int(workplace["id"]), first, last)
    found = {r["shift_start"]: AssessedShift.of_row(r) for r in rows}
    schedule = schedule_of(workplace)
    now = datetime.now(UTC)
    sensors: list[SensorRef] | None = None
    result = []
    for s in shifts_between(schedule, first, last):
        if s.start > now:
            break
        got = found.get(s.start)
        if got is None:
            if sensors is None:
                sensors = (await sensors_by_workplace(conn, [int(workplace["id"])]))[
                    int(workplace["id"])
                ]
            got = unassessed(workplace, s, sensors, norms, now, late_s)
        result.append(got)
    return result


def worst(shifts: Sequence[AssessedShift]) -> AssessedShift | None:
    """The shift that sets В over a period (the same order as ``store.shift_assessments``'s
    ``WORST_ORDER``): sufficiently covered shifts first, then the highest В, the highest
    continuous В, the latest."""
    rated = [s for s in shifts if s.rated]
    if not rated:
        return None
    return max(
        rated,
        key=lambda s: (
            not s.insufficient_data,
            s.b or 0,
            s.b_continuous if s.b_continuous is not None else -math.inf,
            s.shift.start,
        ),
    )


async def worst_shifts(
    conn: AsyncConnection[Any],
    workplace_ids: Sequence[int],
    first: date,
    last: date,
    *,
    detail: bool = True,
) -> dict[int, AssessedShift]:
    """The shift that sets each workplace's В over ``first..last``, from the stored table
    (``detail=False``: headline figures only)."""
    rows = await stored.worst_shifts(conn, workplace_ids, first, last, detail=detail)
    return {w: AssessedShift.of_row(r) for w, r in rows.items()}
