"""Shared validation, reductions and the row-block runner for the regular and irregular forms.

Regular grids are processed in blocks of whole rows small enough to stay in a core's L2 cache
while several passes (maximum, transform, sums) run over them; see :func:`run_row_blocks`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from analytics.errors import InputError
from analytics.sampling import Holds, group_max, group_sum, hold_durations
from analytics.types import FloatArray


def check_positive(name: str, value: float) -> float:
    """Return ``value`` as float or raise if it is not a positive finite number."""
    v = float(value)
    if not np.isfinite(v) or v <= 0.0:
        raise InputError(f"{name} must be a positive finite number, got {value!r}")
    return v


def as_grid(values: object, name: str, period_s: float, shift_duration_s: float) -> FloatArray:
    """Validate a regular grid ``(sensors, samples)``; NaN marks unmeasured samples.

    The grid starts at the shift start and each column holds ``period_s``; it may be shorter
    than the shift (the rest is unmeasured) or longer (every sample counts towards the daily
    value; coverage is counted inside the shift, see :func:`grid_covered`).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[np.newaxis, :]
    if x.ndim != 2 or x.shape[-1] == 0:
        raise InputError(
            f"{name} must be a 2-D array (sensors × samples) with at least one sample, "
            f"got shape {x.shape}"
        )
    check_positive("period_s", period_s)
    check_positive("shift_duration_s", shift_duration_s)
    return x


def grid_covered(
    x: FloatArray, count: FloatArray, period_s: float, shift_duration_s: float
) -> FloatArray:
    """Measured time inside the shift ``[0, shift]`` per row of a regular grid.

    ``count`` is the row's number of measured (finite) samples. Only a grid longer than the
    shift needs another pass: its columns past the shift end count towards the daily value but
    not towards coverage.
    """
    n = x.shape[-1]
    if n * period_s <= shift_duration_s:
        out: FloatArray = count * period_s
        return out
    whole = int(shift_duration_s // period_s)  # columns wholly inside the shift
    part = shift_duration_s - whole * period_s  # the column that straddles the shift end
    inside = np.isfinite(x[:, :whole]).sum(axis=-1) * period_s
    if part > 0.0 and whole < n:
        inside = inside + np.isfinite(x[:, whole]) * part
    return np.asarray(inside, dtype=np.float64)


def grid_sum_count(transformed: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Row sums of finite values and their counts; rows without NaN take the fast path."""
    total = transformed.sum(axis=-1)
    count = np.full(total.shape, float(transformed.shape[-1]))
    dirty = np.flatnonzero(np.isnan(total))
    if dirty.size:
        sub = transformed[dirty]
        fin = np.isfinite(sub)
        total[dirty] = np.where(fin, sub, 0.0).sum(axis=-1)
        count[dirty] = fin.sum(axis=-1)
    return total, count


def grid_max(x: FloatArray) -> FloatArray:
    """Row maximum ignoring NaN (NaN for all-NaN rows), without warnings."""
    out: FloatArray = np.fmax.reduce(x, axis=-1)
    return out


#: Samples per row block: 64 Ki float64 = 512 KiB, which with its float32 scratch copy stays in
#: the 1 MiB per-core L2 cache of the reference machine (2 rows of an 8-h shift at 1 Hz).
#: Measured: 32 Ki–128 Ki alike within noise, 256 Ki 10–20 % slower; numpy's fixed cost per
#: call (~1 µs) is what makes much smaller blocks slower.
BLOCK_SAMPLES = 1 << 16

#: A kernel processes rows ``[lo, hi)``; a factory makes one kernel (with its own scratch
#: buffers) per worker thread.
RowKernel = Callable[[int, int], None]


def check_workers(workers: int) -> int:
    """Return ``workers`` as an int or raise if it is not a positive integer."""
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    return int(workers)


def block_rows(n_cols: int, block_samples: int | None = None) -> int:
    """Rows per block: as many whole rows as fit in ``block_samples`` (default
    :data:`BLOCK_SAMPLES`), at least one."""
    size = BLOCK_SAMPLES if block_samples is None else block_samples
    return max(1, size // max(1, n_cols))


def run_row_blocks(
    n_rows: int,
    n_cols: int,
    workers: int,
    make_kernel: Callable[[], RowKernel],
    *,
    block_samples: int | None = None,
) -> None:
    """Call a kernel on consecutive row blocks ``[lo, hi)`` covering ``range(n_rows)``.

    With ``workers > 1`` the blocks are split into ``workers`` contiguous runs processed by a
    thread pool created for this call (numpy releases the GIL inside ufunc loops and
    reductions); each run gets its own kernel from ``make_kernel`` so scratch buffers are never
    shared. Kernels write disjoint rows of preallocated outputs, so the result does not depend
    on ``workers``. Exceptions raised by a kernel propagate to the caller.
    """
    step = block_rows(n_cols, block_samples)
    bounds = [(lo, min(lo + step, n_rows)) for lo in range(0, n_rows, step)]
    if not bounds:
        return
    runs = np.array_split(np.arange(len(bounds)), min(workers, len(bounds)))

    def run(blocks: np.ndarray) -> None:
        kernel = make_kernel()
        # Kernels compute every row the fast way and leave NaN/inf where a row needs the masked
        # path (the caller redoes those rows with the float64 formulas, warnings included).
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            for b in blocks:
                kernel(*bounds[int(b)])

    if len(runs) == 1:
        run(runs[0])
        return
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        for future in [pool.submit(run, r) for r in runs]:
            future.result()


def irregular(
    values: object,
    time_s: object,
    offsets: object,
    name: str,
    shift_duration_s: float,
    max_gap_s: float,
    fallback_interval_s: float,
) -> tuple[FloatArray, Holds]:
    """Validate concatenated irregular samples and apply the hold rule."""
    x = np.asarray(values, dtype=np.float64)
    t = np.asarray(time_s, dtype=np.float64)
    if x.ndim != 1 or x.shape != t.shape:
        raise InputError(
            f"{name} and time_s must be 1-D arrays of equal length, got {x.shape} and {t.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise InputError(
            f"{name} contains NaN or infinite values; drop those samples (gaps are expressed "
            "by missing times, not by NaN, in the irregular form)"
        )
    check_positive("shift_duration_s", shift_duration_s)
    holds = hold_durations(
        t,
        offsets,
        shift_duration_s=shift_duration_s,
        max_gap_s=max_gap_s,
        fallback_interval_s=fallback_interval_s,
    )
    return x, holds


def irregular_weighted(
    transformed: FloatArray, holds: Holds, shift_duration_s: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-group ``Σ f(xᵢ)·tᵢ``, measured time ``Σ tᵢ`` and the measured time inside the shift."""
    return (
        group_sum(transformed * holds.duration_s, holds.offsets),
        holds.measured_s(),
        holds.covered_s(shift_duration_s),
    )


def irregular_max(x: FloatArray, holds: Holds) -> FloatArray:
    """Per-group maximum over samples that hold some time inside the shift (NaN if none)."""
    masked = np.where(holds.duration_s > 0.0, x, -np.inf)
    out = group_max(masked, holds.offsets)
    return np.where(np.isneginf(out), np.nan, out)
