"""Admission of a device's message by its sequence number: de-duplication and gap counting.

Each device keeps a ring of the last ``sequence_window`` numbers it has seen; the
``sequence_gap`` detector (:mod:`analytics.alerts.detectors.clock`) counts the holes in it.
The shell asks before it adds a message's samples, so a redelivered message is not counted
twice.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from analytics.alerts.state import DetectorState


def admit(state: DetectorState, device_slot: int, seq: int) -> Literal["new", "duplicate", "old"]:
    """De-duplicate by (device, seq) and remember the sequence number for gap detection.

    ``old``: older than the device's window of remembered numbers (neither stored twice nor
    counted as missing). A jump back by more than four windows is taken as a device whose
    counter restarted, and starts the window afresh.
    """
    window = state.seq_seen.shape[1]
    hi = int(state.seq_hi[device_slot])
    ring = state.seq_seen[device_slot]
    if hi < 0 or seq < hi - 4 * window:
        ring[:] = False
        ring[seq % window] = True
        state.seq_hi[device_slot] = seq
        state.seq_lo[device_slot] = seq
        return "new"
    if seq > hi:
        if seq - hi >= window:
            ring[:] = False
        else:
            skipped = np.arange(hi + 1, seq) % window
            ring[skipped] = False
        ring[seq % window] = True
        state.seq_hi[device_slot] = seq
        state.seq_lo[device_slot] = max(int(state.seq_lo[device_slot]), seq - window + 1)
        return "new"
    if seq <= hi - window:
        return "old"
    if ring[seq % window]:
        return "duplicate"
    ring[seq % window] = True
    state.seq_lo[device_slot] = min(int(state.seq_lo[device_slot]), seq)
    return "new"


__all__ = ["admit"]
