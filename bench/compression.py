"""Bytes per stored reading on plain PostgreSQL and on TimescaleDB, before and after compression.

    python bench/compression.py --days 2 --devices 2 --json

Starts its own PostgreSQL (``qorgau.localservices``, which preloads TimescaleDB where it is
installed; removed afterwards), fills one schema per backend with the same simulated readings
(the demo's standard device, ``firmware_sim.device.standard_device``: 7 channels at 1 Hz, around
the clock) through the store's write path (binary COPY, and on plain PostgreSQL the rollup
tables), then measures:

- ``plain``: the ``readings`` partitions, heap and index, in bytes per reading
  (``pg_total_relation_size`` of every partition), and the rollup tables beside them;
- ``timescale``: ``hypertable_detailed_size('readings')`` before compression, then every chunk
  compressed as the policy ``QORGAU_DB_COMPRESS_AFTER`` would (segmented by sensor, ordered by
  time) and measured again; ``ratio`` is the total before over the total after. The continuous
  aggregates are materialized before measuring and reported apart.

Values decide the ratio (TimescaleDB's float compression stores the XOR of neighbours), so a
device whose readings move more compresses less: measure on your own data with
``hypertable_compression_stats('qorgau.readings')``. Figures only, never pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import psycopg  # noqa: E402

from bench.stack import machine  # noqa: E402
from firmware_sim.device import standard_device  # noqa: E402
from qorgau.localservices import LocalPostgres, scratch_dir, timescaledb_installed  # noqa: E402
from store.connection import connect, connect_async  # noqa: E402
from store.migrate import Backend, upgrade  # noqa: E402
from store.policies import StoragePolicies  # noqa: E402
from store.readings import ReadingBlock, days_of, ensure_day_partitions  # noqa: E402
from store.writes import write_readings  # noqa: E402

MB = 1024 * 1024


def simulated_day(device: int, start: datetime, end: datetime) -> ReadingBlock:
    """The standard device's readings in [start, end); sensor ids ``device * 100 + channel``."""
    driver = standard_device(f"bench-{device}", start, seed=device)
    parts = []
    for block in driver.read(end):
        channel = [c.sensor for c in driver.channels()].index(block.spec.sensor)
        values = np.asarray(block.values, dtype=np.float64)
        offsets = (
            np.asarray(block.offsets_s, dtype=np.float64)
            if block.offsets_s is not None
            else np.arange(len(values)) * block.spec.period_s
        )
        keep = np.isfinite(values)
        t0_us = int(block.t0.timestamp() * 1_000_000)
        parts.append(
            ReadingBlock(
                (t0_us + np.round(offsets * 1_000_000).astype(np.int64))[keep],
                np.full(int(keep.sum()), device * 100 + channel, np.int32),
                values[keep],
            )
        )
    return ReadingBlock.concat(parts)


async def fill(url: str, schema: str, backend: Backend, blocks: list[ReadingBlock]) -> int:
    written = 0
    conn = await connect_async(url, schema, autocommit=True)
    async with conn:
        for block in blocks:
            await ensure_day_partitions(conn, days_of(block.times_us))
            for part in np.array_split(np.arange(len(block)), max(1, len(block) // 200_000)):
                piece = ReadingBlock(
                    block.times_us[part], block.sensor_ids[part], block.values[part]
                )
                async with conn.transaction():
                    written += await write_readings(conn, piece, backend=backend)
    return written


def per_reading(size: int, readings: int) -> float:
    return round(size / readings, 2)


def measure_plain(url: str, schema: str, readings: int) -> dict[str, Any]:
    with connect(url, schema, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE readings")
        heap, total = conn.execute(
            "SELECT sum(pg_relation_size(i.inhrelid)), sum(pg_total_relation_size(i.inhrelid)) "
            "FROM pg_inherits i WHERE i.inhparent = 'readings'::regclass"
        ).fetchone()  # type: ignore[misc]
        rollups = conn.execute(
            "SELECT pg_total_relation_size('readings_1m') + pg_total_relation_size('readings_1h')"
        ).fetchone()
    return {
        "readings_total_mb": round(int(total) / MB, 1),
        "bytes_per_reading": per_reading(int(total), readings),
        "heap_bytes_per_reading": per_reading(int(heap), readings),
        "index_bytes_per_reading": per_reading(int(total) - int(heap), readings),
        "rollups_mb": round(int(rollups[0]) / MB, 1) if rollups else None,
    }


def _sizes(conn: psycopg.Connection[Any]) -> dict[str, int]:
    row = conn.execute(
        "SELECT table_bytes, index_bytes, toast_bytes, total_bytes "
        "FROM hypertable_detailed_size('readings')"
    ).fetchone()
    assert row is not None
    return dict(zip(("table", "index", "toast", "total"), (int(v or 0) for v in row), strict=True))


def measure_timescale(url: str, schema: str, readings: int) -> dict[str, Any]:
    with connect(url, schema, autocommit=True) as conn:
        for view in ("readings_1m", "readings_1h"):
            conn.execute("CALL refresh_continuous_aggregate(%s::regclass, NULL, NULL)", [view])
        conn.execute("VACUUM ANALYZE readings")
        before = _sizes(conn)
        chunks = conn.execute(
            "SELECT count(compress_chunk(c)) FROM show_chunks('readings') c"
        ).fetchone()
        conn.execute("VACUUM ANALYZE readings")
        after = _sizes(conn)
        stats = conn.execute(
            "SELECT sum(before_compression_total_bytes), sum(after_compression_total_bytes) "
            "FROM hypertable_compression_stats('readings')"
        ).fetchone()
        rollups = conn.execute(
            "SELECT sum(total_bytes) FROM timescaledb_information.continuous_aggregates c, "
            "LATERAL hypertable_detailed_size(format('%I.%I', "
            "c.materialization_hypertable_schema, c.materialization_hypertable_name)::regclass) "
            "WHERE c.view_schema = current_schema()"
        ).fetchone()
    return {
        "chunks_compressed": int(chunks[0]) if chunks else 0,
        "before": {
            "readings_total_mb": round(before["total"] / MB, 1),
            "bytes_per_reading": per_reading(before["total"], readings),
            "table_bytes_per_reading": per_reading(before["table"], readings),
            "index_bytes_per_reading": per_reading(before["index"], readings),
        },
        "after": {
            "readings_total_mb": round(after["total"] / MB, 2),
            "bytes_per_reading": per_reading(after["total"], readings),
            "table_bytes_per_reading": per_reading(after["table"], readings),
            "index_bytes_per_reading": per_reading(after["index"], readings),
            "toast_bytes_per_reading": per_reading(after["toast"], readings),
        },
        "ratio": round(before["total"] / after["total"], 1),
        "ratio_compression_stats": (
            round(int(stats[0]) / int(stats[1]), 1) if stats and stats[1] else None
        ),
        "rollups_mb": round(int(rollups[0]) / MB, 1) if rollups and rollups[0] else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=2.0, help="days of readings per device")
    parser.add_argument("--devices", type=int, default=2, help="standard devices (7 channels each)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    start = end - timedelta(days=args.days)
    blocks = [simulated_day(d, start, end) for d in range(args.devices)]
    readings = sum(len(b) for b in blocks)
    folder = scratch_dir("qorgau-bench-compression-")
    server = LocalPostgres(folder / "data", durable=False)
    server.start()
    result: dict[str, Any] = {
        "machine": machine(fsync=False),
        "days": args.days,
        "devices": args.devices,
        "readings": readings,
    }
    try:
        # No compression policy: the bench compresses every chunk itself, at a known moment.
        policies = StoragePolicies(compress_after=None)
        upgrade(server.url, "bench_plain", timescale="off", policies=policies)
        asyncio.run(fill(server.url, "bench_plain", "plain", blocks))
        result["plain"] = measure_plain(server.url, "bench_plain", readings)
        if timescaledb_installed():
            upgrade(server.url, "bench_ts", timescale="on", policies=policies)
            with psycopg.connect(server.url, autocommit=True) as conn:
                for (job,) in conn.execute(
                    "SELECT job_id FROM timescaledb_information.jobs "
                    "WHERE hypertable_schema = 'bench_ts'"
                ).fetchall():
                    conn.execute("SELECT alter_job(%s, scheduled => false)", [job])
            asyncio.run(fill(server.url, "bench_ts", "timescale", blocks))
            result["timescale"] = measure_timescale(server.url, "bench_ts", readings)
        else:
            result["timescale"] = "not measured: the TimescaleDB extension is not installed"
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
