"""Benchmark of the numeric core: full per-sensor shift assessment on a regular 1 Hz grid.

Prints samples/s for the assessment (noise LAeq/LEX,8h/LAmax/dose, vibration A(8), concentration
TWA/mean/15-min max/max, then classes) with 1 and with 2 worker threads, the ratio of each to one
single-thread ``np.sum`` pass over the same float64 data (the memory-bound limit of one core),
and the speed-up over a plain Python loop computing the same metrics (timed on a few sensors per
kind and weighted by the mix: says so). Sensors are processed in chunks to keep peak memory
small; for every chunk the worker counts are timed in alternating order. Figures are medians
over ``--repeat`` runs. Prints figures; asserts nothing.

    python bench/analytics.py [--sensors 10000] [--hours 8] [--chunk 250] [--workers 1,2]
                              [--repeat 3] [--loop-sensors 3] [--json]
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# This file is named like the package it measures: keep its own folder off the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from analytics import (  # noqa: E402
    Norms,
    classify,
    concentration_regular,
    load_norms,
    noise_regular,
    vibration_regular,
)

KINDS = ("noise", "noise", "vibration", "gas", "gas")  # 40 % noise, 20 % vibration, 40 % gas
MIX = {"noise": 0.4, "vibration": 0.2, "gas": 0.4}
GAS_LIMIT_MG_M3 = 20.0  # ПДК used to class the TWA (as a ratio) in both implementations


def make_chunk(kind: str, rows: int, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "noise":
        return rng.normal(85.0, 6.0, size=(rows, n_samples))
    if kind == "vibration":
        return np.abs(rng.normal(2.0, 1.0, size=(rows, n_samples)))
    return np.abs(rng.normal(10.0, 4.0, size=(rows, n_samples)))


def assess_chunk(kind: str, x: np.ndarray, shift_s: float, norms: Norms, workers: int) -> None:
    if kind == "noise":
        m = noise_regular(
            x, period_s=1.0, shift_duration_s=shift_s, dose_criterion_db=80.0, workers=workers
        )
        classify(m.lex8h_db, norms.band("noise_lex8h"))
    elif kind == "vibration":
        v = vibration_regular(x, period_s=1.0, shift_duration_s=shift_s, workers=workers)
        classify(v.a8_db, norms.band("vibration_hand_arm"))
    else:
        c = concentration_regular(
            x, period_s=1.0, shift_duration_s=shift_s, min_window_fraction=0.75, workers=workers
        )
        classify(c.twa8h_mg_m3 / GAS_LIMIT_MG_M3, norms.band("chemical_acute"))


def python_loop(
    kind: str, row: list[float], shift_s: float, upper: Sequence[float]
) -> tuple[float, ...]:
    """The same metrics and class for one sensor with plain Python loops over Python floats.

    1 s samples, no NaN (like the vectorized fast path): validation, sums, maxima, the exact
    sliding 15-min maximum with a running sum, the daily values and the class by bisection.
    """
    n = len(row)
    if kind == "noise":
        e = 0.0
        mx = -math.inf
        for v in row:
            e += 10.0 ** (v / 10.0)
            if v > mx:
                mx = v
        laeq = 10.0 * math.log10(e / n)
        lex = laeq + 10.0 * math.log10(shift_s / 28800.0)
        dose = 100.0 * 10.0 ** ((lex - 80.0) / 10.0)
        return laeq, lex, mx, dose, bisect.bisect_left(upper, lex)
    if kind == "vibration":
        e = 0.0
        for v in row:
            if v < 0.0:
                raise ValueError("negative acceleration")
            e += v * v
        a8 = math.sqrt(e / n) * math.sqrt(shift_s / 28800.0)
        a8_db = 20.0 * math.log10(a8 / 1e-6)
        return a8, a8_db, bisect.bisect_left(upper, a8_db)
    s = 0.0
    mx = -math.inf
    win = 0.0
    best = -math.inf
    for i, v in enumerate(row):
        if v < 0.0:
            raise ValueError("negative concentration")
        s += v
        if v > mx:
            mx = v
        win += v
        if i >= 900:
            win -= row[i - 900]
        if i >= 899 and win > best:
            best = win
    mean = s / n
    twa = mean * shift_s / 28800.0
    return twa, mean, best / 900.0, mx, bisect.bisect_left(upper, twa / GAS_LIMIT_MG_M3)


def time_python_loop(
    n_samples: int, shift_s: float, norms: Norms, sensors: int, rng: np.random.Generator
) -> dict[str, float]:
    """Median samples/s of the Python loop per kind, over ``sensors`` full-shift sensors."""
    bands = {"noise": "noise_lex8h", "vibration": "vibration_hand_arm", "gas": "chemical_acute"}
    rates: dict[str, float] = {}
    for kind in MIX:
        upper = list(norms.band(bands[kind]).upper)
        runs = []
        for _ in range(sensors):
            row = make_chunk(kind, 1, n_samples, rng)[0].tolist()  # Python floats
            t0 = time.perf_counter()
            python_loop(kind, row, shift_s, upper)
            runs.append(n_samples / (time.perf_counter() - t0))
        rates[kind] = statistics.median(runs)
    return rates


def run_once(args: argparse.Namespace, workers: list[int], norms: Norms) -> dict[str, float]:
    """One pass over all sensors; seconds per worker count and for the np.sum pass."""
    n_samples = int(args.hours * 3600)
    shift_s = float(n_samples)
    rng = np.random.default_rng(1)
    seconds = {f"w{w}": 0.0 for w in workers}
    seconds["np_sum"] = 0.0
    sink = 0.0
    done = 0
    i = 0
    while done < args.sensors:
        rows = min(args.chunk, args.sensors - done)
        kind = KINDS[i % len(KINDS)]
        x = make_chunk(kind, rows, n_samples, rng)
        order = workers if i % 2 == 0 else workers[::-1]
        for w in order:
            t0 = time.perf_counter()
            assess_chunk(kind, x, shift_s, norms, w)
            seconds[f"w{w}"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        sink += float(np.sum(x))
        seconds["np_sum"] += time.perf_counter() - t0
        done += rows
        i += 1
    seconds["sink"] = sink
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sensors", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--chunk", type=int, default=250)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker-thread counts")
    ap.add_argument("--repeat", type=int, default=3, help="runs; figures are medians")
    ap.add_argument("--loop-sensors", type=int, default=3, help="Python-loop sensors per kind")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    norms = load_norms()
    n_samples = int(args.hours * 3600)
    samples = args.sensors * n_samples
    runs = [run_once(args, workers, norms) for _ in range(args.repeat)]
    sum_s = statistics.median(r["np_sum"] for r in runs)
    np_sum_rate = samples / sum_s
    loop_rates = time_python_loop(
        n_samples, float(n_samples), norms, args.loop_sensors, np.random.default_rng(2)
    )
    python_rate = 1.0 / sum(w / loop_rates[k] for k, w in MIX.items())
    by_workers: dict[str, dict[str, float]] = {}
    for w in workers:
        secs = statistics.median(r[f"w{w}"] for r in runs)
        rate = samples / secs
        by_workers[str(w)] = {
            "seconds": secs,
            "samples_per_s": rate,
            "ratio_to_np_sum": rate / np_sum_rate,
            "speedup_vs_python_loop": rate / python_rate,
        }
    first = by_workers[str(workers[0])]
    out: dict[str, Any] = {
        "samples": samples,
        "seconds": first["seconds"],
        "samples_per_s": first["samples_per_s"],
        "np_sum_samples_per_s": np_sum_rate,
        "ratio_to_np_sum": first["ratio_to_np_sum"],
        "python_loop_samples_per_s": python_rate,
        "speedup_vs_python_loop": first["speedup_vs_python_loop"],
        "by_workers": by_workers,
        "python_loop_by_kind": loop_rates,
        "notes": [
            f"top-level figures are for workers={workers[0]}; by_workers has each count",
            "ratio_to_np_sum: assessment rate / one single-thread np.sum pass over each chunk",
            f"python loop: Python floats, same metrics and class, timed on {args.loop_sensors} "
            "full-shift sensors per kind (median), weighted 40/20/40 by the mix",
            f"medians over {args.repeat} runs",
        ],
        "sensors": args.sensors,
        "hours": args.hours,
        "chunk_sensors": args.chunk,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for k, v in out.items():
        if isinstance(v, dict):
            print(f"{k:>28}:")
            for kk, vv in v.items():
                text = (
                    ", ".join(f"{a} {b:,.4g}" for a, b in vv.items())
                    if isinstance(vv, dict)
                    else f"{vv:,.4g}"
                )
                print(f"{kk:>32}: {text}")
        elif isinstance(v, list):
            for line in v:
                print(f"{'note':>28}: {line}")
        else:
            print(f"{k:>28}: {v:,.4g}" if isinstance(v, float) else f"{k:>28}: {v}")


if __name__ == "__main__":
    main()
