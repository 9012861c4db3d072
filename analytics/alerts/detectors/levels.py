"""Instantaneous levels: the batch's extremes of each sensor against its ceilings and floors.

* ``ceiling``: the batch maximum above the ceiling (acute gas ``k × ПДК_max``, LCpeak, LAmax,
  % LEL).
* ``pre_exceedance``: the batch maximum at or above ``fraction × ПДК_max`` (or the first % LEL
  or methane alarm).
* ``floor`` / ``pre_floor``: the batch minimum below the second / at or below the first low
  alarm (oxygen deficiency in % vol); the oxygen enrichment alarm is a ``ceiling``.

Run on sample time, once per batch, so a peak between two evaluations is not lost.
"""

# Messages are closures over loop variables on purpose: the lifecycle formats one at once,
# inside the same iteration, and only when a transition happens.
# ruff: noqa: B023

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from analytics.alerts.detectors.stepper import Stepper, hysteresis_clear
from analytics.alerts.params import AlertKind
from analytics.alerts.state import DetectorState
from analytics.alerts.text import fmt, what, where
from analytics.types import BoolArray, FloatArray, IntArray


def ceilings(
    state: DetectorState,
    touched: IntArray,
    t: FloatArray,
    vmax: FloatArray,
    is_db: BoolArray,
    st: Stepper,
) -> None:
    """Ceiling and pre-exceedance: the batch maximum against the threshold."""
    a = state.alerts
    for kind, thr_all in (
        (AlertKind.CEILING, state.ceiling),
        (AlertKind.PRE_EXCEEDANCE, state.pre),
    ):
        thr = thr_all[touched]
        applies = np.isfinite(thr) & np.isfinite(vmax)
        over = vmax > thr if kind is AlertKind.CEILING else vmax >= thr
        active = applies & over
        clear = applies & (vmax < hysteresis_clear(thr, is_db, kind, a))
        if kind is AlertKind.CEILING:

            def msg(i: int) -> str:
                spec, th = state.subjects[int(touched[i])], state.thresholds[int(touched[i])]
                return (
                    f"{what(spec)} {fmt(float(vmax[i]))} {spec.unit} at {where(spec)} is above "
                    f"the {th.ceiling_label} of {fmt(float(thr[i]))} {spec.unit}"
                )
        else:

            def msg(i: int) -> str:
                spec, th = state.subjects[int(touched[i])], state.thresholds[int(touched[i])]
                value = float(vmax[i])
                pct = 100.0 * value / th.pre_of if th.pre_of else math.nan
                return (
                    f"{what(spec)} {fmt(value)} {spec.unit} at {where(spec)} has reached "
                    f"{pct:.0f} % of {th.pre_label} {fmt(th.pre_of)} {spec.unit}"
                )

        _step_level(st, kind, touched, applies, active, clear, t, vmax, thr, msg)


def floors(
    state: DetectorState, touched: IntArray, t: FloatArray, vmin: FloatArray, st: Stepper
) -> None:
    """Low alarms (oxygen deficiency): the batch minimum against the first and second floors;
    an alarm clears once the minimum is back above the floor plus its hysteresis."""
    a = state.alerts
    for kind, thr_all in ((AlertKind.FLOOR, state.floor), (AlertKind.PRE_FLOOR, state.pre_floor)):
        thr = thr_all[touched]
        applies = np.isfinite(thr) & np.isfinite(vmin)
        if not np.any(applies):
            continue
        active = applies & ((vmin < thr) if kind is AlertKind.FLOOR else (vmin <= thr))
        clear = applies & (vmin > thr * (1.0 + a.kinds[kind].hysteresis_fraction))

        def msg(i: int) -> str:
            spec, th = state.subjects[int(touched[i])], state.thresholds[int(touched[i])]
            label = th.floor_label if kind is AlertKind.FLOOR else th.pre_floor_label
            return (
                f"{what(spec)} {fmt(float(vmin[i]))} {spec.unit} at {where(spec)} is below the "
                f"{label} of {fmt(float(thr[i]))} {spec.unit}"
            )

        _step_level(st, kind, touched, applies, active, clear, t, vmin, thr, msg)


def _step_level(
    st: Stepper,
    kind: AlertKind,
    touched: IntArray,
    applies: BoolArray,
    active: BoolArray,
    clear: BoolArray,
    t: FloatArray,
    value: FloatArray,
    threshold: FloatArray,
    message: Callable[[int], str],
) -> None:
    """Step the cells of a level kind that may change: active now, or open before, where a
    threshold applies; value and threshold are in the subject's unit."""
    rows = st.interesting(kind, touched, active)
    st.step_cells(
        kind,
        rows[applies[rows]],
        touched,
        active=active,
        clear=clear,
        t=t,
        value=value,
        threshold=threshold,
        unit=None,
        message=message,
    )


__all__ = ["ceilings", "floors"]
