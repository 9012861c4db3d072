"""``qorgau report``: shift reports (PDF, CSV, Excel) straight from the database."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qorgau.runtime import settings_help

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from analytics import Norms
    from analytics.alerts import AlertNorms
    from api.settings import ApiSettings
    from application.schedule import Shift
    from dashboards.reports.language import Language
    from store.catalog import Row

# What the command reads of the API's settings: the database, the norms, and how late readings
# may still arrive (whether a shift is final).
READS = ("database_url", "database_schema", "norms_profile", "ingest_max_past_s")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from api.settings import ApiSettings
    from dashboards.reports.language import LANGUAGES
    from dashboards.reports.settings import ReportSettings

    parser = subparsers.add_parser(
        "report",
        help="shift reports of workplaces as PDF, CSV or Excel",
        description="Write the shift report of a workplace: per-sensor charts (PDF), metrics, "
        "classes of working conditions, В, ПР, the alerts of the shift, the instruments and "
        "their calibration, the method and norms applied, and a signature block. Several "
        "workplaces (--all-workplaces) or days (--to) give one file per shift in --out-dir, "
        "with a progress bar; shifts without readings get no file but are listed. The same "
        "report is served by GET /api/v1/workplaces/{id}/report.",
        epilog=settings_help(ApiSettings, only=READS)
        + "\n"
        + "\n".join(settings_help(ReportSettings).splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--workplace", help="workplace id, or its code (with --enterprise)")
    which.add_argument(
        "--all-workplaces", action="store_true", help="every workplace (of --enterprise)"
    )
    parser.add_argument("--enterprise", help="enterprise code")
    parser.add_argument(
        "--date", required=True, type=date.fromisoformat, help="local date of the shift"
    )
    parser.add_argument(
        "--to", type=date.fromisoformat, help="last date of a range (inclusive) [--date]"
    )
    parser.add_argument(
        "--shift", type=int, default=None, help="shift number of the day [every shift]"
    )
    parser.add_argument("--format", choices=("pdf", "csv", "xlsx"), default="pdf")
    parser.add_argument(
        "--wide",
        action="store_true",
        help="CSV: one row per sensor with a column per figure (default: one row per figure)",
    )
    parser.add_argument(
        "--lang",
        choices=LANGUAGES,
        default=None,
        help="language of the PDF and Excel texts: kk, ru or en [QORGAU_REPORT_LANGUAGE]",
    )
    parser.add_argument("--out", type=Path, help="file to write (one report only)")
    parser.add_argument(
        "--out-dir", type=Path, default=Path("."), help="folder for several reports [.]"
    )
    parser.set_defaults(handler=_run)


@dataclass(frozen=True)
class _Reporting:
    """What every report of a run is computed and written with."""

    settings: ApiSettings
    norms: Norms
    alert_norms: AlertNorms
    lang: Language


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from vocabulary.errors import QorgauError

    last = args.to or args.date
    if last < args.date:
        print("qorgau report: --to is before --date", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_reports(args, last))
    except QorgauError as exc:
        print(f"qorgau report: {exc}", file=sys.stderr)
        return 1


async def _reports(args: argparse.Namespace, last: date) -> int:
    """Write the reports due, then say what was written and which shifts had no readings;
    1 when no report was written."""
    from analytics import load_norms
    from analytics.alerts import load_alert_norms
    from api.settings import ApiSettings
    from dashboards.reports.settings import ReportSettings
    from qorgau.runtime import load_settings
    from store.connection import connect_async
    from vocabulary.errors import QorgauError

    settings = load_settings(ApiSettings)
    lang = args.lang or load_settings(ReportSettings).report_language
    reporting = _Reporting(
        settings,
        load_norms(settings.norms_profile),
        load_alert_norms(settings.norms_profile),
        lang,
    )
    conn = await connect_async(settings.database_url, settings.database_schema, autocommit=True)
    async with conn:
        jobs = _jobs(await _workplaces(conn, args), args, last)
        if args.out is not None and len(jobs) != 1:
            raise QorgauError(
                f"--out names one file but {len(jobs)} reports are due: use --out-dir"
            )
        if args.out is None:
            args.out_dir.mkdir(parents=True, exist_ok=True)
        written, without_readings = await _write_reports(conn, jobs, args, reporting)
    if len(jobs) > 1:
        print(f"{written} reports in {args.out_dir}")
    if without_readings:
        print(f"no readings, so no report: {len(without_readings)} shift(s)")
        for line in without_readings:
            print(f"  {line}")
    return 0 if written else 1


async def _workplaces(conn: AsyncConnection[Any], args: argparse.Namespace) -> list[Row]:
    """The workplaces asked for: all (of --enterprise), or the one --workplace names."""
    from store import catalog
    from store.catalog import Scope
    from vocabulary.errors import QorgauError

    rows = await catalog.workplaces_of(
        conn, Scope(), {"e.code": args.enterprise} if args.enterprise else None
    )
    if args.all_workplaces:
        return rows
    wanted = str(args.workplace)
    found = [w for w in rows if str(w["id"]) == wanted or w["code"] == wanted]
    if not found:
        raise QorgauError(
            f"no workplace {wanted!r}"
            + (f" in enterprise {args.enterprise!r}" if args.enterprise else "")
        )
    if len(found) > 1:
        raise QorgauError(
            f"workplace code {wanted!r} exists in several enterprises "
            f"({', '.join(w['enterprise'] for w in found)}): give --enterprise"
        )
    return found


def _jobs(workplaces: list[Row], args: argparse.Namespace, last: date) -> list[tuple[Row, Shift]]:
    """Each workplace's shifts from --date to ``last``: shift number --shift of each day, or
    every shift of the schedule."""
    from application.assessments import schedule_of
    from application.schedule import shift, shifts_between

    jobs: list[tuple[Row, Shift]] = []
    for w in workplaces:
        schedule = schedule_of(w)
        if args.shift is not None:
            day = args.date
            while day <= last:
                jobs.append((w, shift(schedule, day, args.shift)))
                day = date.fromordinal(day.toordinal() + 1)
        else:
            jobs.extend((w, s) for s in shifts_between(schedule, args.date, last))
    return jobs


async def _write_reports(
    conn: AsyncConnection[Any],
    jobs: list[tuple[Row, Shift]],
    args: argparse.Namespace,
    reporting: _Reporting,
) -> tuple[int, list[str]]:
    """Render and write each job's report (a progress bar when there are several); the number
    written, and the shifts that had no readings (no file)."""
    import asyncio
    import sys

    from tqdm import tqdm

    from application.reports import shift_report
    from dashboards.reports import render
    from store import catalog
    from store.catalog import Scope

    written = 0
    without_readings: list[str] = []
    with tqdm(
        total=len(jobs), unit="report", disable=len(jobs) < 2, file=sys.stderr, desc="shift reports"
    ) as progress:
        for w, s in jobs:
            enterprise = await catalog.require(conn, "enterprise", w["enterprise_id"], Scope())
            workplace = await catalog.require(conn, "workplace", w["id"], Scope())
            report = await shift_report(
                conn,
                reporting.norms,
                reporting.alert_norms,
                workplace,
                enterprise,
                s,
                late_s=reporting.settings.ingest_max_past_s,
            )
            progress.update()
            if not report.has_readings:
                without_readings.append(
                    f"{report.enterprise}/{report.workplace} {report.shift_date} "
                    f"shift {report.shift_number}"
                )
                continue
            body = await asyncio.to_thread(
                render, report, args.format, lang=reporting.lang, wide=args.wide
            )
            target = args.out or args.out_dir / f"{report.file_stem()}.{args.format}"
            target.write_bytes(body)
            written += 1
            if len(jobs) == 1:
                print(target)
    return written, without_readings
