"""``projected_exposure``: where the shift's dose ends up if the current level goes on.

``S_end = S + r·(T_end − t)`` with the shift's running sum ``S``, the mean rate ``r`` of the
last ``rate_window_s`` and the shift end ``T_end``; turned into LEX,8h, TWA or A(8) and compared
with the action/limit levels; ``time_left_s`` is when the running sum reaches the crossed level
at rate ``r``. The shift is the one of the sensor's workplace schedule that holds the sample
(:mod:`analytics.alerts.shifts`); a sample between shifts adds to no shift, and once a shift
has ended its projection clears. :func:`running_projections` is also what the dashboard shows,
so the figure on screen and the alert are one number.
"""

# Messages are closures over loop variables on purpose: the lifecycle formats one at once,
# inside the same iteration, and only when a transition happens.
# ruff: noqa: B023

from __future__ import annotations

import numpy as np

from analytics.alerts.detectors.stepper import Stepper, hysteresis_clear
from analytics.alerts.lifecycle import Observation
from analytics.alerts.params import AlertKind
from analytics.alerts.projection import ShiftProjection, project_shift, time_to_level
from analytics.alerts.state import DetectorState
from analytics.alerts.subjects import PROJ_LEX, PROJ_NONE
from analytics.alerts.text import duration, fmt, where
from analytics.types import FloatArray, IntArray


def running_projections(
    state: DetectorState, slots: IntArray, t: FloatArray | None = None
) -> ShiftProjection:
    """So far and projected daily values of ``slots`` (sensors with a projection) at their
    latest samples ``t`` (default: the latest sample each has had): what the
    ``projected_exposure`` detector compares with its levels, and what the dashboard shows."""
    slots = np.asarray(slots, dtype=np.intp)
    tt = state.last_time[slots] if t is None else np.asarray(t, dtype=np.float64)
    wsum, w = state.bins.window_sums(slots, tt, state.alerts.projection_rate_window_s)
    return project_shift(
        state.projection[slots],
        state.proj_k[slots],
        state.shift_sum[slots],
        wsum,
        w,
        tt,
        state.shift_start[slots],
        state.shift_end[slots],
    )


def projected_exposure(state: DetectorState, touched: IntArray, t: FloatArray, st: Stepper) -> None:
    """Project the shift of each touched sensor that has a daily limit and step the cells."""
    a = state.alerts
    kind = state.projection[touched]
    has = kind != PROJ_NONE
    if not np.any(has):
        return
    idx, tt, kk = touched[has], t[has], kind[has]
    p = running_projections(state, idx, tt)
    metric, rate, end = p.projected, p.rate, state.shift_end[idx]
    measured = p.inside & (state.shift_w[idx] >= a.projection_min_measured_s)
    lowest = np.array([state.thresholds[int(s)].projection_levels[0] for s in idx])
    is_db = kk == PROJ_LEX
    active = measured & (metric >= lowest)
    clear = p.ended | (
        measured & (metric < hysteresis_clear(lowest, is_db, AlertKind.PROJECTED_EXPOSURE, a))
    )
    for i in st.interesting(AlertKind.PROJECTED_EXPOSURE, idx, active):
        s = int(idx[i])
        spec, th = state.subjects[s], state.thresholds[s]
        value = float(metric[i])
        crossed = [j for j, lv in enumerate(th.projection_levels) if value >= lv]
        j = crossed[-1] if crossed else 0
        level = th.projection_levels[j]
        severity = th.projection_severities[j]
        time_left = time_to_level(
            int(kk[i]),
            level,
            float(state.proj_k[s]),
            float(state.shift_sum[s]),
            float(rate[i]),
            value,
        )
        at_s = float(tt[i])
        shift_end = float(end[i])

        def msg() -> str:
            clock = state.time_text
            when = (
                "has already been reached"
                if time_left == 0.0
                else f"is reached in {duration(time_left)}, at "
                f"{clock(at_s + time_left, spec.timezone)}, at the current level"
                if time_left is not None
                else "is not reached at the current level"
            )
            return (
                f"at the current level {where(spec)} ends the shift at "
                f"{clock(shift_end, spec.timezone)} with {th.projection_metric} "
                f"{fmt(value)} {th.projection_unit}, over {fmt(level)} {th.projection_unit}; "
                f"{fmt(level)} {th.projection_unit} {when}"
            )

        st.step(
            s,
            AlertKind.PROJECTED_EXPOSURE,
            Observation(
                bool(active[i]),
                bool(clear[i]),
                float(tt[i]),
                value,
                level,
                severity,
                th.projection_unit,
                th.projection_unit,
                msg,
                time_left,
            ),
        )


__all__ = ["projected_exposure", "running_projections"]
