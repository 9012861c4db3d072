"""Exposure of a workplace over many shifts, from the rollups of ``store.rollups``.

Per shift and sensor, every rollup bucket becomes samples holding the bucket's representative
statistic (``Rollup.level``: energy-mean level for LAeq, r.m.s. for vibration, mean for
concentrations) for exactly the bucket's width, and ``analytics.assess_workplace`` does every
formula as it does for raw readings. The rollups are sufficient statistics, so over fully
measured buckets LEX,8h, A(8) and TWA are the exact time-weighted figures of a regularly sampled
sensor. What the bucket resolution costs, and how it is reported:

* a partly measured bucket counts as measured at its average (raw readings extrapolate the
  unmeasured part of a shift at the shift's average instead);
* coverage is counted from sample counts, taking the fullest bucket of the sensor in the range
  as fully measured; it decides ``insufficient_data`` here;
* 15-min maxima of concentrations are maxima of bucket means: exact with 1-min buckets, an
  underestimate with 1-h buckets, where acute-gas classes rest on the TWA in practice.

Hour buckets are used when every shift starts on a whole UTC hour and lasts whole hours (the
default 08:00 shift in a whole-hour zone), minute buckets otherwise. A shift's result is
memoised under a digest of exactly what went into it (rows, each sensor's fullest bucket in the
workplace's period, entered classes, norms version), so late readings or a new factor class
recompute it and nothing else does.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import numpy as np
from psycopg import AsyncConnection

from analytics import Norms, SensorSeries, WorkplaceAssessment, assess_workplace
from analytics.screen import BucketSeries, screen_shifts
from api.exposure import (
    SensorRef,
    ShiftExposure,
    assessable,
    schedule_of,
    sensors_by_workplace,
    worst,
)
from application.schedule import Schedule, Shift, shifts_between
from store.assessments import factor_entries_of, in_force
from store.catalog import Row, translate_errors
from store.rollups import BUCKET_US, Bucket, BucketLevels, fetch_levels

US_PER_S = 1_000_000
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


_V = TypeVar("_V")


class ShiftMemo:
    """Bounded least-recently-used store of shift results keyed by the digest of their inputs,
    and of each workplace's worst shift keyed by the digests of all its shifts."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[bytes, ShiftExposure] = OrderedDict()
        self._worst: OrderedDict[bytes, ShiftExposure | None] = OrderedDict()

    def get(self, key: bytes) -> ShiftExposure | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: bytes, value: ShiftExposure) -> None:
        _bounded_put(self._items, key, value, self._size)

    def get_worst(self, key: bytes) -> tuple[bool, ShiftExposure | None]:
        """``(True, worst)`` if known (worst None: no rated shift), else ``(False, None)``."""
        if key not in self._worst:
            return False, None
        self._worst.move_to_end(key)
        return True, self._worst[key]

    def put_worst(self, key: bytes, value: ShiftExposure | None) -> None:
        _bounded_put(self._worst, key, value, self._size)


def _bounded_put(items: OrderedDict[bytes, _V], key: bytes, value: _V, size: int) -> None:
    if size == 0:
        return
    items[key] = value
    items.move_to_end(key)
    while len(items) > size:
        items.popitem(last=False)


def bucket_for(schedule: Schedule, shifts: Sequence[Shift]) -> Bucket:
    hour_s = 3600
    aligned = schedule.duration_s % hour_s == 0 and all(
        int(s.start.timestamp()) % hour_s == 0 for s in shifts
    )
    return "1 hour" if aligned else "1 min"


@dataclass(frozen=True, slots=True)
class _Part:
    sensor: SensorRef
    time_s: FloatArray
    values: FloatArray
    coverage: float
    samples: int


@dataclass(frozen=True, slots=True)
class _SensorBuckets:
    """One sensor's buckets over the whole range, its level computed once, and per shift the
    slice of its buckets (``bounds[k]`` = start and end index for shift ``k``)."""

    sensor: SensorRef
    starts_us: np.ndarray[Any, np.dtype[np.int64]]
    n: np.ndarray[Any, np.dtype[np.int64]]
    level: FloatArray
    full_n: float
    bounds: np.ndarray[Any, np.dtype[np.intp]]
    fingerprint: np.ndarray[Any, np.dtype[np.int64]]  # rows (start, n, level bits), contiguous


def _buckets(
    sensors: Sequence[SensorRef], levels: Mapping[int, BucketLevels], edges_us: np.ndarray[Any, Any]
) -> list[_SensorBuckets]:
    """Each sensor's buckets in the workplace's own range (first shift start to last shift end):
    ``levels`` may span a wider range fetched for several workplaces at once, and the fullest
    bucket, which coverage is counted against, must be the same whichever view asked."""
    found = []
    lo_us, hi_us = int(edges_us[0]), int(edges_us[-1])
    for sensor in sensors:
        r = levels.get(sensor.id)
        if r is None or len(r) == 0:
            continue
        i, j = np.searchsorted(r.starts_us, (lo_us, hi_us), side="left")
        level, starts, n = r.level[i:j], r.starts_us[i:j], r.n[i:j]
        keep = np.isfinite(level) & (n > 0)
        if not keep.any():
            continue
        starts, n, level = starts[keep], n[keep], level[keep]
        bounds = np.searchsorted(starts, edges_us, side="left").reshape(-1, 2)
        fingerprint = np.ascontiguousarray(np.column_stack((starts, n, level.view(np.int64))))
        found.append(_SensorBuckets(sensor, starts, n, level, float(n.max()), bounds, fingerprint))
    return found


def _part(b: _SensorBuckets, k: int, s: Shift, width_us: int) -> _Part:
    i, j = b.bounds[k]
    lo_us = int(s.start.timestamp() * US_PER_S)
    span_us = (s.end - s.start).total_seconds() * US_PER_S
    n = b.n[i:j]
    # Two samples per bucket, at its start and its middle: every interval is then half a
    # bucket, so the hold rule gives each bucket exactly its width, the last one included, and
    # a missing bucket is a gap.
    offset_s = (b.starts_us[i:j] - lo_us) / US_PER_S
    time_s = np.empty(2 * offset_s.size)
    time_s[0::2] = offset_s
    time_s[1::2] = offset_s + width_us / US_PER_S / 2.0
    covered = float(np.minimum(n / b.full_n, 1.0).sum()) * width_us / span_us
    return _Part(b.sensor, time_s, np.repeat(b.level[i:j], 2), covered, int(n.sum()))


async def history(
    conn: AsyncConnection[Any],
    norms: Norms,
    workplace: Row,
    first: date,
    last: date,
    memo: ShiftMemo,
) -> list[ShiftExposure]:
    """Every shift of ``first..last`` (local dates) from the rollups, oldest first."""
    return (await history_of(conn, norms, [workplace], first, last, memo))[workplace["id"]]


async def history_of(
    conn: AsyncConnection[Any],
    norms: Norms,
    workplaces: Sequence[Row],
    first: date,
    last: date,
    memo: ShiftMemo,
) -> dict[int, list[ShiftExposure]]:
    """:func:`history` of several workplaces, with one query per kind of data for all."""
    return {
        wid: [exact.shift(k) for k in range(len(exact.shifts))]
        for wid, exact in (await _load(conn, norms, workplaces, first, last, memo)).items()
    }


async def worst_of(
    conn: AsyncConnection[Any],
    norms: Norms,
    workplaces: Sequence[Row],
    first: date,
    last: date,
    memo: ShiftMemo,
) -> dict[int, ShiftExposure | None]:
    """``worst(history(...))`` of each workplace, assessing only the shifts that can be it.

    ``analytics.screen_shifts`` bounds В of every shift from the same bucket levels, and only
    the shifts the bounds cannot rule out (:func:`_candidates`) go through the exact per-shift
    path; the answer is that path's, shift for shift.
    """
    return {
        wid: _worst_of(exact)
        for wid, exact in (await _load(conn, norms, workplaces, first, last, memo)).items()
    }


async def _load(
    conn: AsyncConnection[Any],
    norms: Norms,
    workplaces: Sequence[Row],
    first: date,
    last: date,
    memo: ShiftMemo,
) -> dict[int, _Exact]:
    """Each workplace's shifts, sensors, buckets and factor entries, with one query per kind of
    data for all of them (one rollup query per bucket width and statistic)."""
    ids = [w["id"] for w in workplaces]
    sensors = await sensors_by_workplace(conn, ids)
    entries = await factor_entries_of(conn, ids)
    plans: dict[int, tuple[list[Shift], Bucket, list[SensorRef]]] = {}
    wanted: dict[Bucket, tuple[set[int], datetime, datetime]] = {}
    for w in workplaces:
        schedule = schedule_of(w)
        shifts = shifts_between(schedule, first, last)
        bucket = bucket_for(schedule, shifts)
        usable = [s for s in sensors[w["id"]] if assessable(s, norms)]
        plans[w["id"]] = (shifts, bucket, usable)
        got = wanted.get(bucket)
        lo, hi = shifts[0].start, shifts[-1].end
        if got is None:
            wanted[bucket] = ({s.id for s in usable}, lo, hi)
        else:
            wanted[bucket] = (got[0] | {s.id for s in usable}, min(got[1], lo), max(got[2], hi))
    quantities = {s.id: s.quantity for plan in plans.values() for s in plan[2]}
    rollups: dict[Bucket, dict[int, BucketLevels]] = {}
    for bucket, (sensor_ids, lo, hi) in wanted.items():
        async with translate_errors():
            rollups[bucket] = await fetch_levels(
                conn, {i: quantities[i] for i in sorted(sensor_ids)}, lo, hi, bucket
            )
    return {
        wid: _Exact(norms, wid, shifts, bucket, usable, rollups[bucket], entries[wid], memo)
        for wid, (shifts, bucket, usable) in plans.items()
    }


class _Exact:
    """The exact per-shift path of one workplace: ``assess_workplace`` on the shift's buckets,
    through the memo."""

    def __init__(
        self,
        norms: Norms,
        workplace_id: int,
        shifts: Sequence[Shift],
        bucket: Bucket,
        sensors: Sequence[SensorRef],
        rollups: Mapping[int, BucketLevels],
        entries: Sequence[Row],
        memo: ShiftMemo,
    ) -> None:
        self.norms = norms
        self.workplace_id = workplace_id
        self.shifts = shifts
        self.bucket = bucket
        self.memo = memo
        # The factor classes entered by assessors that are in force on each shift's day.
        self.entered = [in_force(entries, "factor", s.day) for s in shifts]
        self.classes = [
            {name: row["working_class"] for name, row in e.items()} for e in self.entered
        ]
        self.width_us = BUCKET_US[bucket]
        self.edges_us = np.array(
            [int(t.timestamp() * US_PER_S) for s in shifts for t in (s.start, s.end)],
            dtype=np.int64,
        )
        self.buckets = _buckets(sensors, rollups, self.edges_us)
        self.ids = {s.code: s.id for s in sensors}

    def key(self, k: int) -> bytes:
        """Digest of everything shift ``k``'s result depends on."""
        norms, s, classes = self.norms, self.shifts[k], self.classes[k]
        digest = hashlib.blake2b(digest_size=20)
        key_text = (self.workplace_id, s.start.isoformat(), s.duration_s, norms.name,
                    norms.version, sorted(classes.items()), self.bucket)  # fmt: skip
        digest.update(repr(key_text).encode())
        for b in self.buckets:
            i, j = b.bounds[k]
            if i < j:
                digest.update(b.sensor.code.encode())
                # Coverage is counted against the fullest bucket of the whole range, so a late
                # reading in another shift can change this shift's result.
                digest.update(np.float64(b.full_n).tobytes())
                digest.update(b.fingerprint[i:j].tobytes())
        return digest.digest()

    def shift(self, k: int, key: bytes | None = None) -> ShiftExposure:
        key = self.key(k) if key is None else key
        cached = self.memo.get(key)
        if cached is None:
            s = self.shifts[k]
            present = [b for b in self.buckets if b.bounds[k][0] < b.bounds[k][1]]
            parts = [_part(b, k, s, self.width_us) for b in present]
            cached = _assess(
                self.norms, s, parts, self.classes[k], self.entered[k], self.ids, self.bucket
            )
            self.memo.put(key, cached)
        return cached


# Relative slack on the screened coverage: it is summed in another order than ``_part`` does.
_COVERAGE_RTOL = 1e-9


def _worst_of(exact: _Exact) -> ShiftExposure | None:
    n = len(exact.shifts)
    # A workplace whose shifts' inputs are all unchanged since the last request has the same
    # worst shift: the digests are cheap next to screening and the exact path.
    keys = [exact.key(k) for k in range(n)]
    whole = hashlib.blake2b(b"".join(keys), digest_size=20, person=b"qorgau-worst").digest()
    known, answer = exact.memo.get_worst(whole)
    if known:
        return answer
    answer = _screened_worst(exact, keys)
    exact.memo.put_worst(whole, answer)
    return answer


def _screened_worst(exact: _Exact, keys: Sequence[bytes]) -> ShiftExposure | None:
    norms, shifts = exact.norms, exact.shifts
    n = len(shifts)
    starts_us, ends_us = exact.edges_us[0::2], exact.edges_us[1::2]
    durations = {s.duration_s for s in shifts}
    # Shifts whose buckets all lie wholly inside them (so each holds its full width) and whose
    # coverage is surely above / surely below the minimum.
    inside = np.ones(n, dtype=bool)
    short_surely = np.zeros(n, dtype=bool)
    short_maybe = np.zeros(n, dtype=bool)
    series: list[BucketSeries] = []
    for b in exact.buckets:
        i, j = b.bounds[:, 0], b.bounds[:, 1]
        lengths = np.maximum(j - i, 0)
        total = int(lengths.sum())
        shift_of = np.repeat(np.arange(n, dtype=np.intp), lengths)
        # Index of every (shift, bucket) pair, shifts may share buckets if they overlap.
        first_of = np.repeat(np.cumsum(lengths) - lengths - i, lengths)
        idx = np.arange(total, dtype=np.intp) - first_of
        ends = b.starts_us[idx] + exact.width_us
        inside &= np.bincount(shift_of, weights=ends > ends_us[shift_of], minlength=n) == 0
        share = np.minimum(b.n[idx] / b.full_n, 1.0)
        covered = (
            np.bincount(shift_of, weights=share, minlength=n)
            * exact.width_us / (ends_us - starts_us)
        )  # fmt: skip
        present = lengths > 0
        minimum = norms.sampling.min_coverage
        short_surely |= present & (covered * (1.0 + _COVERAGE_RTOL) < minimum)
        short_maybe |= present & (covered * (1.0 - _COVERAGE_RTOL) < minimum)
        s = b.sensor
        series.append(BucketSeries(s.code, s.quantity, s.unit, s.substance, shift_of, b.level[idx]))
    if len(durations) != 1:
        return worst([exact.shift(k, keys[k]) for k in range(n)])
    bounds = screen_shifts(
        series,
        norms,
        n_shifts=n,
        shift_duration_s=float(durations.pop()),
        bucket_s=exact.width_us / US_PER_S,
        entered=exact.classes,
    )
    rated = bounds.rated & inside
    unrated = bounds.unrated & inside
    sure_full = rated & ~short_maybe
    maybe_full = ~short_surely
    low = [(float(a), float(c)) if r else None
           for a, c, r in zip(bounds.b_low, bounds.c_low, rated, strict=True)]  # fmt: skip
    high = [
        (float(a), float(c)) if ins else (math.inf, math.inf)
        for a, c, ins in zip(bounds.b_high, bounds.c_high, inside, strict=True)
    ]
    chosen = _candidates(low, high, ~unrated, sure_full, maybe_full)
    return worst([exact.shift(k, keys[k]) for k in chosen])


def _candidates(
    low: Sequence[tuple[float, float] | None],
    high: Sequence[tuple[float, float]],
    maybe_rated: np.ndarray[Any, np.dtype[np.bool_]],
    sure_full: np.ndarray[Any, np.dtype[np.bool_]],
    maybe_full: np.ndarray[Any, np.dtype[np.bool_]],
) -> list[int]:
    """Shifts (oldest first) among which ``worst`` of all shifts surely lies.

    ``worst`` takes the highest (В, continuous В) among the sufficiently covered rated shifts
    if there is one (pool = those), else among all rated shifts (pool = those); on equal keys
    the latest. Let W be its answer. A shift s is dropped only when a shift t that is surely in
    the pool has ``low(t) > high(s)``, or ``low(t) ≥ high(s)`` and t is later than s. W is never
    dropped: key(t) ≤ key(W) for every t of the pool, and a t of equal key is not later than W
    (W is the latest of its ties); ``low(t) > high(W)`` or a later t with ``low(t) ≥ high(W)``
    would contradict that. ``worst`` over the kept shifts is then W again: W is in them, they
    are a subset of all shifts, and in the first case W itself is sufficiently covered, so the
    kept shifts have a pool of the same kind.
    """
    n = len(high)
    if sure_full.any():
        pool, eligible = sure_full, maybe_rated & maybe_full
    elif not (maybe_rated & maybe_full).any():
        pool, eligible = np.array([lo is not None for lo in low]), maybe_rated
    else:
        # Neither kind of pool is certain: let the exact path decide between all of them.
        return [k for k in range(n) if maybe_rated[k]]
    best: tuple[float, float] | None = None
    later: list[tuple[float, float] | None] = [None] * n
    for k in range(n - 1, -1, -1):
        later[k] = best
        lo = low[k]
        if pool[k] and lo is not None and (best is None or lo > best):
            best = lo
    kept = []
    for k in range(n):
        if not eligible[k]:
            continue
        after = later[k]
        if best is not None and best > high[k]:
            continue
        if after is not None and after >= high[k]:
            continue
        kept.append(k)
    return kept


def _assess(
    norms: Norms,
    s: Shift,
    parts: Sequence[_Part],
    classes: Mapping[str, str],
    entered: Mapping[str, Row],
    ids: Mapping[str, int],
    bucket: str,
) -> ShiftExposure:
    samples = {p.sensor.code: p.samples for p in parts}
    coverage = {p.sensor.code: p.coverage for p in parts}
    if not parts and not classes:
        return ShiftExposure(
            s, None, samples, ids, (), entered,
            "no readings and no entered factor classes: nothing to assess",
            coverage=coverage, insufficient=(), source=f"rollups ({bucket})",
        )  # fmt: skip
    assessment: WorkplaceAssessment = assess_workplace(
        [
            SensorSeries(
                p.sensor.code,
                p.sensor.quantity,
                p.sensor.unit,
                p.sensor.substance,
                p.time_s,
                p.values,
            )
            for p in parts
        ],
        norms,
        shift_duration_s=s.duration_s,
        max_gap_s=BUCKET_US[bucket] / US_PER_S,
        entered_factors=dict(classes),
    )
    short = tuple(code for code, c in coverage.items() if c < norms.sampling.min_coverage)
    return ShiftExposure(
        s, assessment, samples, ids, (), entered, "",
        coverage=coverage, insufficient=short, source=f"rollups ({bucket})",
    )  # fmt: skip
