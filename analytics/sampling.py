"""Irregular sampling: concatenated samples with group offsets, hold rule and gaps.

Many sensors' samples are handed over as one concatenated array per quantity plus ``offsets``,
the index where each sensor's (group's) samples begin, in the order of ``np.add.reduceat``.
Times are seconds from the shift start (the caller chooses the origin), non-decreasing within
each group.

The hold rule (issue 3): each sample holds until the next sample of the same sensor; the last
sample of a sensor holds for the sensor's median sampling interval; an interval longer than
``max_gap_s`` is a gap: the sample before it holds for the median interval only and the rest
counts as unmeasured, never as zero and never as the last value. No hold is ever longer than
``max_gap_s``: when the median interval itself exceeds it (three samples three hours apart),
each sample holds ``max_gap_s`` and the rest is a gap, so sparse data never reads as full
coverage (issue 13). Holds are not cut at the shift end: every sample counts towards the daily
exposure (ISO 9612 ``Te`` is the whole measured time); :meth:`Holds.covered_s` gives the part
of it that lies inside the declared shift ``[0, shift_duration_s]``, which coverage and the
projection of the unmeasured rest are counted against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.errors import InputError
from analytics.types import FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class Holds:
    """The step function that irregular samples define, one segment per sample.

    Attributes:
        start_s: segment start, seconds from the shift start (before 0 or after the shift end
            for samples outside the declared shift: they count too).
        duration_s: how long the sample's value holds.
        offsets: group start indices (as given).
        counts: samples per group.
        median_interval_s: each group's median sampling interval (the fallback if a group has
            a single sample).
    """

    start_s: FloatArray
    duration_s: FloatArray
    offsets: IntArray
    counts: IntArray
    median_interval_s: FloatArray

    @property
    def end_s(self) -> FloatArray:
        """Segment end, ``start_s + duration_s``."""
        return self.start_s + self.duration_s

    def group_ids(self) -> IntArray:
        """Group index of each sample."""
        return np.repeat(np.arange(self.counts.size, dtype=np.intp), self.counts)

    def measured_s(self) -> FloatArray:
        """Measured (held) time per group, seconds, inside the shift or not."""
        return group_sum(self.duration_s, self.offsets)

    def covered_s(self, shift_duration_s: float) -> FloatArray:
        """Measured time per group that lies inside the declared shift ``[0, shift]``."""
        inside = np.clip(self.end_s, 0.0, shift_duration_s) - np.clip(
            self.start_s, 0.0, shift_duration_s
        )
        return group_sum(inside, self.offsets)


def validate_offsets(offsets: object, n_samples: int) -> IntArray:
    """Check group offsets and return them as an ``intp`` array.

    Offsets must be 1-D, start at 0, strictly increase (no empty group) and stay below
    ``n_samples``.
    """
    off = np.asarray(offsets)
    if off.ndim != 1 or off.size == 0:
        raise InputError(
            "offsets must be a non-empty 1-D array of group start indices, e.g. [0, 120, 300]"
        )
    if not np.issubdtype(off.dtype, np.integer):
        raise InputError(f"offsets must be integers, got dtype {off.dtype}")
    off = off.astype(np.intp, copy=False)
    if off[0] != 0:
        raise InputError(f"offsets must start at 0 (first group's first sample), got {off[0]}")
    if off.size > 1 and np.any(np.diff(off) <= 0):
        bad = int(np.flatnonzero(np.diff(off) <= 0)[0]) + 1
        raise InputError(
            f"offsets must strictly increase (every group needs at least one sample); "
            f"group {bad} starts at {off[bad]} after {off[bad - 1]}"
        )
    if off[-1] >= n_samples:
        raise InputError(
            f"last offset {off[-1]} points past the {n_samples} samples; "
            "drop empty groups before calling"
        )
    return off


def group_counts(offsets: IntArray, n_samples: int) -> IntArray:
    """Number of samples in each group."""
    return np.diff(np.append(offsets, n_samples)).astype(np.intp)


def group_sum(x: FloatArray, offsets: IntArray) -> FloatArray:
    """Per-group sum via ``np.add.reduceat`` (groups are non-empty)."""
    return np.add.reduceat(x, offsets)


def group_max(x: FloatArray, offsets: IntArray) -> FloatArray:
    """Per-group maximum via ``np.maximum.reduceat`` (NaN-free input expected)."""
    return np.maximum.reduceat(x, offsets)


def group_median(x: FloatArray, valid: np.ndarray, group: IntArray, n_groups: int) -> FloatArray:
    """Median of ``x[valid]`` per group, NaN for groups with no valid element.

    Vectorized: one ``lexsort`` by (group, value), then the middle element(s) of each run.
    """
    xv = x[valid]
    gv = group[valid]
    order = np.lexsort((xv, gv))
    xs = xv[order]
    m = np.bincount(gv, minlength=n_groups).astype(np.intp)
    starts = np.concatenate(([0], np.cumsum(m)[:-1])).astype(np.intp)
    out = np.full(n_groups, np.nan)
    has = m > 0
    lo = starts[has] + (m[has] - 1) // 2
    hi = starts[has] + m[has] // 2
    out[has] = 0.5 * (xs[lo] + xs[hi])
    return out


def hold_durations(
    time_s: FloatArray | object,
    offsets: IntArray | object,
    *,
    shift_duration_s: float,
    max_gap_s: float,
    fallback_interval_s: float = 1.0,
) -> Holds:
    """Apply the hold rule to concatenated irregular samples.

    For sample ``i`` of a group with next sample ``i+1`` and interval ``Δ = t[i+1] − t[i]``:
    ``hold = Δ`` if ``Δ ≤ max_gap_s`` else ``min(median Δ, max_gap_s)``; the group's last
    sample holds ``min(median Δ, max_gap_s)``. A group with a single sample has no interval:
    ``min(fallback_interval_s, max_gap_s)`` is used (pass the instrument's logging period).
    Segments are not clipped (every sample counts); ``shift_duration_s`` is the declared shift
    that :meth:`Holds.covered_s` measures coverage against.

    Args:
        time_s: sample times, seconds from the shift start, non-decreasing within each group.
        offsets: group start indices.
        shift_duration_s: shift length, seconds (> 0).
        max_gap_s: the longest interval that still counts as measured (> 0).
        fallback_interval_s: hold of a lone sample (> 0).

    Raises:
        InputError: on NaN times, times going backwards, or non-positive parameters.
    """
    t = np.asarray(time_s, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise InputError("time_s must be a non-empty 1-D array of seconds from the shift start")
    if not np.all(np.isfinite(t)):
        raise InputError("time_s contains NaN or infinite values; drop or repair those samples")
    for name, val in (
        ("shift_duration_s", shift_duration_s),
        ("max_gap_s", max_gap_s),
        ("fallback_interval_s", fallback_interval_s),
    ):
        if not np.isfinite(val) or val <= 0.0:
            raise InputError(f"{name} must be a positive number of seconds, got {val!r}")
    off = validate_offsets(offsets, t.size)
    counts = group_counts(off, t.size)
    n_groups = off.size
    gid = np.repeat(np.arange(n_groups, dtype=np.intp), counts)
    last = off + counts - 1

    dt = np.empty_like(t)
    dt[:-1] = np.diff(t)
    dt[-1] = np.nan
    dt[last] = np.nan
    valid = ~np.isnan(dt)
    if np.any(dt[valid] < 0.0):
        bad = int(np.flatnonzero(valid & (np.nan_to_num(dt) < 0.0))[0])
        raise InputError(
            f"time_s goes backwards in group {int(gid[bad])} at sample {bad} "
            f"({t[bad]} s then {t[bad + 1]} s); sort each sensor's samples by time"
        )
    median = group_median(dt, valid, gid, n_groups)
    median = np.where(np.isnan(median), fallback_interval_s, median)
    # A hold never exceeds the gap limit, whatever the median: otherwise a sensor whose every
    # interval is a gap would hold each value across the gap and read as fully measured.
    held = np.minimum(median, max_gap_s)
    hold = np.where(dt > max_gap_s, held[gid], dt)
    hold[last] = held
    return Holds(
        start_s=t.copy(),
        duration_s=hold,
        offsets=off,
        counts=counts,
        median_interval_s=median,
    )


def rolling_max_mean_irregular(
    values: FloatArray,
    holds: Holds,
    *,
    window_s: float,
    min_window_fraction: float,
) -> FloatArray:
    """Maximum over window positions of the time-weighted mean inside a sliding window.

    The integral ``G`` and the measured time ``M`` of the step function are piecewise linear in
    the window start, so ``G/M`` is monotone between knots: the maximum is reached with a window
    edge on a segment edge. Candidate windows start at every segment start/end and at every
    segment start/end minus ``window_s``; a window must lie within the group's first start and
    last end and hold at least ``min_window_fraction · window_s`` measured time. All groups are
    handled at once by shifting each group onto its own stretch of one time axis and evaluating
    ``G`` and ``M`` with one ``np.interp``. Groups with no qualifying window give NaN.
    """
    n = values.size
    off, counts = holds.offsets, holds.counts
    gid = holds.group_ids()
    origin = float(np.min(holds.start_s))  # samples before the shift start count too
    span = float(np.max(holds.end_s)) - origin + 2.0 * window_s + 1.0
    shift = gid.astype(np.float64) * span - origin
    s = holds.start_s + shift
    e = holds.end_s + shift
    cd = values * holds.duration_s
    cs = np.cumsum(cd)
    cm = np.cumsum(holds.duration_s)
    base_g = np.repeat((cs - cd)[off], counts)
    base_m = np.repeat((cm - holds.duration_s)[off], counts)
    g_end = cs - base_g
    m_end = cm - base_m
    g_start = g_end - cd
    m_start = m_end - holds.duration_s
    xp = np.empty(2 * n)
    xp[0::2] = s
    xp[1::2] = e
    fg = np.empty(2 * n)
    fg[0::2] = g_start
    fg[1::2] = g_end
    fm = np.empty(2 * n)
    fm[0::2] = m_start
    fm[1::2] = m_end
    lo = np.repeat(s[off], counts)
    last = off + counts - 1
    hi = np.repeat(e[last], counts)
    cand = np.stack((s, e, s - window_s, e - window_s))
    a = cand
    b = cand + window_s
    # Edges and measured times come from sums on one long time axis: compare them with a
    # tolerance of a few ulp of that axis, so a window with exactly the minimum measured time
    # (e.g. 675 s of 900 s) or ending exactly on the last sample's end still qualifies.
    tol = 64.0 * np.finfo(np.float64).eps * max(float(np.max(np.abs(e))), window_s)
    ok = (a >= lo - tol) & (b <= hi + tol)
    a_c = np.where(ok, np.maximum(a, lo), lo)  # stay inside the group's stretch of the axis
    b_c = np.where(ok, np.minimum(b, hi), lo)
    g = np.interp(b_c, xp, fg) - np.interp(a_c, xp, fg)
    m = np.interp(b_c, xp, fm) - np.interp(a_c, xp, fm)
    ok &= m >= min_window_fraction * window_s - tol
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, g / np.where(ok, m, 1.0), -np.inf)
    per_sample = mean.max(axis=0)
    out = group_max(per_sample, off)
    return np.where(np.isneginf(out), np.nan, out)


#: Preferred block length (samples) for the exact maximum window sum, and the allowed range.
#: Shorter blocks give a tighter bound (fewer candidates to refine on stationary signals),
#: longer ones cheaper block sums; 15–30 measured alike on the bench, 20 was the best.
WINDOW_BLOCK_TARGET = 20
_WINDOW_BLOCK_MIN = 8
_WINDOW_BLOCK_MAX = 64

#: Candidates whose bound lies within this relative distance below the best known window are
#: still refined, so rounding (≤ ~1e-15 relative in these sums) never prunes the true maximum.
_BOUND_RTOL = 1e-12


def window_block(window_samples: int) -> int | None:
    """Block length ``b`` dividing the window, ``8 ≤ b ≤ 64`` and ``b ≤ k/2``, closest to 20.

    None if the window has no such divisor (then the cumulative-sum method is used).
    """
    k = int(window_samples)
    divisors = [
        d for d in range(_WINDOW_BLOCK_MIN, _WINDOW_BLOCK_MAX + 1) if k % d == 0 and 2 * d <= k
    ]
    if not divisors:
        return None
    return min(divisors, key=lambda d: (abs(d - WINDOW_BLOCK_TARGET), -d))


def block_sums(x: FloatArray, b: int) -> FloatArray:
    """Sums of consecutive length-``b`` blocks along the last axis (a trailing partial block is
    left out): ``(rows, n // b)``."""
    rows, n = x.shape
    m = n // b
    out: FloatArray = np.einsum("ijk->ij", x[:, : m * b].reshape(rows, m, b))
    return out


def _sliding_sums_flat(values: FloatArray, q: int) -> FloatArray:
    """``out[i] = Σ_{j<q} values[i + j]`` for ``i ≤ len − q`` (the rest of ``out`` is unused).

    Built by doubling (sums of 1, 2, 4, … consecutive values, then the binary digits of
    ``q``), so each result is a sum of ``q`` terms in a tree of depth ≤ log₂ q + popcount(q)
    and its rounding error stays ~1e-15 relative; a running cumulative sum would carry the
    error of everything before the window. Works on a 1-D array so every step is one
    contiguous numpy loop (offset 2-D slices are several times slower in numpy).
    """
    n = values.size
    valid = n - q + 1
    out = np.empty(n)
    out[valid:] = np.nan
    scratch = (np.empty(n), np.empty(n))
    cur = values  # sums of `width` consecutive values; the first n − width + 1 are valid
    width, pos, rest, turn, started = 1, 0, q, 0, False
    while True:
        if rest & 1:
            part = cur[pos : pos + valid]  # pos + width ≤ q keeps this inside the valid range
            if started:
                np.add(out[:valid], part, out=out[:valid])
            else:
                out[:valid] = part
                started = True
            pos += width
        rest >>= 1
        if not rest:
            return out
        m = n - 2 * width + 1
        nxt = scratch[turn]
        turn ^= 1
        np.add(cur[:m], cur[width : width + m], out=nxt[:m])
        cur = nxt
        width *= 2


def max_window_sum_nonneg(
    x: FloatArray, window_samples: int, b: int, blocks: FloatArray | None = None
) -> FloatArray:
    """Exact ``max_s Σ x[:, s : s + k]`` per row for finite ``x ≥ 0`` (bound and refine).

    Requires ``k % b == 0`` and ``n ≥ k + b``. With block sums ``B`` (length ``b``) and the
    aligned window sums ``C[m] = B[m] + … + B[m+q−1]`` (``q = k/b``), any window starting
    inside block ``m`` lies within blocks ``m … m+q``, so for non-negative data its sum is at
    most ``U[m] = C[m] + B[m+q]``; the best aligned window ``L = max C`` is a lower bound of the
    answer. Only blocks with ``U[m] > L`` can hold a better window: for those the exact sums
    ``C[m] + Σ_{t<j} (x[(m+q)b + t] − x[mb + t])``, ``j = 1 … b−1``, are evaluated from the
    two gathered blocks. A trailing partial block is handled by the same recurrence. The
    result equals the cumulative-sum method up to rounding (and is more accurate: no
    row-long running sum).
    """
    rows, n = x.shape
    k = int(window_samples)
    q = k // b
    m_blocks = n // b
    if k % b or m_blocks < q + 1:
        raise ValueError("max_window_sum_nonneg needs k % b == 0 and n >= k + b")
    B = block_sums(x, b) if blocks is None else blocks
    B = np.ascontiguousarray(B)
    flat_b = B.reshape(-1)
    flat_c = _sliding_sums_flat(flat_b, q)  # aligned window sums; row r, block m at r·M + m
    C = flat_c.reshape(rows, m_blocks)
    inner = m_blocks - q  # blocks with interior starts: 0 … M − q − 1; C valid for 0 … M − q
    best: FloatArray = C[:, : inner + 1].max(axis=-1)
    # U[m] = C[m] + B[m + q] against the row's threshold, all on flat arrays: one contiguous
    # numpy loop each (entries with m ≥ inner, which would cross rows, get threshold +inf).
    size = flat_b.size - q
    bound = np.add(flat_c[:size], flat_b[q:])
    levels = np.empty(2 * rows)
    levels[0::2] = best * (1.0 - _BOUND_RTOL)
    levels[1::2] = np.inf
    threshold = np.repeat(levels, np.tile((inner, q), rows))
    first = np.flatnonzero(bound > threshold[:size])  # flat block index r·M + m
    if first.size:
        main = x if x.flags.c_contiguous and n == m_blocks * b else x[:, : m_blocks * b]
        xb = np.ascontiguousarray(main).reshape(rows * m_blocks, b)
        diff = xb.take(first + q, axis=0)  # the window's last block …
        diff -= xb.take(first, axis=0)  # … minus its first: d = x_end − x_start
        run = flat_c[first]
        peak = run.copy()
        for j in range(b - 1):  # strided columns: measured faster than transposing first
            run += diff[:, j]
            np.maximum(peak, run, out=peak)
        _raise_rows(best, first // m_blocks, peak)
    tail = n - m_blocks * b
    if tail:
        start = inner * b  # last aligned start; the tail adds starts start + 1 … start + tail
        d = x[:, m_blocks * b :] - x[:, start : start + tail]
        best = np.maximum(best, C[:, inner] + np.cumsum(d, axis=-1).max(axis=-1))
    return best


def _raise_rows(best: FloatArray, row: IntArray, value: FloatArray) -> None:
    """``best[row] = max(best[row], value)`` for sorted ``row``: one ``reduceat`` over the runs
    of equal rows (measured faster than ``np.maximum.at``)."""
    starts = np.flatnonzero(np.concatenate(([True], row[1:] != row[:-1])))
    top = np.maximum.reduceat(value, starts)
    hit = row[starts]
    best[hit] = np.maximum(best[hit], top)


def rolling_max_mean_regular(
    values: FloatArray,
    *,
    window_samples: int,
    min_window_fraction: float,
) -> FloatArray:
    """Maximum sliding-window mean along the last axis of a regular grid (NaN = unmeasured).

    A window's mean is the mean of its finite samples; windows with fewer than
    ``min_window_fraction · window_samples`` finite samples are skipped. Rows with no qualifying
    window (or fewer samples than the window) give NaN. Rows without NaN or inf take a fast
    path: non-negative rows the bound-and-refine maximum (:func:`max_window_sum_nonneg`),
    others one cumulative sum; rows with NaN the masked cumulative sums.
    """
    x = values
    n = x.shape[-1]
    k = int(window_samples)
    rows = x.shape[0]
    out = np.full(rows, np.nan)
    if k < 1 or n < k:
        return out
    with np.errstate(invalid="ignore", over="ignore"):
        total = x.sum(axis=-1)
    clean = np.isfinite(total)
    b = window_block(k)
    if np.any(clean):
        xc = x[clean]
        if b is not None and n >= k + b and not np.any(xc < 0.0):
            out[clean] = max_window_sum_nonneg(xc, k, b) / k
        else:
            out[clean] = rolling_max_sum_cumsum(xc, k) / k
    dirty = np.flatnonzero(~clean)
    if dirty.size:
        out[dirty] = rolling_max_mean_masked(x[dirty], k, min_window_fraction)
    return out


def rolling_max_sum_cumsum(x: FloatArray, k: int) -> FloatArray:
    """``max_s Σ x[:, s : s + k]`` per row of finite values via one cumulative sum."""
    n = x.shape[-1]
    c = np.cumsum(x, axis=-1)
    ws = c[:, k - 1 :].copy()
    ws[:, 1:] -= c[:, : n - k]
    out: FloatArray = ws.max(axis=-1)
    return out


def rolling_max_mean_masked(x: FloatArray, k: int, min_window_fraction: float) -> FloatArray:
    """Maximum mean of the finite samples in any length-``k`` window holding at least
    ``min_window_fraction · k`` of them, per row; NaN where no window qualifies."""
    n = x.shape[-1]
    fin = np.isfinite(x)
    cv = np.cumsum(np.where(fin, x, 0.0), axis=-1)
    cn = np.cumsum(fin, axis=-1, dtype=np.float64)
    wv = cv[:, k - 1 :].copy()
    wv[:, 1:] -= cv[:, : n - k]
    wn = cn[:, k - 1 :].copy()
    wn[:, 1:] -= cn[:, : n - k]
    okw = wn >= min_window_fraction * k
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(okw, wv / np.where(okw, wn, 1.0), -np.inf)
    best = mean.max(axis=-1)
    out: FloatArray = np.where(np.isneginf(best), np.nan, best)
    return out


__all__ = [
    "Holds",
    "block_sums",
    "group_counts",
    "group_max",
    "group_median",
    "group_sum",
    "hold_durations",
    "max_window_sum_nonneg",
    "rolling_max_mean_irregular",
    "rolling_max_mean_masked",
    "rolling_max_mean_regular",
    "rolling_max_sum_cumsum",
    "validate_offsets",
    "window_block",
]
