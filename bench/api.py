"""Benchmark of the periodic views: the regional risk board (``GET /api/v1/map``), the exports
(``/api/v1/export/enterprises``, ``/api/v1/export/workplaces``) and the workplace exposure
summary (``GET /api/v1/workplaces/{id}/exposure/history``), over 30 days of rollups.

Starts its own PostgreSQL (``qorgau.localservices.LocalPostgres``, plain backend), registers
``--workplaces`` workplaces (``--workplaces-per-enterprise`` to an enterprise) of
``--sensors-per-workplace`` sensors each (noise, gases, dust, vibration) with the assessors'
Т, Об, СИЗ, З entered, and writes the hourly rollup rows (``readings_1h``) of ``--days`` days
directly with COPY: raw readings at 1 Hz would be 2.6 billion rows for 1,000 sensors × 30 days,
and these endpoints read the rollups only. Then it serves the API over HTTP on a free port and
times:

* ``qorgau assessments rebuild`` over those rollups (every shift assessed once and stored);
* the map and both exports (CSV), cold (the first request) and warm (the same request again,
  three times); ms in all and per workplace; all of them read the stored shifts;
* the history of each workplace once (cold), then ``--requests`` times for random workplaces
  (warm); ``--requests 0`` skips the history.

A digest of each board's body is printed, so runs of two versions on the same day and seed can be
compared for identical answers.

The machine's load average is printed too: on a shared machine the figures move with it.

Prints p50/p99 latency in ms (``--json`` for one JSON object), then removes everything it made.
Figures only; asserts nothing.

    python bench/api.py [--workplaces 100] [--workplaces-per-enterprise 100]
                        [--sensors-per-workplace 10] [--days 30] [--requests 500] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import random
import shutil
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

# This file is named like the package it measures: keep its own folder off the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from analytics import load_norms  # noqa: E402
from api.app import create_app  # noqa: E402
from api.settings import ApiSettings  # noqa: E402
from application.assessment_service import rebuild  # noqa: E402
from dashboards.reports import render as render_report  # noqa: E402
from qorgau.demo import EmbeddedServer  # noqa: E402
from qorgau.localservices import LocalPostgres, free_port, scratch_dir  # noqa: E402
from store.auth import Role, create_token  # noqa: E402
from store.connection import connect_async  # noqa: E402
from store.migrate import upgrade  # noqa: E402

SCHEMA = "bench"
# (quantity, unit, substance, typical hourly level, day-to-day spread)
SENSOR_KINDS: list[tuple[str, str, str | None, float, float]] = [
    ("noise_laeq", "dB(A)", None, 86.0, 4.0),
    ("noise_laeq", "dB(A)", None, 78.0, 4.0),
    ("gas", "mg/m3", "CO", 12.0, 5.0),
    ("gas", "mg/m3", "H2S", 3.0, 2.0),
    ("dust", "mg/m3", "silica_10_70", 2.5, 1.0),
    ("vib_hav", "m/s2", None, 2.2, 0.6),
    ("vib_wbv_z", "m/s2", None, 0.45, 0.1),
    ("gas", "mg/m3", "NO2", 1.0, 0.5),
    ("dust", "mg/m3", "silica_gt70", 0.8, 0.3),
    ("noise_laeq", "dB(A)", None, 92.0, 3.0),
]
SAMPLES_PER_HOUR = 3600  # 1 Hz instruments


class ThreadedApi:
    """The API app served by uvicorn on a free loopback port in a thread of this process."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = EmbeddedServer(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ThreadedApi:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def percentile_ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(samples) * 1000.0, q)), 2)


async def build(
    url: str, workplaces: int, per_enterprise: int, per_workplace: int, days: int, last: date
) -> str:
    """Registry, assessors' indicators, hourly rollups and an inspector token; returns the token."""
    rng = np.random.default_rng(7)
    conn = await connect_async(url, SCHEMA, autocommit=True)
    async with conn:
        sensors: list[tuple[int, str]] = []
        eid = 0
        for w in range(workplaces):
            if w % per_enterprise == 0:
                code = "bench" if w == 0 else f"bench-{w // per_enterprise}"
                eid = (
                    await (
                        await conn.execute(
                            "INSERT INTO enterprises (code, name, region, activity_risk_class) "
                            "VALUES (%s, %s, 'Karaganda', 14) RETURNING id",
                            [code, f"Bench mine {w // per_enterprise}"],
                        )
                    ).fetchone()
                )[0]  # type: ignore[index]
            wid = (
                await (
                    await conn.execute(
                        "INSERT INTO workplaces (enterprise_id, code, name, headcount) "
                        "VALUES (%s, %s, %s, %s) RETURNING id",
                        [eid, f"wp-{w}", f"Workplace {w}", 1 + w % 7],
                    )
                ).fetchone()
            )[0]  # type: ignore[index]
            async with conn.cursor().copy(
                "COPY indicator_assessments (workplace_id, indicator, value, assessed_by, "
                "assessed_on) FROM STDIN"
            ) as copy:
                for k, name in enumerate(("T", "Ob", "SIZ", "Z")):
                    value = 1 + (w + k) % 5
                    await copy.write(
                        f"{wid}\t{name}\t{value}\tbench\t{last - timedelta(days=90)}\n"
                    )
            did = (
                await (
                    await conn.execute(
                        "INSERT INTO devices (enterprise_id, code, workplace_id) "
                        "VALUES (%s, %s, %s) RETURNING id",
                        [eid, f"dev-{w}", wid],
                    )
                ).fetchone()
            )[0]  # type: ignore[index]
            for k in range(per_workplace):
                quantity, unit, substance, _, _ = SENSOR_KINDS[k % len(SENSOR_KINDS)]
                sid = (
                    await (
                        await conn.execute(
                            "INSERT INTO sensors (device_id, code, quantity, unit, substance, "
                            "workplace_id) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                            [did, f"dev-{w}.{k}", quantity, unit, substance, wid],
                        )
                    ).fetchone()
                )[0]  # type: ignore[index]
                sensors.append((int(sid), quantity))
        first_hour = datetime.combine(last - timedelta(days=days - 1), datetime.min.time(), UTC)
        hours = days * 24
        starts = [(first_hour + timedelta(hours=h)).isoformat() for h in range(hours)]
        n = SAMPLES_PER_HOUR
        async with conn.cursor().copy(
            "COPY readings_1h (sensor_id, bucket, n, sum_value, sum_sq, sum_pow10, min_value, "
            "max_value) FROM STDIN"
        ) as copy:
            for index, (sid, quantity) in enumerate(sensors):
                _, _, _, typical, spread = SENSOR_KINDS[(index % per_workplace) % len(SENSOR_KINDS)]
                level = np.maximum(typical + spread * rng.standard_normal(hours), 0.01)
                if quantity.startswith("noise"):
                    pow10 = n * np.power(10.0, level / 10.0)
                    mean, sq = level, level * level
                else:
                    pow10 = np.zeros(hours)
                    mean, sq = level, level * level * 1.05
                out = io.StringIO()
                columns = zip(
                    (mean * n).tolist(),
                    (sq * n).tolist(),
                    pow10.tolist(),
                    (level * 0.5).tolist(),
                    (level * 1.6).tolist(),
                    strict=True,
                )
                for stamp, (sv, sq_, sp, lo, hi) in zip(starts, columns, strict=True):
                    out.write(f"{sid}\t{stamp}\t{n}\t{sv!r}\t{sq_!r}\t{sp!r}\t{lo!r}\t{hi!r}\n")
                await copy.write(out.getvalue())
        await conn.execute("ANALYZE")
        token, _ = await create_token(
            conn, name="bench", role=Role.INSPECTOR, regions=["Karaganda"]
        )
        return token


def _has_rollups(url: str) -> bool:
    from store.connection import connect

    with connect(url, SCHEMA) as conn:
        row = conn.execute("SELECT to_regclass('readings_1h')").fetchone()
    return row is not None and row[0] is not None


def _board(
    http: httpx.Client, path: str, params: dict[str, str], workplaces: int
) -> dict[str, Any]:
    """One board cold (first request) then warm three times: ms, ms per workplace, digest."""
    t = time.perf_counter()
    response = http.get(path, params=params)
    cold_s = time.perf_counter() - t
    response.raise_for_status()
    digest = hashlib.sha256(response.content).hexdigest()[:16]
    warm_s = []
    for _ in range(3):
        t = time.perf_counter()
        again = http.get(path, params=params)
        warm_s.append(time.perf_counter() - t)
        again.raise_for_status()
        if hashlib.sha256(again.content).hexdigest()[:16] != digest:
            digest += " (warm differs!)"
    warm = float(np.median(warm_s))
    return {
        "cold_ms": round(cold_s * 1000.0, 1),
        "warm_ms": round(warm * 1000.0, 1),
        "cold_ms_per_workplace": round(cold_s * 1000.0 / workplaces, 3),
        "warm_ms_per_workplace": round(warm * 1000.0 / workplaces, 3),
        "bytes": len(response.content),
        "sha256": digest,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workplaces", type=int, default=100)
    parser.add_argument("--workplaces-per-enterprise", type=int, default=100)
    parser.add_argument("--sensors-per-workplace", type=int, default=10)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--requests", type=int, default=500, help="warm history requests (0: no history)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    folder = scratch_dir("qorgau-bench-api-")
    pg = LocalPostgres(folder / "data", durable=False)
    pg.start()
    served: ThreadedApi | None = None
    try:
        upgrade(pg.url, SCHEMA, timescale="off")
        if not _has_rollups(pg.url):
            print(
                "bench/api.py: this schema has no readings_1h rollups (store/rollups.py "
                "is not merged yet); nothing to measure",
                file=sys.stderr,
            )
            return 2
        last = datetime.now(UTC).date() - timedelta(days=1)
        first = last - timedelta(days=args.days - 1)
        t0 = time.perf_counter()
        token = asyncio.run(
            build(
                pg.url,
                args.workplaces,
                args.workplaces_per_enterprise,
                args.sensors_per_workplace,
                args.days,
                last,
            )
        )
        build_s = time.perf_counter() - t0

        async def assess() -> int:
            async with await connect_async(pg.url, SCHEMA, autocommit=True) as conn:
                _, stored = await rebuild(
                    conn, load_norms("default"), since=None, late_s=28 * 86_400.0
                )
                return stored

        t0 = time.perf_counter()
        stored_shifts = asyncio.run(assess())
        rebuild_s = time.perf_counter() - t0
        settings = ApiSettings(database_url=pg.url, database_schema=SCHEMA)
        served = ThreadedApi(create_app(settings, render_report=render_report)).start()
        port = served.port
        params = {"from": first.isoformat(), "to": last.isoformat()}
        cold: list[float] = []
        warm: list[float] = []
        shifts = 0
        source = None
        boards: dict[str, Any] = {}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=600,
        ) as http:
            csv_params = {**params, "format": "csv"}
            for name, path, query in (
                ("map", "/api/v1/map", params),
                ("export_enterprises_csv", "/api/v1/export/enterprises", csv_params),
                ("export_workplaces_csv", "/api/v1/export/workplaces", csv_params),
            ):
                boards[name] = _board(http, path, query, args.workplaces)
            if args.requests > 0:
                ids = [
                    w["id"]
                    for w in http.get(
                        "/api/v1/enterprises/1/workplaces", params={"limit": 1000}
                    ).json()["items"]
                ]
                for wid in ids:
                    t = time.perf_counter()
                    response = http.get(f"/api/v1/workplaces/{wid}/exposure/history", params=params)
                    cold.append(time.perf_counter() - t)
                    response.raise_for_status()
                    shifts = len(response.json()["shifts"])
                pick = random.Random(3)
                for _ in range(args.requests):
                    wid = pick.choice(ids)
                    t = time.perf_counter()
                    response = http.get(f"/api/v1/workplaces/{wid}/exposure/history", params=params)
                    warm.append(time.perf_counter() - t)
                    response.raise_for_status()
                source = response.json()["source"]
        result: dict[str, Any] = {
            "bench": "GET /api/v1/map, /api/v1/export/*, /api/v1/workplaces/{id}/exposure/history",
            "backend": "plain PostgreSQL",
            "sensors": args.workplaces * args.sensors_per_workplace,
            "workplaces": args.workplaces,
            "enterprises": -(-args.workplaces // args.workplaces_per_enterprise),
            "sensors_per_workplace": args.sensors_per_workplace,
            "days": args.days,
            "rollup_rows_1h": args.workplaces * args.sensors_per_workplace * args.days * 24,
            "data": "hourly rollup rows generated directly (no raw readings)",
            "build_s": round(build_s, 1),
            "rebuild_shifts": stored_shifts,
            "rebuild_s": round(rebuild_s, 1),
            **boards,
        }
        if cold:
            result.update(
                {
                    "history_shifts_per_request": shifts,
                    "history_source": source,
                    "history_cold": {
                        "requests": len(cold),
                        "p50_ms": percentile_ms(cold, 50),
                        "p99_ms": percentile_ms(cold, 99),
                    },
                    "history_warm": {
                        "requests": len(warm),
                        "p50_ms": percentile_ms(warm, 50),
                        "p99_ms": percentile_ms(warm, 99),
                    },
                }
            )
        result.update({"load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()})
        if args.json:
            print(json.dumps(result))
        else:
            for key, value in result.items():
                print(f"{key:>26}: {value}")
    finally:
        if served is not None:
            served.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
