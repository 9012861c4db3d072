"""Readings of simulated devices as CSV, for offline assessment (``qorgau assess --csv``).

Header ``time,sensor,quantity,unit,substance,value``; times are ISO 8601 with the UTC offset
of ``tz`` (the enterprise's local time), one row per sample.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import TextIO

from vocabulary.driver import Driver

HEADER = ("time", "sensor", "quantity", "unit", "substance", "value")


def write_csv(drivers: Iterable[Driver], until: datetime, out: TextIO, tz: timezone) -> int:
    """Read every driver up to ``until`` and write its samples; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    rows = 0
    stamps: dict[datetime, str] = {}  # channels share their sample times
    for driver in drivers:
        for block in driver.read(until):
            spec = block.spec
            offsets = block.offsets_s or tuple(i * spec.period_s for i in range(len(block.values)))
            for offset, value in zip(offsets, block.values, strict=True):
                t = block.t0 + timedelta(seconds=offset)
                stamp = stamps.get(t)
                if stamp is None:
                    stamp = stamps[t] = t.astimezone(tz).isoformat()
                writer.writerow(
                    (
                        stamp,
                        spec.sensor,
                        spec.quantity.value,
                        spec.unit,
                        spec.substance or "",
                        repr(value),
                    )
                )
                rows += 1
    return rows
