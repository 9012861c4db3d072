"""``qorgau assess``: assess a workplace shift from a CSV of readings (I/O edge only)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from _csv import Reader
    from collections.abc import Iterator

    from analytics import Norms, SensorSeries, WorkplaceAssessment

COLUMNS = ("time", "sensor", "quantity", "unit", "substance", "value")


class CsvError(Exception):
    """A CSV problem, with the line number in the message."""


def register(subparsers: Any) -> None:
    """Add the ``assess`` subcommand."""
    p = subparsers.add_parser(
        "assess",
        help="assess a workplace shift from a CSV of readings",
        description=(
            "Compute per-sensor exposure (LEX,8h, A(8), TWA, 15-min max), classes of working "
            "conditions, the workplace class and the harmfulness index В from a CSV with the "
            "header time,sensor,quantity,unit,substance,value. time is ISO 8601 with a zone; "
            "quantity is noise_laeq, noise_lcpeak, vib_hav, vib_wbv_x, vib_wbv_y, vib_wbv_z, gas "
            "or dust. 8-h values (LEX,8h, A(8), TWA) sum every reading of the file and divide "
            "by 8 h. The declared shift starts at the first sample (or --shift-start) and lasts "
            "--shift-hours: coverage is the part of it with readings, and the *_projected values "
            "fill its unmeasured time at the measured rate. An incomplete shift is classed on "
            "the larger of the two (see docs/exposure.md, Conventions)."
        ),
    )
    p.add_argument("--csv", required=True, type=Path, help="readings CSV file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--shift-hours",
        type=float,
        default=8.0,
        help="declared shift length that coverage and projection count against (default 8)",
    )
    p.add_argument(
        "--shift-start",
        default=None,
        help="ISO 8601 shift start with zone (default: the first sample of the file)",
    )
    p.add_argument("--norms", default="default", help="norms profile name or TOML path")
    p.add_argument(
        "--max-gap-s",
        type=float,
        default=None,
        help="longest sampling interval still counted as measured (default: from the profile)",
    )
    p.add_argument(
        "--factor",
        action="append",
        default=[],
        metavar="NAME=CLASS",
        help="class of an unmeasured factor, e.g. microclimate=3.1 (repeatable)",
    )
    p.set_defaults(handler=handle)


def _parse_time(text: str, line: int) -> datetime:
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CsvError(
            f"line {line}: time {text!r} is not ISO 8601 (e.g. 2025-03-01T08:00:00+05:00)"
        ) from None
    if t.tzinfo is None:
        raise CsvError(f"line {line}: time {text!r} has no zone; add +05:00 or Z")
    return t


def _decode(path: Path) -> str:
    """The file's text, or a CsvError naming the line of the first byte that is not UTF-8."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CsvError(f"cannot read {path}: {exc.strerror}") from None
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise CsvError(
            f"line {line}: a NUL byte: this is a binary file (a spreadsheet or an archive?), "
            "not a CSV; export it as 'CSV UTF-8'"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CsvError(
            f"line {line}: byte 0x{raw[exc.start]:02x} is not UTF-8 text; save the file as "
            "'CSV UTF-8' (Excel: File > Save As > CSV UTF-8)"
        ) from None


def _dialect(header_line: str) -> tuple[str, bool]:
    """Delimiter of the header, and whether values may use a decimal comma.

    Comma-separated files take decimal points only; semicolon- or tab-separated ones (what Excel
    writes in a Russian or Kazakh locale) may also write ``83,5`` for 83.5.
    """
    for delimiter in (",", ";", "\t"):
        names = [c.strip().lower() for c in header_line.split(delimiter)]
        if all(c in names for c in COLUMNS):
            return delimiter, delimiter != ","
    return ",", False


def _number(text: str, decimal_comma: bool, line: int) -> float:
    raw = text.strip()
    if decimal_comma and raw.count(",") == 1 and "." not in raw:
        raw = raw.replace(",", ".")
    try:
        return float(raw)
    except ValueError:
        hint = " (use a decimal point, or separate fields with ';')" if "," in raw else ""
        raise CsvError(f"line {line}: value {text!r} is not a number{hint}") from None


class _Reading(NamedTuple):
    """One row of the CSV, parsed and checked on its own."""

    sensor: str
    quantity: str
    substance: str  # "" when none
    unit: str
    time: datetime
    value: float


# Per (sensor, quantity, substance): its unit, and its readings by time as (value, line).
_Rows = dict[tuple[str, str, str], tuple[str, dict[datetime, tuple[float, int]]]]


def read_series(
    path: Path, shift_start: datetime | None, norms: Norms | None = None
) -> tuple[list[SensorSeries], datetime]:
    """Parse the CSV into per-sensor series with times in seconds from the shift start.

    Every problem is a :class:`CsvError` naming the line and the fix: text that is not UTF-8 or
    a binary file, a row with more or fewer fields than the header, a value that is not a
    number or lies outside the profile's physical range for its quantity, two different values
    of one sensor at one time. Identical repeated rows (an export run twice) are kept once.
    """
    text = _decode(path)
    delimiter, decimal_comma = _dialect(text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    col, width = _header_columns(reader)
    rows: _Rows = {}
    ranges: dict[tuple[str, str, str], tuple[float, float]] = {}
    first: datetime | None = None
    for line, rec in _records(reader):
        if len(rec) != width:
            raise _field_count_error(line, len(rec), width, delimiter)
        reading = _parse_reading(rec, col, decimal_comma, line)
        _check_range(reading, _range(norms, ranges, reading, line), line)
        _add(rows, reading, line)
        t = reading.time
        first = t if first is None or t < first else first
    if not rows or first is None:
        raise CsvError("the CSV has no readings")
    origin = shift_start or first
    return _series(rows, origin), origin


def _header_columns(reader: Reader) -> tuple[dict[str, int], int]:
    """Where each of ``COLUMNS`` is in the header, and how many fields the header has."""
    try:
        header = [c.strip().lower() for c in next(reader, [])]
    except csv.Error as exc:
        raise CsvError(f"line 1: {exc}") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise CsvError(
            f"line 1: missing column(s) {', '.join(missing)}; the header must be "
            + ",".join(COLUMNS)
            + " (separated by ',' or ';')"
        )
    return {c: header.index(c) for c in COLUMNS}, len(header)


def _records(reader: Reader) -> Iterator[tuple[int, list[str]]]:
    """The non-blank records with their line numbers (a quoting error is a CsvError)."""
    while True:
        try:
            rec = next(reader, None)
        except csv.Error as exc:
            raise CsvError(f"line {reader.line_num}: {exc}") from None
        if rec is None:
            return
        if rec and any(f.strip() for f in rec):
            yield reader.line_num, rec


def _field_count_error(line: int, fields: int, width: int, delimiter: str) -> CsvError:
    return CsvError(
        f"line {line}: {fields} fields, the header has {width}; "
        + (
            f"remove the extra field(s) or quote a value that contains {delimiter!r}"
            if fields > width
            else "fill in the missing field(s) (an empty substance is written as ,,)"
        )
    )


def _parse_reading(rec: list[str], col: dict[str, int], decimal_comma: bool, line: int) -> _Reading:
    from analytics import InputError, normalize_unit

    q = rec[col["quantity"]].strip()
    try:
        unit = normalize_unit(q, rec[col["unit"]])
    except InputError as exc:
        raise CsvError(f"line {line}: {exc}") from None
    t = _parse_time(rec[col["time"]], line)
    v = _number(rec[col["value"]], decimal_comma, line)
    sub = rec[col["substance"]].strip()
    if q in ("gas", "dust") and not sub:
        raise CsvError(f"line {line}: a {q} reading needs a substance (e.g. CO)")
    sensor = rec[col["sensor"]].strip()
    if not sensor:
        raise CsvError(f"line {line}: empty sensor id")
    return _Reading(sensor, q, sub, unit, t, v)


def _range(
    norms: Norms | None,
    ranges: dict[tuple[str, str, str], tuple[float, float]],
    r: _Reading,
    line: int,
) -> tuple[float, float]:
    """The profile's physical range of the reading's sensor, looked up once per sensor;
    unbounded without a profile."""
    from analytics import AnalyticsError
    from analytics.assess import is_alarm_channel, physical_range

    key = (r.sensor, r.quantity, r.substance)
    if norms is not None and key not in ranges:
        try:
            measured = r.quantity in ("gas", "dust") and not is_alarm_channel(r.quantity, r.unit)
            found = norms.substance(r.substance) if measured else None
            ranges[key] = physical_range(norms, r.quantity, r.unit, found)
        except AnalyticsError as exc:
            raise CsvError(f"line {line}: {exc}") from None
    return ranges.get(key, (-math.inf, math.inf))


def _check_range(r: _Reading, bounds: tuple[float, float], line: int) -> None:
    q, v = r.quantity, r.value
    lo, hi = bounds
    if v < 0 and q not in ("noise_laeq", "noise_lcpeak"):
        what = "concentration" if q in ("gas", "dust") else "acceleration"
        raise CsvError(f"line {line}: negative {what} {v:g}; fix or drop the reading")
    if not (lo <= v <= hi) or not math.isfinite(v):
        raise CsvError(
            f"line {line}: {q} value {v:g} {r.unit} is outside the physical range "
            f"[{lo:g}, {hi:g}] {r.unit}: a sensor or unit fault; fix or drop the reading"
        )


def _add(rows: _Rows, r: _Reading, line: int) -> None:
    """Keep the reading under its sensor: one unit per sensor, one value per time (an identical
    repeat is kept once)."""
    key = (r.sensor, r.quantity, r.substance)
    if key not in rows:
        rows[key] = (r.unit, {})
    elif rows[key][0] != r.unit:
        raise CsvError(
            f"line {line}: sensor {r.sensor!r} {r.quantity} mixes units {rows[key][0]} and "
            f"{r.unit}; convert to one unit"
        )
    seen = rows[key][1]
    t, v = r.time, r.value
    if t in seen and seen[t][0] != v:
        raise CsvError(
            f"line {line}: sensor {r.sensor!r} has two different readings at "
            f"{t.isoformat()} ({seen[t][0]:g} on line {seen[t][1]}, {v:g} here); "
            "keep the right one"
        )
    seen.setdefault(t, (v, line))


def _series(rows: _Rows, origin: datetime) -> list[SensorSeries]:
    """Each sensor's readings in time order, times in seconds from ``origin``."""
    import numpy as np

    from analytics import SensorSeries

    series = []
    for (sensor, q, sub), (unit, by_time) in rows.items():
        times = sorted(by_time)
        t_arr = np.array([(t - origin).total_seconds() for t in times], dtype=np.float64)
        v_arr = np.array([by_time[t][0] for t in times], dtype=np.float64)
        series.append(SensorSeries(sensor, q, unit, sub or None, t_arr, v_arr))
    return series


def _table(result: WorkplaceAssessment) -> str:
    units = {
        "laeq_db": "dB(A)",
        "lex8h_db": "dB(A)",
        "lamax_db": "dB(A)",
        "dose_pct": "%",
        "lcpeak_db": "dB(C)",
        "a8_m_s2": "m/s²",
        "a8_db": "dB",
        "a_rms_m_s2": "m/s²",
        "twa8h_mg_m3": "mg/m³",
        "mean_mg_m3": "mg/m³",
        "max15min_mg_m3": "mg/m³",
        "max_mg_m3": "mg/m³",
        "coverage": "",
        "k_twa": "",
        "k_max15": "",
        "min_pct_vol": "% vol",
        "max_pct_vol": "% vol",
        "mean_pct_vol": "% vol",
        "min_pct_lel": "% LEL",
        "max_pct_lel": "% LEL",
        "mean_pct_lel": "% LEL",
        "lex8h_projected_db": "dB(A)",
        "dose_projected_pct": "%",
        "a8_projected_m_s2": "m/s²",
        "a8_projected_db": "dB",
        "twa8h_projected_mg_m3": "mg/m³",
        "k_twa_measured": "",
    }
    out = [f"{'sensor':<16} {'quantity':<13} {'subst.':<8} {'class':<5} metrics"]
    for s in result.sensors:
        parts = []
        for k, v in s.metrics.items():
            if k == "coverage":
                parts.append(f"coverage {v:.0%}")
            elif k in ("measured_s", "unmeasured_s"):
                parts.append(f"{k[:-2]} {v / 3600.0:.4g} h")
            else:
                parts.append(f"{k} {v:.4g} {units.get(k, '')}".rstrip())
        cls = "-" if s.working_class is None else s.working_class.value
        flag = "  [insufficient data]" if s.insufficient_data else ""
        out.append(
            f"{s.sensor:<16} {s.quantity:<13} {s.substance or '':<8} {cls:<5} "
            + "; ".join(parts)
            + flag
        )
    out.append("")
    out.append("factors:")
    for f in result.factors:
        out.append(
            f"  {f.factor:<28} class {f.working_class.value:<4} В {f.b} "
            f"({f.b_continuous:.2f})  {f.basis}"
        )
    wc = "-" if result.working_class is None else result.working_class.value
    out.append("")
    out.append(f"workplace class {wc}, В = {result.b}, continuous В = {result.b_continuous:.2f}")
    out.append(result.explanation)
    return "\n".join(out)


def handle(args: argparse.Namespace) -> int:
    """Run the assessment; exit 0, or 2 with a message on stderr for bad input."""
    from analytics import AnalyticsError, assess_workplace, load_norms

    try:
        start = _parse_time(args.shift_start, 0) if args.shift_start else None
        if not args.shift_hours > 0:
            raise CsvError("--shift-hours must be positive")
        entered = {}
        for item in args.factor:
            name, sep, cls = item.partition("=")
            if not sep or not name.strip():
                raise CsvError(f"--factor {item!r}: use NAME=CLASS, e.g. microclimate=3.1")
            entered[name.strip()] = cls.strip()
        norms = load_norms(args.norms)
        series, _ = read_series(args.csv, start, norms)
        result = assess_workplace(
            series,
            norms,
            shift_duration_s=args.shift_hours * 3600.0,
            max_gap_s=args.max_gap_s,
            entered_factors=entered,
        )
    except CsvError as exc:
        print(f"qorgau assess: {args.csv}: {exc}", file=sys.stderr)
        return 2
    except AnalyticsError as exc:
        print(f"qorgau assess: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(_table(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m qorgau.commands.assess``)."""
    parser = argparse.ArgumentParser(prog="qorgau")
    register(parser.add_subparsers())
    args = parser.parse_args(["assess", *(sys.argv[1:] if argv is None else argv)])
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
