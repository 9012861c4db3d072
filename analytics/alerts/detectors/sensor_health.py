"""Sensor health from its own samples: a stuck sensor and samples it should not send.

* ``flatline``: a full window of measured bins whose values span nothing (a stuck sensor;
  exactly zero is excluded, being the normal reading of a gas sensor in clean air).
* ``out_of_range``: bad samples (non-finite, outside the instrument range) in the last window.
"""

# Messages are closures over loop variables on purpose: the lifecycle formats one at once,
# inside the same iteration, and only when a transition happens.
# ruff: noqa: B023

from __future__ import annotations

import numpy as np

from analytics.alerts.detectors.stepper import Stepper
from analytics.alerts.lifecycle import Observation
from analytics.alerts.params import AlertKind
from analytics.alerts.state import DetectorState
from analytics.alerts.text import duration, fmt, where
from analytics.types import FloatArray, IntArray


def flatline(state: DetectorState, touched: IntArray, t: FloatArray, st: Stepper) -> None:
    """Every bin of a full window measured, and the values span nothing."""
    a = state.alerts
    vmin, vmax, measured, _ = state.bins.window_extremes(touched, t, a.flatline_window_s)
    full = measured >= state.bins.bins_for(a.flatline_window_s)
    scale = np.maximum(np.abs(vmax), np.abs(vmin))
    with np.errstate(invalid="ignore"):
        flat = full & (vmax - vmin <= a.flatline_relative_tolerance * scale) & (scale > 0)
    not_flat = ~flat
    for i in st.interesting(AlertKind.FLATLINE, touched, flat):
        s = int(touched[i])
        spec = state.subjects[s]

        def msg() -> str:
            return (
                f"{where(spec)} has reported the same value {fmt(float(vmax[i]))} {spec.unit} "
                f"for {duration(a.flatline_window_s)}: check the sensor"
            )

        st.step(
            s,
            AlertKind.FLATLINE,
            Observation(
                bool(flat[i]),
                bool(not_flat[i]),
                float(t[i]),
                float(vmax[i]),
                a.flatline_window_s,
                a.kinds[AlertKind.FLATLINE].severity,
                spec.unit,
                "s",
                msg,
            ),
        )


def out_of_range(state: DetectorState, touched: IntArray, t: FloatArray, st: Stepper) -> None:
    """Out of range or non-finite samples in the last window."""
    a = state.alerts
    _, _, _, bad = state.bins.window_extremes(touched, t, a.out_of_range_window_s)
    active = bad > 0
    for i in st.interesting(AlertKind.OUT_OF_RANGE, touched, active):
        s = int(touched[i])
        spec = state.subjects[s]

        def msg() -> str:
            return (
                f"{where(spec)} sent {int(bad[i])} samples in the last "
                f"{duration(a.out_of_range_window_s)} that are outside its range or not numbers"
            )

        st.step(
            s,
            AlertKind.OUT_OF_RANGE,
            Observation(
                bool(active[i]),
                not bool(active[i]),
                float(t[i]),
                float(bad[i]),
                0.0,
                a.kinds[AlertKind.OUT_OF_RANGE].severity,
                "samples",
                "samples",
                msg,
            ),
        )


__all__ = ["flatline", "out_of_range"]
