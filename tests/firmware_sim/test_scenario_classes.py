"""A simulated shift of each built-in scenario, exported as CSV and assessed by the exposure
core (`qorgau sim --export-csv`, then `qorgau assess --csv --json`), lands in the classes of
working conditions documented in README.md and docs/edge.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware_sim.scenario import load_scenario
from qorgau.cli import main

# scenario → (shift start, {workplace: (workplace class, {factor: class})})
EXPECTED: dict[str, tuple[str, dict[str, tuple[str, dict[str, str]]]]] = {
    "mine": (
        "2026-11-23T08:00:00+05:00",
        {
            "longwall": (
                "3.2",
                {
                    "noise": "3.2",
                    "dust:silica_10_70": "3.1",
                    "chemical:CO": "2",
                    "chemical:H2S": "2",
                },
            ),
            "heading": (
                "3.4",
                {
                    "noise": "3.3",
                    "vibration_hand_arm": "3.2",
                    "chemical:CO": "3.1",
                    "chemical:NO2": "3.1",
                    "dust:silica_10_70": "3.1",
                },
            ),
            "haulage": (
                "3.2",
                {
                    "noise": "3.2",
                    "vibration_whole_body": "3.1",
                    "chemical:CO": "2",
                    "chemical:NO2": "2",
                },
            ),
            "dispatch": ("2", {"noise": "2", "chemical:CO": "2"}),
        },
    ),
    "foundry": (
        "2026-11-23T07:00:00+05:00",
        {
            "melting": ("3.2", {"noise": "3.2", "chemical:CO": "3.1", "chemical:SO2": "2"}),
            "shakeout": ("3.3", {"noise": "3.3", "dust:silica_gt70": "3.1"}),
            "fettling": (
                "3.3",
                {"noise": "3.2", "vibration_hand_arm": "3.2", "dust:silica_10_70": "2"},
            ),
            "crane": ("2", {"noise": "2", "vibration_whole_body": "2", "chemical:CO": "2"}),
        },
    ),
    "construction": (
        "2026-11-23T08:00:00+05:00",
        {
            "demolition": (
                "3.4",
                {"noise": "3.3", "vibration_hand_arm": "3.3", "dust:silica_10_70": "3.1"},
            ),
            "earthworks": ("3.1", {"vibration_whole_body": "3.1", "noise": "2"}),
            "welding": ("3.2", {"noise": "3.2", "chemical:CO": "2", "chemical:NO2": "2"}),
            "finishing": ("2", {"noise": "2", "dust:silica_2_10": "2"}),
        },
    ),
}


@pytest.mark.slow  # a whole simulated shift per scenario
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_simulated_shift_lands_in_the_documented_classes(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start, workplaces = EXPECTED[name]
    scenario = load_scenario(name)
    pattern = str(tmp_path / "{workplace}.csv")
    assert main(["sim", "--scenario", name, "--start", start, "--export-csv", pattern]) == 0
    capsys.readouterr()
    shift_hours = str(scenario.shifts.length_s / 3600)
    for workplace, (expected_class, expected_factors) in workplaces.items():
        csv_file = pattern.replace("{workplace}", workplace)
        assert main(["assess", "--csv", csv_file, "--json", "--shift-hours", shift_hours]) == 0
        result = json.loads(capsys.readouterr().out)["workplace"]
        factors = {f["factor"]: f["class"] for f in result["factors"]}
        assert (result["class"], factors) == (expected_class, expected_factors), workplace
        assert not result["insufficient_data"]


@pytest.mark.slow  # a whole simulated shift
def test_the_mine_longwall_reports_oxygen_and_methane_through_their_first_alarms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The longwall monitor's four-gas channels: the mid-shift outburst takes methane above its
    first alarm and oxygen below its first low alarm; both are reported, neither is classed."""
    from analytics.alerts import load_alert_norms

    alarms = load_alert_norms()
    start, _ = EXPECTED["mine"]
    pattern = str(tmp_path / "{workplace}.csv")
    assert main(["sim", "--scenario", "mine", "--start", start, "--export-csv", pattern]) == 0
    capsys.readouterr()
    assert main(["assess", "--csv", pattern.replace("{workplace}", "longwall"), "--json"]) == 0
    sensors = {s["sensor"]: s for s in json.loads(capsys.readouterr().out)["sensors"]}
    o2, ch4 = sensors["mine-01-lw-1.o2"], sensors["mine-01-lw-1.ch4"]
    assert o2["metrics"]["min_pct_vol"] <= alarms.oxygen_low_pct_vol[0]
    assert o2["metrics"]["min_pct_vol"] > alarms.oxygen_low_pct_vol[1]
    assert ch4["metrics"]["max_pct_vol"] >= alarms.methane_pct_vol[0]
    assert o2["class"] is None
    assert ch4["class"] is None
