"""Detector statistics rebuilt from stored readings: the alert engine's windows and shift
running sums of some sensors, as at their latest reading.

The alert engine does this when it starts (its state then continues from the stream), and the
dashboard does it for the running shift of one workplace, so its "so far" and "projected"
figures come from the same sums, through the same projection
(:func:`analytics.alerts.running_projections`), as the ``projected_exposure`` alert.

The windows come from raw readings in the engine's bins, the older part of the shift from the
minute rollups (``store.alerts``). Each sample weighs the sensor's sampling interval, learned
from the recent bins as the live engine learns it from the messages' declared periods.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
from psycopg import AsyncConnection

from analytics.alerts import DetectorState, seed, shift_at
from store.alerts import BinStats, latest_reading_times, recent_bins, shift_sums

#: sensor id → (the state holding it, its slot there)
Slots = Mapping[int, tuple[DetectorState, int]]


async def warm_detectors(
    conn: AsyncConnection[Any],
    slots: Slots,
    now: float,
    *,
    longest_shift_s: float,
    only_these: bool = True,
) -> tuple[int, int]:
    """Seed ``slots`` from stored readings up to ``now`` (epoch seconds); a reading older than
    ``longest_shift_s`` is in no shift under way. ``only_these=False`` lets the store scan
    every sensor's latest reading (cheaper for an engine that holds them all). Returns the
    numbers of window bins and shift sums seeded."""
    if not slots:
        return 0, 0
    states = {id(state): state for state, _ in slots.values()}.values()
    longest = max(s.bins.n_bins * s.bins.bin_s for s in states)
    bin_s = next(iter(states)).bins.bin_s
    horizon = datetime.fromtimestamp(now - longest_shift_s, UTC)
    ids = list(slots) if only_these else None
    # Windows are in sample time: rebuild the ones that end at each sensor's last reading.
    last = {k: v for k, v in (await latest_reading_times(conn, horizon, ids)).items() if k in slots}
    since: dict[int, datetime] = {}
    spans: dict[int, tuple[datetime, datetime]] = {}
    for sensor_id, at in last.items():
        state, slot = slots[sensor_id]
        # Rollups keep no sample times: the projection runs at the latest reading's.
        state.last_time[slot] = np.fmax(state.last_time[slot], at.timestamp())
        begin = math.floor((at.timestamp() - longest) / bin_s) * bin_s
        since[sensor_id] = datetime.fromtimestamp(begin, UTC)
        start = float(shift_at(state, np.array([slot]), np.array([at.timestamp()]))[0][0])
        if start < begin:  # NaN (no shift holds the reading): nothing to add up
            spans[sensor_id] = (datetime.fromtimestamp(start, UTC), since[sensor_id])
    bins = await recent_bins(conn, since, bin_s)
    shifts = await shift_sums(conn, spans)
    interval: dict[int, list[float]] = {}
    for b in bins:
        if b.count > 1 and b.span_s > 0:
            interval.setdefault(b.sensor_id, []).append(b.span_s / (b.count - 1))
    _seed(slots, bins, interval, windows=True)
    _seed(slots, shifts, interval, windows=False)
    return len(bins), len(shifts)


def _seed(
    slots: Slots, rows: Iterable[BinStats], interval: Mapping[int, list[float]], *, windows: bool
) -> None:
    grouped: dict[int, list[BinStats]] = {}
    for b in rows:
        if b.sensor_id in slots:
            grouped.setdefault(id(slots[b.sensor_id][0]), []).append(b)
    for group in grouped.values():
        state = slots[group[0].sensor_id][0]
        fallback = state.norms.sampling.fallback_interval_s
        dur = np.array(
            [
                float(np.median(interval[b.sensor_id])) if b.sensor_id in interval else fallback
                for b in group
            ]
        )
        slot_of = np.array([slots[b.sensor_id][1] for b in group], dtype=np.intp)
        sums = np.array(
            [
                (b.sum_value, b.sum_power, b.sum_square)[int(state.linear[s])]
                for b, s in zip(group, slot_of, strict=True)
            ]
        )
        count = np.array([b.count for b in group], dtype=np.float64)
        seed(
            state,
            slot_of,
            np.array([b.start_s for b in group]),
            dur * sums,
            dur * count,
            np.array([b.min_value for b in group]),
            np.array([b.max_value for b in group]),
            windows=windows,
        )
