"""``short_term``: the time-weighted mean over the last 15 min (bins) above ПДК_max, once the
window is measured to ``min_window_fraction`` (a few samples are not a 15-minute mean).

Run on sample time, once per batch.
"""

# Messages are closures over loop variables on purpose: the lifecycle formats one at once,
# inside the same iteration, and only when a transition happens.
# ruff: noqa: B023

from __future__ import annotations

import numpy as np

from analytics.alerts.detectors.stepper import Stepper, hysteresis_clear
from analytics.alerts.lifecycle import Observation
from analytics.alerts.params import AlertKind
from analytics.alerts.state import DetectorState
from analytics.alerts.text import fmt, what, where
from analytics.types import BoolArray, FloatArray, IntArray


def short_term_mean(
    state: DetectorState, touched: IntArray, t: FloatArray, is_db: BoolArray, st: Stepper
) -> None:
    """The rolling 15-min mean of each touched sensor against its ПДК_max."""
    a = state.alerts
    st_limit = state.short_term[touched]
    has = np.isfinite(st_limit)
    if not np.any(has):
        return
    idx = touched[has]
    wsum, w = state.bins.window_sums(idx, t[has], a.short_term_window_s)
    covered = w >= a.short_term_min_fraction * a.short_term_window_s
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(w > 0, wsum / np.where(w > 0, w, 1.0), np.nan)
    lim = st_limit[has]
    active = covered & (mean > lim)
    clear = covered & (mean < hysteresis_clear(lim, is_db[has], AlertKind.SHORT_TERM, a))
    for i in st.interesting(AlertKind.SHORT_TERM, idx, active):
        s = int(idx[i])
        spec = state.subjects[s]

        def msg() -> str:
            return (
                f"15-minute mean {what(spec)} {fmt(float(mean[i]))} {spec.unit} at "
                f"{where(spec)} is above ПДК_max {fmt(float(lim[i]))} {spec.unit}"
            )

        st.step(
            s,
            AlertKind.SHORT_TERM,
            Observation(
                bool(active[i]),
                bool(clear[i]),
                float(t[has][i]),
                float(mean[i]),
                float(lim[i]),
                a.kinds[AlertKind.SHORT_TERM].severity,
                spec.unit,
                spec.unit,
                msg,
            ),
        )


__all__ = ["short_term_mean"]
