"""Detectors about what has *not* happened, run on ``now`` (the engine clock) over every
subject, since a silent sensor sends no batch that could trigger them.

* ``device_offline``: the device's status topic says ``online: false``.
* ``sensor_silent``: ``now − last arrival > max(factor × interval, silence_min_s)`` while the
  device is not offline; the interval is learned from the cadence of the sensor's messages
  (sample times).
* ``sequence_gap``: sequence numbers missing among the device's last ``sequence_window``.
* ``calibration_overdue``: ``now`` past the registry's calibration date.
"""

from __future__ import annotations

import numpy as np

from analytics.alerts.detectors.stepper import Stepper
from analytics.alerts.params import AlertKind
from analytics.alerts.state import DetectorState
from analytics.alerts.subjects import DEVICE
from analytics.alerts.text import fmt, where
from analytics.types import BoolArray, IntArray


def clock_detectors(state: DetectorState, now: float, st: Stepper) -> None:
    """Every clock-driven detector over every registered subject, in a fixed order (the
    order of the events they return)."""
    n = state.n
    if n == 0:
        return
    slots = np.arange(n)
    is_dev = state.quantity[:n] == DEVICE
    device_offline(state, now, st, slots, is_dev)
    sensor_silent(state, now, st, slots, is_dev)
    sequence_gap(state, now, st, slots, is_dev)
    calibration_overdue(state, now, st, slots)


def device_offline(
    state: DetectorState, now: float, st: Stepper, slots: IntArray, is_dev: BoolArray
) -> None:
    """What the status topic of each device last said."""
    online = state.online[: state.n]
    offline = is_dev & (online == 0)
    back = is_dev & (online == 1)

    def msg(i: int) -> str:
        return f"device {state.subjects[i].device} reports that it is offline"

    st.step_clock(
        AlertKind.DEVICE_OFFLINE,
        slots,
        active=offline,
        clear=back,
        value=0.0,
        threshold=0.0,
        unit="",
        message=msg,
        among=is_dev,
    )


def sensor_silent(
    state: DetectorState, now: float, st: Stepper, slots: IntArray, is_dev: BoolArray
) -> None:
    """Silent sensors of devices that are not offline (an offline device says why it is quiet)."""
    a = state.alerts
    n = state.n
    dev = state.device_slot[:n]
    dev_offline = np.where(dev >= 0, state.online[np.maximum(dev, 0)] == 0, False)
    learned = (~is_dev) & (state.intervals_seen[:n] >= a.silence_min_messages)
    silent_s = now - state.last_arrival_now[:n]
    limit = np.maximum(a.silence_interval_factor * state.interval[:n], a.silence_min_s)
    with np.errstate(invalid="ignore"):
        silent = learned & ~dev_offline & (silent_s > limit)
        talking = learned & (silent_s <= limit)

    def msg(i: int) -> str:
        return (
            f"{where(state.subjects[i])} has sent nothing for {fmt(float(silent_s[i]))} s while "
            f"its device is live (usual interval {fmt(float(state.interval[i]))} s)"
        )

    st.step_clock(
        AlertKind.SENSOR_SILENT,
        slots,
        active=silent,
        clear=talking | dev_offline,
        value=silent_s,
        threshold=limit,
        unit="s",
        message=msg,
    )


def sequence_gap(
    state: DetectorState, now: float, st: Stepper, slots: IntArray, is_dev: BoolArray
) -> None:
    """Missing sequence numbers among each device's last window (see
    :mod:`analytics.alerts.admission`)."""
    n = state.n
    hi, lo = state.seq_hi[:n], state.seq_lo[:n]
    known = is_dev & (hi >= 0)
    missing = np.where(known, (hi - lo + 1) - state.seq_seen[:n].sum(axis=1), 0)
    gap = known & (missing > 0)

    def msg(i: int) -> str:
        return (
            f"{int(missing[i])} of the last {int(hi[i] - lo[i] + 1)} messages of device "
            f"{state.subjects[i].device} are missing (sequence numbers {int(lo[i])}-{int(hi[i])})"
        )

    st.step_clock(
        AlertKind.SEQUENCE_GAP,
        slots,
        active=gap,
        clear=~gap,
        value=missing.astype(float),
        threshold=0.0,
        unit="messages",
        message=msg,
        among=known,
    )


def calibration_overdue(state: DetectorState, now: float, st: Stepper, slots: IntArray) -> None:
    """``now`` past the calibration date the registry gave."""
    due = state.calibration_due[: state.n]
    with np.errstate(invalid="ignore"):
        overdue = np.isfinite(due) & (now >= due)
        fine = ~overdue
        overdue_days = np.where(np.isfinite(due), (now - due) / 86400.0, 0.0)

    def msg(i: int) -> str:
        days = max(float(overdue_days[i]), 0.0)
        return f"calibration of {where(state.subjects[i])} is overdue by {days:.0f} days"

    st.step_clock(
        AlertKind.CALIBRATION_OVERDUE,
        slots,
        active=overdue,
        clear=fine,
        value=overdue_days,
        threshold=0.0,
        unit="d",
        message=msg,
    )


__all__ = [
    "calibration_overdue",
    "clock_detectors",
    "device_offline",
    "sensor_silent",
    "sequence_gap",
]
