"""Helpers shared by the analytics tests (vectors, CSV building, CLI calls)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import tomllib
from collections.abc import Callable, Sequence
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def vector(name: str) -> dict[str, Any]:
    with (VECTORS / name).open("rb") as fh:
        return tomllib.load(fh)


def run_cli(module: Any, argv: Sequence[str]) -> tuple[int, str, str]:
    """Call a command module's handler through a tiny argparse parser."""
    parser = argparse.ArgumentParser(prog="qorgau")
    module.register(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = args.handler(args)
    return rc, out.getvalue(), err.getvalue()


START = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


def write_csv(
    path: Path,
    rows: Sequence[tuple[float, str, str, str, str, float]],
) -> Path:
    """rows: (seconds from START, sensor, quantity, unit, substance, value)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "sensor", "quantity", "unit", "substance", "value"])
        for sec, sensor, q, unit, sub, v in rows:
            w.writerow([(START + timedelta(seconds=sec)).isoformat(), sensor, q, unit, sub, v])
    return path


def steps_rows(
    sensor: str,
    quantity: str,
    unit: str,
    substance: str,
    levels: Sequence[float],
    hours: Sequence[float],
    period_s: float,
) -> list[tuple[float, str, str, str, str, float]]:
    """Piecewise-constant exposure sampled every period_s, back to back from 0."""
    rows = []
    t = 0.0
    for level, h in zip(levels, hours, strict=True):
        n = round(h * 3600.0 / period_s)
        rows += [(t + i * period_s, sensor, quantity, unit, substance, level) for i in range(n)]
        t += n * period_s
    return rows


def assess_json(module: Any, argv: Sequence[str]) -> dict[str, Any]:
    rc, out, err = run_cli(module, ["assess", *argv, "--json"])
    assert rc == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


Factory = Callable[..., Any]
