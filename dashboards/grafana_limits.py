"""Units and limit lines of the Grafana panels, from the norms.

The limits a panel draws are the ones the live charts and the shift reports draw
(``application.running.limit_lines`` over ``analytics.alerts.thresholds_for``): LEX,8h action and
limit for noise, LCpeak and LAmax ceilings, hand-arm and whole-body A(8) limits each for its own
series, ПДК_сс and ПДК_max per substance in each unit a sensor may report, oxygen and methane
alarms. Grafana needs them as numbers inside the dashboard JSON (threshold steps drawn as dashed
lines); ``python -m dashboards.grafana_limits`` writes them into ``dashboards/grafana/*.json``
from the default norms profile, and ``tests/dashboards`` fails when a file and the norms
disagree. A profile with other limits: run the module with ``--norms PROFILE`` before
publishing.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analytics import AnalyticsError, Norms, load_norms
from analytics.alerts import AlertNorms, SubjectSpec, load_alert_norms, thresholds_for
from application.running import limit_lines

GRAFANA_DIR = Path(__file__).resolve().parent / "grafana"

# Grafana's unit ids for ours (sensors.unit, normalised).
GRAFANA_UNITS: Mapping[str, str] = {
    "dB(A)": "dB",
    "dB(C)": "dB",
    "m/s2": "accMS2",
    "mg/m3": "conmgm3",
    "ppm": "ppm",
    "%LEL": "percent",
    "%vol": "percent",
}
KIND_COLOURS: Mapping[str, str] = {
    "action": "orange",
    "limit": "red",
    "short_term": "purple",
    "ceiling": "dark-red",
    "floor": "blue",
}
GAS_UNITS = ("mg/m3", "ppm")
# Alarm channels: a substance measured in % vol or % LEL against alarm levels, not a ПДК.
ALARM_CHANNELS = (("O2", "%vol"), ("CH4", "%LEL"), ("CH4", "%vol"))
VIBRATION = ("vib_hav", "vib_wbv_x", "vib_wbv_y", "vib_wbv_z")
SHIFT_KINDS = ("action", "limit")  # what an 8-h value per shift is compared with


@dataclass(frozen=True, slots=True)
class Series:
    """Series of a panel that share a quantity, unit and substance: ``pattern`` (a regular
    expression on the series name, as the panel's SQL names them) picks them, or None for the
    panel's defaults; ``kinds`` limits the lines to those kinds."""

    quantity: str
    unit: str
    substance: str | None = None
    pattern: str | None = None
    kinds: tuple[str, ...] | None = None


def _gases(
    norms: Norms, name: str, kinds: tuple[str, ...] | None = None, units: Sequence[str] = GAS_UNITS
) -> Iterator[Series]:
    """Every gas of the profile in each of ``units``, and (for all kinds) the alarm channels;
    ``name`` is the series name pattern with ``{sub}`` and ``{unit}``."""
    for sub, found in norms.substances.items():
        if found.kind == "gas":
            for unit in units:
                yield Series(
                    "gas", unit, sub, name.format(sub=re.escape(sub), unit=re.escape(unit)), kinds
                )
    if kinds is None:
        for sub, unit in ALARM_CHANNELS:
            yield Series("gas", unit, sub, name.format(sub=re.escape(sub), unit=re.escape(unit)))


def _dusts(norms: Norms, name: str, kinds: tuple[str, ...] | None = None) -> Iterator[Series]:
    for sub, found in norms.substances.items():
        if found.kind == "dust":
            yield Series("dust", "mg/m3", sub, name.format(sub=re.escape(sub), unit="mg/m3"), kinds)


def _vibration(name: str, kinds: tuple[str, ...] | None = None) -> list[Series]:
    return [Series(q, "m/s2", None, name.format(quantity=q), kinds) for q in VIBRATION]


def panel_series(norms: Norms) -> dict[tuple[str, int], list[Series]]:
    """(dashboard uid, panel id) → what the panel shows, as its SQL names the series."""
    noise = [Series("noise_laeq", "dB(A)")]
    return {
        ("qorgau-workplace", 1): noise,
        ("qorgau-workplace", 2): [
            Series("noise_lcpeak", "dB(C)", pattern=r" LCpeak, dB\(C\)$"),
            Series("noise_lamax", "dB(A)", pattern=r" LAmax, dB\(A\)$"),
        ],
        ("qorgau-workplace", 3): list(_gases(norms, r"^{sub}, {unit} \(")),
        ("qorgau-workplace", 4): list(_dusts(norms, r"^{sub} \(")),
        ("qorgau-workplace", 5): _vibration(r" {quantity}$"),
        ("qorgau-workplace", 7): noise,
        ("qorgau-workplace", 10): [Series("noise_laeq", "dB(A)", kinds=SHIFT_KINDS)],
        ("qorgau-workplace", 11): _vibration(r" {quantity}$", SHIFT_KINDS),
        ("qorgau-workplace", 12): [
            # 8-h TWA is stored in mg/m³ whatever unit the sensor reports.
            *_gases(norms, r" {sub}$", ("limit",), units=("mg/m3",)),
            *_dusts(norms, r" {sub}$", ("limit",)),
        ],
        ("qorgau-enterprise", 3): noise,
        ("qorgau-enterprise", 4): [
            *_gases(norms, r"^{sub}, {unit}$"),
            *_dusts(norms, r"^{sub}, {unit}$"),
        ],
    }


def thresholds(series: Series, norms: Norms, alert_norms: AlertNorms) -> dict[str, Any] | None:
    """Grafana threshold steps at the series' limit lines, or None when the norms have none."""
    spec = SubjectSpec("", "", "", series.quantity, series.unit, series.substance)
    try:
        lines = limit_lines(thresholds_for(spec, norms, alert_norms), series.unit)
    except AnalyticsError:
        return None
    steps: dict[float, str] = {}
    for line in sorted(lines, key=lambda x: x.value):
        if series.kinds is None or line.kind in series.kinds:
            steps.setdefault(round(line.value, 4), KIND_COLOURS.get(line.kind, "red"))
    if not steps:
        return None
    return {
        "mode": "absolute",
        "steps": [{"color": "green", "value": None}]
        + [{"color": colour, "value": value} for value, colour in steps.items()],
    }


def _override(series: Series, steps: dict[str, Any] | None) -> dict[str, Any]:
    properties: list[dict[str, Any]] = [{"id": "unit", "value": GRAFANA_UNITS[series.unit]}]
    if steps is not None:
        properties += [
            {"id": "thresholds", "value": steps},
            {"id": "custom.thresholdsStyle", "value": {"mode": "dashed"}},
        ]
    return {"matcher": {"id": "byRegexp", "options": series.pattern}, "properties": properties}


def apply_limits(board: dict[str, Any], norms: Norms, alert_norms: AlertNorms) -> dict[str, Any]:
    """``board`` with the units and limit lines of the norms on every panel that has some."""
    wanted = panel_series(norms)
    for panel in board.get("panels", []):
        chosen = wanted.get((board.get("uid", ""), panel.get("id", -1)))
        if not chosen:
            continue
        config = panel.setdefault("fieldConfig", {"defaults": {}, "overrides": []})
        defaults = config.setdefault("defaults", {})
        custom = defaults.setdefault("custom", {}) if panel.get("type") == "timeseries" else None
        default = next((s for s in chosen if s.pattern is None), None)
        if default is not None:
            defaults["unit"] = GRAFANA_UNITS[default.unit]
            steps = thresholds(default, norms, alert_norms)
            if steps is not None:
                defaults["thresholds"] = steps
            if custom is not None:
                custom["thresholdsStyle"] = {"mode": "dashed" if steps else "off"}
        else:
            # Series with their own units and limits: the defaults draw none of them.
            defaults["unit"] = GRAFANA_UNITS[chosen[0].unit]
            defaults["thresholds"] = {
                "mode": "absolute",
                "steps": [{"color": "green", "value": None}],
            }
            if custom is not None:
                custom["thresholdsStyle"] = {"mode": "off"}
        config["overrides"] = [
            _override(s, thresholds(s, norms, alert_norms)) for s in chosen if s.pattern
        ]
    return board


def render_board(board: Mapping[str, Any]) -> str:
    """The JSON text as the files keep it."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def stale_files(norms: Norms, alert_norms: AlertNorms) -> list[Path]:
    """Dashboard files whose units or limit lines differ from what ``norms`` give."""
    stale = []
    for path in sorted(GRAFANA_DIR.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        if render_board(apply_limits(json.loads(text), norms, alert_norms)) != text:
            stale.append(path)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dashboards.grafana_limits",
        description="Write the units and limit lines of a norms profile into the Grafana "
        "dashboards of dashboards/grafana.",
    )
    parser.add_argument("--norms", default="default", help="norms profile name or TOML path")
    args = parser.parse_args(argv)
    norms, alert_norms = load_norms(args.norms), load_alert_norms(args.norms)
    for path in stale_files(norms, alert_norms):
        board = apply_limits(json.loads(path.read_text(encoding="utf-8")), norms, alert_norms)
        path.write_text(render_board(board), encoding="utf-8")
        print(f"updated {path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
