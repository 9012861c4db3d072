"""Benchmark of the stored shift assessments: the national map over 10,000 workplaces, one
workplace's ПР, the lag from a reading's commit to its stored shift, the rebuild rate, and
whether every surface shows the same numbers.

Starts its own PostgreSQL (``qorgau.localservices.LocalPostgres``, plain backend) and writes its
data directly, as ``bench/api.py`` does:

1. ``--rebuild-workplaces`` (1,000) workplaces of 10 sensors (noise, gases, dust, vibration)
   with 30 days of hourly rollups (1 Hz instruments, one 08:00 shift a day in Asia/Almaty),
   then ``qorgau assessments rebuild`` over them (the same function) is timed:
   ``rebuild_shifts_per_s``.
2. ``--map-workplaces`` (10,000) workplaces in all: the others get the stored shifts of the
   first ones, copied in SQL (the map reads the stored table only, whatever wrote it), then
   VACUUM ANALYZE (a settled database, as autovacuum keeps a deployed one), and the
   assessors' indicators. ``GET /api/v1/map`` is timed cold (first request) and warm:
   ``map_p99_ms`` over all requests, and ``GET /api/v1/workplaces/{id}/risk`` for random
   workplaces: ``risk_p99_ms``.
3. The assessment service runs (``QORGAU_ASSESS_INTERVAL_S``, default 5 s) while readings of the
   running shift are committed for random workplaces every ``--lag-every`` seconds; each
   commit's lag is the time until the stored shift reflects it: ``lag_p99_s``.
4. For ``--check`` workplaces the worst shift of the period is read from the map (the
   enterprise's mean ПР recomputed from the export rows), the workplace export, ``/risk``,
   ``/exposure`` of that shift and the report model: ``mismatches`` counts the shifts on which
   any of them differ.

Prints one JSON object with ``--json``. Figures only; asserts nothing.

    python bench/assessments.py [--map-workplaces 10000] [--rebuild-workplaces 1000]
                                [--days 30] [--requests 50] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

# This file is named like a module it measures: keep its own folder off the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))  # for bench.api

import httpx  # noqa: E402

from analytics import load_norms  # noqa: E402
from analytics.alerts import load_alert_norms  # noqa: E402
from api.app import create_app  # noqa: E402
from api.settings import ApiSettings  # noqa: E402
from application.assessment_service import AssessmentService, rebuild_in_processes  # noqa: E402
from application.assessments import schedule_of  # noqa: E402
from application.reports import shift_report  # noqa: E402
from application.schedule import current_shift, shift  # noqa: E402
from application.settings import AssessmentSettings  # noqa: E402
from dashboards.reports import render as render_report  # noqa: E402
from qorgau.localservices import LocalPostgres, scratch_dir  # noqa: E402
from store import catalog  # noqa: E402
from store.auth import Role, create_token  # noqa: E402
from store.catalog import Scope  # noqa: E402
from store.connection import connect_async  # noqa: E402
from store.migrate import upgrade  # noqa: E402
from store.readings import ReadingBlock, ensure_partitions  # noqa: E402
from store.writes import write_readings  # noqa: E402

SCHEMA = "bench"
PER_ENTERPRISE = 100
SENSORS = 10
LATE_S = 28 * 86_400.0


def percentile_ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(samples) * 1000.0, q)), 2)


async def _registry_copies(url: str, total: int, first: int) -> None:
    """Workplaces ``first..total-1`` (100 to an enterprise) with indicators and, for each, the
    stored shifts of workplace ``k % first``."""
    async with await connect_async(url, SCHEMA, autocommit=True) as conn:
        await conn.execute(
            """
            INSERT INTO enterprises (code, name, region, activity_risk_class)
            SELECT 'copy-' || e, 'Copied enterprise ' || e, 'Karaganda', 14
            FROM generate_series(%s::int / 100, (%s::int - 1) / 100) AS e
            ON CONFLICT DO NOTHING
            """,
            [first, total],
        )
        await conn.execute(
            """
            INSERT INTO workplaces (enterprise_id, code, name, headcount)
            SELECT e.id, 'wp-' || k, 'Workplace ' || k, 1 + k %% 7
            FROM generate_series(%s::int, %s::int - 1) AS k
            JOIN enterprises e ON e.code = 'copy-' || (k / 100)
            """,
            [first, total],
        )
        await conn.execute(
            """
            WITH w AS (SELECT id, substring(code FROM 4)::int AS k FROM workplaces
                       WHERE code LIKE 'wp-%%')
            INSERT INTO indicator_assessments (workplace_id, indicator, value, assessed_by,
                                               assessed_on)
            SELECT w.id, i.name, 1 + (w.k + i.n) %% 5, 'bench', current_date - 90
            FROM w CROSS JOIN (VALUES ('T', 0), ('Ob', 1), ('SIZ', 2), ('Z', 3)) AS i(name, n)
            WHERE w.k >= %s
            """,
            [first],
        )
        await conn.execute(
            """
            WITH w AS (SELECT id, substring(code FROM 4)::int AS k FROM workplaces
                       WHERE code LIKE 'wp-%%'),
                 src AS (SELECT w.k, a.* FROM shift_assessments a JOIN w ON w.id = a.workplace_id)
            INSERT INTO shift_assessments
            SELECT dst.id, src.shift_start, src.shift_end, src.local_day, src.shift_number,
                   src.timezone, src.status, src.working_class, src.b, src.b_continuous,
                   src.coverage_min, src.insufficient_data, src.deciding_factors, src.detail,
                   src.norms_profile,
                   src.norms_version, src.inputs_digest, src.computed_at
            FROM w AS dst JOIN src ON src.k = dst.k %% %s
            WHERE dst.k >= %s
            """,
            [first, first],
        )
        # A settled database, as autovacuum keeps a deployed one: measured right after 270,000
        # inserts, the map would time autovacuum's first pass over them instead.
        await conn.execute("VACUUM ANALYZE")


def _rebuild(url: str, jobs: int) -> tuple[int, int, float]:
    """``qorgau assessments rebuild`` (the same function) over everything written."""
    settings = AssessmentSettings(database_url=url, database_schema=SCHEMA)
    started = time.perf_counter()
    workplaces, shifts = rebuild_in_processes(settings, since=None, jobs=jobs)
    return workplaces, shifts, time.perf_counter() - started


class _Service:
    """The assessment service in a thread of its own, as ``qorgau assessments run``."""

    def __init__(self, url: str) -> None:
        settings = AssessmentSettings(database_url=url, database_schema=SCHEMA)
        self.service = AssessmentService(settings, load_norms(settings.norms_profile))
        self.loop = asyncio.new_event_loop()
        self.stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def go() -> None:
            self.stop = asyncio.Event()
            await self.service.run(self.stop)

        self.loop.run_until_complete(go())

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        if self.stop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)


async def _noise_samples(conn: Any, wid: int, start: datetime, sensor: int) -> int:
    cur = await conn.execute(
        "SELECT coalesce(max((s ->> 'samples')::bigint), 0) FROM shift_assessments a, "
        "jsonb_array_elements(a.detail -> 'sensors') s "
        "WHERE a.workplace_id = %s AND a.shift_start = %s AND (s ->> 'sensor_id')::int = %s",
        [wid, start, sensor],
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _lag(url: str, samples: int, every_s: float, rng: random.Random) -> list[float]:
    """Commit a minute of 1 Hz readings of the current shift for a random workplace, then wait
    until its stored shift counts them."""
    lags: list[float] = []
    async with await connect_async(url, SCHEMA, autocommit=True) as conn:
        by_id = {w["id"]: w for w in await catalog.workplaces_of(conn, Scope())}
        cur = await conn.execute(
            "SELECT DISTINCT ON (workplace_id) workplace_id, id FROM sensors "
            "WHERE quantity = 'noise_laeq' ORDER BY workplace_id, id"
        )
        noise = dict(await cur.fetchall())
        for _ in range(samples):
            wid = rng.choice(sorted(noise))
            now = datetime.now(UTC)
            s = current_shift(schedule_of(by_id[wid]), now)
            # Between shifts: the minute before the latest shift ended instead.
            at = min(now, s.end).replace(microsecond=0) - timedelta(seconds=61)
            before = await _noise_samples(conn, wid, s.start, noise[wid])
            rows = [(at + timedelta(seconds=i), noise[wid], 80.0 + (i % 7)) for i in range(60)]
            await ensure_partitions(conn, rows[0][0], rows[-1][0])
            async with conn.transaction():
                await write_readings(conn, ReadingBlock.from_rows(rows), backend="plain")
            committed = time.monotonic()
            while await _noise_samples(conn, wid, s.start, noise[wid]) < before + 60:
                if time.monotonic() - committed > 300:
                    break
                await asyncio.sleep(0.1)
            lags.append(time.monotonic() - committed)
            await asyncio.sleep(max(every_s - (time.monotonic() - committed), 0.0))
    return lags


async def _mismatches(
    url: str, base: str, bearer: str, params: dict[str, str], check: int, rng: random.Random
) -> tuple[int, int]:
    """Shifts on which the map, the workplace export, /risk, /exposure and the report model
    disagree; returns (checked, mismatches)."""
    norms = load_norms("default")
    alert_norms = load_alert_norms("default")
    bad = 0
    checked = 0
    async with (
        httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {bearer}"}, timeout=600
        ) as http,
        await connect_async(url, SCHEMA, autocommit=True) as conn,
    ):
        export = (await http.get("/api/v1/export/workplaces", params=params)).json()["rows"]
        mapped = (await http.get("/api/v1/map", params=params)).json()["enterprises"]
        board = {e["enterprise"]: e for e in mapped}
        rows = {r["workplace_code"]: r for r in export}
        workplaces = await catalog.workplaces_of(conn, Scope())
        for w in rng.sample(workplaces, min(check, len(workplaces))):
            row = rows[w["code"]]
            if row["b"] is None:
                continue
            checked += 1
            risk = (await http.get(f"/api/v1/workplaces/{w['id']}/risk", params=params)).json()
            day = date.fromisoformat(row["b_date"])
            exposure = (
                await http.get(
                    f"/api/v1/workplaces/{w['id']}/exposure",
                    params={"date": row["b_date"], "shift": row["b_shift"]},
                )
            ).json()
            enterprise = await catalog.require(conn, "enterprise", w["enterprise_id"], Scope())
            chosen = shift(schedule_of(w), day, int(row["b_shift"]))
            report = await shift_report(
                conn, norms, alert_norms, w, enterprise, chosen, late_s=LATE_S
            )
            members = [
                (r["pr"], r["headcount"])
                for r in export
                if r["enterprise_code"] == w["enterprise"] and r["pr"] is not None
            ]
            weight = sum(h for _, h in members)
            mean = sum(p * h for p, h in members) / weight if weight else None
            on_map = board[w["enterprise"]]["mean_pr"]
            same = (
                row["b"] == risk["B"] == exposure["B"] == report.b
                and row["b_class"]
                == risk["B_source"]["working_class"]
                == exposure["working_class"]
                == report.working_class
                and risk["B_source"]["B_continuous"]
                == exposure["B_continuous"]
                == report.b_continuous
                and row["pr"] == round(risk["pr"], 6)
                and row["b_not_enough_data"]
                == exposure["not_enough_data"]
                == report.insufficient_data
                and mean is not None
                and on_map is not None
                and abs(mean - on_map) < 1e-5
            )
            bad += not same
    return checked, bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--map-workplaces", type=int, default=10_000)
    parser.add_argument("--rebuild-workplaces", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=50, help="map and /risk requests each")
    parser.add_argument("--lag-samples", type=int, default=20)
    parser.add_argument("--lag-every", type=float, default=2.0, help="seconds between commits")
    parser.add_argument("--check", type=int, default=200, help="workplaces checked for mismatches")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="rebuild processes (one a core)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from bench.api import ThreadedApi, build

    folder = scratch_dir("qorgau-bench-assessments-")
    pg = LocalPostgres(folder / "data", durable=False)
    pg.start()
    served: ThreadedApi | None = None
    service: _Service | None = None
    rng = random.Random(12)
    try:
        upgrade(pg.url, SCHEMA, timescale="off")
        last = datetime.now(UTC).date() - timedelta(days=1)
        t0 = time.perf_counter()
        asyncio.run(
            build(pg.url, args.rebuild_workplaces, PER_ENTERPRISE, SENSORS, args.days, last)
        )
        build_s = time.perf_counter() - t0
        workplaces, shifts, rebuild_s = _rebuild(pg.url, args.jobs)
        t0 = time.perf_counter()
        asyncio.run(_registry_copies(pg.url, args.map_workplaces, args.rebuild_workplaces))
        copy_s = time.perf_counter() - t0

        async def token() -> str:
            async with await connect_async(pg.url, SCHEMA, autocommit=True) as conn:
                made, _ = await create_token(conn, name="bench", role=Role.ADMIN)
                return made

        bearer = asyncio.run(token())
        settings = ApiSettings(
            database_url=pg.url,
            database_schema=SCHEMA,
            api_alert_stream=False,
            api_live_stream=False,
        )
        served = ThreadedApi(create_app(settings, render_report=render_report)).start()
        port = served.port
        first = last - timedelta(days=args.days - 1)
        params = {"from": first.isoformat(), "to": last.isoformat()}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=600,
        ) as http:
            map_s: list[float] = []
            body = b""
            for _ in range(args.requests):
                t = time.perf_counter()
                response = http.get("/api/v1/map", params=params)
                map_s.append(time.perf_counter() - t)
                response.raise_for_status()
                body = response.content
            mapped = json.loads(body)
            ids = list(range(1, args.map_workplaces + 1))
            risk_s: list[float] = []
            for _ in range(args.requests):
                wid = rng.choice(ids)
                t = time.perf_counter()
                response = http.get(f"/api/v1/workplaces/{wid}/risk", params=params)
                risk_s.append(time.perf_counter() - t)
                if response.status_code not in (200, 409):
                    response.raise_for_status()
        checked, mismatches = asyncio.run(
            _mismatches(pg.url, f"http://127.0.0.1:{port}", bearer, params, args.check, rng)
        )
        service = _Service(pg.url)
        service.start()
        lags = asyncio.run(_lag(pg.url, args.lag_samples, args.lag_every, rng))
        scored = sum(len(e["unscored"]) == 0 for e in mapped["enterprises"])
        result: dict[str, Any] = {
            "bench": "stored shift assessments: map, /risk, lag, rebuild, agreement",
            "backend": "plain PostgreSQL",
            "map_workplaces": args.map_workplaces,
            "map_enterprises": len(mapped["enterprises"]),
            "map_enterprises_fully_scored": scored,
            "map_cold_ms": round(map_s[0] * 1000.0, 1),
            "map_warm_p50_ms": percentile_ms(map_s[1:], 50) if len(map_s) > 1 else None,
            "map_p99_ms": percentile_ms(map_s, 99),
            "risk_p50_ms": percentile_ms(risk_s, 50),
            "risk_p99_ms": percentile_ms(risk_s, 99),
            "lag_samples": len(lags),
            "lag_p50_s": round(float(np.percentile(lags, 50)), 2),
            "lag_p99_s": round(float(np.percentile(lags, 99)), 2),
            "assess_interval_s": service.service.settings.assess_interval_s,
            "rebuild_workplaces": workplaces,
            "rebuild_jobs": args.jobs,
            "rebuild_days": args.days,
            "rebuild_shifts": shifts,
            "rebuild_s": round(rebuild_s, 2),
            "rebuild_shifts_per_s": round(shifts / rebuild_s, 1) if rebuild_s > 0 else None,
            "mismatch_shifts_checked": checked,
            "mismatches": mismatches,
            "data": f"{args.rebuild_workplaces} workplaces × {SENSORS} sensors of hourly rollups "
            f"generated directly; the other {args.map_workplaces - args.rebuild_workplaces} "
            "workplaces' stored shifts copied in SQL",
            "build_s": round(build_s, 1),
            "copy_s": round(copy_s, 1),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
        }
        if args.json:
            print(json.dumps(result))
        else:
            for key, value in result.items():
                print(f"{key:>30}: {value}")
    finally:
        if service is not None:
            service.close()
        if served is not None:
            served.stop()
        with contextlib.suppress(Exception):
            pg.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
