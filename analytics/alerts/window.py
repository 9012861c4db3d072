"""Time-binned additive sufficient statistics per sensor, and the window queries on them.

Each sensor has a ring of ``n_bins`` bins of ``bin_s`` seconds. A sample at time ``t`` belongs to
bin ``b = ⌊t / bin_s⌋``, stored at ring position ``b mod n_bins`` with its ``epoch`` ``b``. A bin
holds ``Σ w·x`` (``x`` the sample in the quantity's linear space: mg/m³, 10^(L/10), a²), ``Σ w``
(measured seconds), the minimum and maximum raw value, and the number of bad samples. All are
sums, minima or maxima, so the order in which samples arrive does not change them; a sample
older than its ring position's current epoch arrived too late for the windows and is left out.

A window ``(t_end − span, t_end]`` is the set of bins with epoch in ``(cur − n, cur]``,
``cur = ⌊t_end / bin_s⌋``, ``n = ⌈span / bin_s⌉``: windows are aligned to bins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analytics.types import BoolArray, FloatArray, IntArray

NO_EPOCH = np.iinfo(np.int64).min // 2


@dataclass(slots=True)
class Bins:
    """The rings of all sensors: arrays of shape ``(sensors, n_bins)``."""

    bin_s: float
    epoch: IntArray
    wsum: FloatArray  # Σ w·x (linear space)
    w: FloatArray  # Σ w, seconds
    vmin: FloatArray
    vmax: FloatArray
    bad: FloatArray  # bad samples (non-finite or out of the instrument range)

    @classmethod
    def empty(cls, sensors: int, n_bins: int, bin_s: float) -> Bins:
        shape = (sensors, n_bins)
        return cls(
            bin_s=bin_s,
            epoch=np.full(shape, NO_EPOCH, dtype=np.int64),
            wsum=np.zeros(shape),
            w=np.zeros(shape),
            vmin=np.full(shape, np.inf),
            vmax=np.full(shape, -np.inf),
            bad=np.zeros(shape),
        )

    @property
    def n_bins(self) -> int:
        return int(self.epoch.shape[1])

    def grow(self, sensors: int) -> None:
        extra = sensors - self.epoch.shape[0]
        if extra <= 0:
            return
        more = Bins.empty(extra, self.n_bins, self.bin_s)
        self.epoch = np.concatenate([self.epoch, more.epoch])
        self.wsum = np.concatenate([self.wsum, more.wsum])
        self.w = np.concatenate([self.w, more.w])
        self.vmin = np.concatenate([self.vmin, more.vmin])
        self.vmax = np.concatenate([self.vmax, more.vmax])
        self.bad = np.concatenate([self.bad, more.bad])

    def bins_for(self, span_s: float) -> int:
        return max(1, math.ceil(span_s / self.bin_s - 1e-9))

    def add(
        self,
        slot: IntArray,
        time_s: FloatArray,
        raw: FloatArray,
        linear: FloatArray,
        weight_s: FloatArray,
        valid: BoolArray,
    ) -> BoolArray:
        """Add samples; returns which samples landed in a current bin (the others were late)."""
        if slot.size == 0:
            return np.zeros(0, dtype=bool)
        n_bins = self.n_bins
        b = np.floor(time_s / self.bin_s).astype(np.int64)
        flat = slot.astype(np.int64) * n_bins + (b % n_bins)
        cells, inverse = np.unique(flat, return_inverse=True)
        newest = np.full(cells.size, NO_EPOCH, dtype=np.int64)
        np.maximum.at(newest, inverse, b)
        epoch = self.epoch.reshape(-1)
        stale = newest > epoch[cells]
        if np.any(stale):
            reset = cells[stale]
            epoch[reset] = newest[stale]
            for arr, fill in (
                (self.wsum, 0.0),
                (self.w, 0.0),
                (self.vmin, np.inf),
                (self.vmax, -np.inf),
                (self.bad, 0.0),
            ):
                arr.reshape(-1)[reset] = fill
        current = b == epoch[cells][inverse]
        good = current & valid
        if np.any(good):
            cell = cells[inverse[good]]
            np.add.at(self.wsum.reshape(-1), cell, weight_s[good] * linear[good])
            np.add.at(self.w.reshape(-1), cell, weight_s[good])
            np.minimum.at(self.vmin.reshape(-1), cell, raw[good])
            np.maximum.at(self.vmax.reshape(-1), cell, raw[good])
        bad = current & ~valid
        if np.any(bad):
            np.add.at(self.bad.reshape(-1), cells[inverse[bad]], 1.0)
        landed: BoolArray = np.asarray(current, dtype=bool)
        return landed

    def window_mask(self, slots: IntArray, t_end_s: FloatArray, span_s: float) -> BoolArray:
        """``(len(slots), n_bins)``: which bins of each slot fall in ``(t_end − span, t_end]``."""
        cur = np.floor(t_end_s / self.bin_s).astype(np.int64)[:, None]
        epoch = self.epoch[slots]
        mask: BoolArray = np.asarray((epoch > cur - self.bins_for(span_s)) & (epoch <= cur))
        return mask

    def window_sums(
        self, slots: IntArray, t_end_s: FloatArray, span_s: float
    ) -> tuple[FloatArray, FloatArray]:
        """``(Σ w·x, Σ w)`` over the window ending at ``t_end_s`` for each slot."""
        mask = self.window_mask(slots, t_end_s, span_s)
        wsum = np.where(mask, self.wsum[slots], 0.0).sum(axis=1)
        w = np.where(mask, self.w[slots], 0.0).sum(axis=1)
        return wsum, w

    def window_extremes(
        self, slots: IntArray, t_end_s: FloatArray, span_s: float
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """``(min, max, measured bins, bad samples)`` over the window for each slot."""
        mask = self.window_mask(slots, t_end_s, span_s)
        vmin = np.where(mask, self.vmin[slots], np.inf).min(axis=1)
        vmax = np.where(mask, self.vmax[slots], -np.inf).max(axis=1)
        measured = (mask & (self.w[slots] > 0.0)).sum(axis=1).astype(np.float64)
        bad = np.where(mask, self.bad[slots], 0.0).sum(axis=1)
        return vmin, vmax, measured, bad

    def segment_means(
        self, slots: IntArray, t_end_s: FloatArray, span_s: float, segments: int
    ) -> FloatArray:
        """``(len(slots), segments)`` time-weighted means of consecutive equal sub-windows,
        oldest first; NaN where a segment has no measured time."""
        n = self.bins_for(span_s)
        per = max(1, n // segments)
        cur = np.floor(t_end_s / self.bin_s).astype(np.int64)[:, None]
        age = cur - self.epoch[slots]  # 0 = the newest bin
        seg = segments - 1 - age // per
        ok = (age >= 0) & (age < per * segments)
        rows = np.broadcast_to(np.arange(slots.size)[:, None], age.shape)
        index = (rows * segments + np.where(ok, seg, 0))[ok]
        wsum = np.bincount(index, self.wsum[slots][ok], minlength=slots.size * segments)
        w = np.bincount(index, self.w[slots][ok], minlength=slots.size * segments)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(w > 0.0, wsum / np.where(w > 0.0, w, 1.0), np.nan)
        out: FloatArray = means.reshape(slots.size, segments)
        return out


def theil_sen_slope(y: FloatArray, dx: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Row-wise Theil–Sen slope of equally spaced points ``y`` (``(rows, k)``, NaN = missing).

    Returns ``(slope per unit x, fraction of pairwise slopes that are positive, valid points)``.
    The median of all pairwise slopes ignores up to ~29 % outliers (Sen 1968, J. Am. Stat. Assoc.
    63:1379), which a least-squares fit of a noisy signal does not.
    """
    k = y.shape[1]
    i, j = np.triu_indices(k, 1)
    pair = (y[:, j] - y[:, i]) / ((j - i) * dx)
    valid = ~np.isnan(pair)
    count = valid.sum(axis=1)
    # Row medians of the valid pairs: NaN sorts last, so the valid ones lead each sorted row.
    ordered = np.sort(pair, axis=1)
    lo = np.clip((count - 1) // 2, 0, None)[:, None]
    hi = np.clip(count // 2, 0, None)[:, None]
    with np.errstate(invalid="ignore"):
        mid = 0.5 * (
            np.take_along_axis(ordered, lo, axis=1) + np.take_along_axis(ordered, hi, axis=1)
        )
        slope = np.where(count > 0, mid[:, 0], np.nan)
        positive = (np.where(valid, pair, 0.0) > 0.0).sum(axis=1)
        rising = np.where(count > 0, positive / np.maximum(count, 1), 0.0)
    points = (~np.isnan(y)).sum(axis=1).astype(np.float64)
    return slope, rising.astype(np.float64), points


__all__ = ["NO_EPOCH", "Bins", "theil_sen_slope"]
