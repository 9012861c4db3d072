"""``trend``: a sustained rise that reaches a limit within the horizon, raised before it does.

Theil–Sen slope of segment means over ``trend.window_s`` (robust to a single spike); raised
when most pairwise slopes rise and ``level + slope·horizon`` reaches the limit while the level
is still below it (above it, the level detectors speak).
"""

# Messages are closures over loop variables on purpose: the lifecycle formats one at once,
# inside the same iteration, and only when a transition happens.
# ruff: noqa: B023

from __future__ import annotations

import math

import numpy as np

from analytics.alerts.detectors.stepper import Stepper
from analytics.alerts.lifecycle import Observation
from analytics.alerts.params import AlertKind
from analytics.alerts.state import DetectorState
from analytics.alerts.text import duration, fmt, what, where
from analytics.alerts.window import theil_sen_slope
from analytics.types import FloatArray, IntArray


def trend(state: DetectorState, touched: IntArray, t: FloatArray, st: Stepper) -> None:
    """The trend of each touched sensor that has a limit to rise towards."""
    a = state.alerts
    limit = state.trend_limit[touched]
    has = np.isfinite(limit)
    if not np.any(has):
        return
    idx, tt, lim = touched[has], t[has], limit[has]
    means = state.bins.segment_means(idx, tt, a.trend_window_s, a.trend_segments)
    seg_s = a.trend_window_s / a.trend_segments
    slope, rising, points = theil_sen_slope(means, seg_s)
    with np.errstate(all="ignore"):
        latest = means[:, -1]
        for j in range(means.shape[1] - 2, -1, -1):
            latest = np.where(np.isnan(latest), means[:, j], latest)
        enough = points >= a.trend_min_segments_fraction * a.trend_segments
        ahead = latest + slope * a.trend_horizon_s
        active = (
            enough
            & (slope > 0)
            & (rising >= a.trend_min_rising_fraction)
            & (latest < lim)
            & (ahead >= lim)
        )
        rule = a.kinds[AlertKind.TREND]
        clear = enough & (
            ~(slope > 0) | (ahead < lim * (1 - rule.hysteresis_fraction)) | (latest >= lim)
        )
    for i in st.interesting(AlertKind.TREND, idx, active):
        s = int(idx[i])
        spec, th = state.subjects[s], state.thresholds[s]
        sl = float(slope[i])
        left = (float(lim[i]) - float(latest[i])) / sl if sl > 0 else math.nan

        def msg() -> str:
            return (
                f"{what(spec)} at {where(spec)} is rising {fmt(sl * 60)} {spec.unit} per minute "
                f"and reaches {th.trend_label} {fmt(float(lim[i]))} {spec.unit} in about "
                f"{duration(max(left, 0.0)) if math.isfinite(left) else 'an unknown time'}"
            )

        st.step(
            s,
            AlertKind.TREND,
            Observation(
                bool(active[i]),
                bool(clear[i]),
                float(tt[i]),
                float(latest[i]),
                float(lim[i]),
                rule.severity,
                spec.unit,
                spec.unit,
                msg,
                left if math.isfinite(left) and left > 0 else None,
            ),
        )


__all__ = ["trend"]
