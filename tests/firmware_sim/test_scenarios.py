"""Scenario files and schedules: the built-ins load, mistakes are named, shifts are found."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firmware_sim.export import HEADER, write_csv
from firmware_sim.scenario import BUILTIN, ScenarioError, load_faults, load_scenario
from firmware_sim.schedule import Shifts, parse_clock, parse_duration, parse_utc_offset

PLUS5 = parse_utc_offset("+05:00")


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_scenarios_load_with_devices_at_every_workplace(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.enterprise
    assert scenario.devices
    assert {d.workplace for d in scenario.devices} == set(scenario.workplaces)
    for spec in scenario.devices:
        device = scenario.build(spec.code, start=datetime(2026, 1, 1, tzinfo=UTC))
        assert all(c.sensor.startswith(f"{spec.code}.") for c in device.channels())


def test_shift_times_are_local_and_wrap_midnight() -> None:
    shifts = Shifts((parse_clock("22:00"),), 8 * 3600.0, PLUS5)
    at = datetime(2026, 11, 23, 23, 30, tzinfo=PLUS5).timestamp()
    assert shifts.shift_rel(at) == 5400.0
    after_midnight = datetime(2026, 11, 24, 5, 59, tzinfo=PLUS5).timestamp()
    assert shifts.shift_rel(after_midnight) == 7 * 3600.0 + 59 * 60
    assert shifts.shift_rel(datetime(2026, 11, 24, 6, 0, tzinfo=PLUS5).timestamp()) is None
    start, end = shifts.last_complete(datetime(2026, 11, 24, 7, 0, tzinfo=PLUS5))
    assert start == datetime(2026, 11, 23, 22, 0, tzinfo=PLUS5)
    assert end - start == timedelta(hours=8)
    start, _ = shifts.last_complete(datetime(2026, 11, 24, 3, 0, tzinfo=PLUS5))
    assert start == datetime(2026, 11, 22, 22, 0, tzinfo=PLUS5)


def test_durations_and_clock_times_parse() -> None:
    assert parse_duration("90s") == 90.0
    assert parse_duration("20m") == 1200.0
    assert parse_duration("1.5h") == 5400.0
    assert parse_duration(30) == 30.0
    assert parse_clock("7:40") == 7 * 3600 + 40 * 60
    for bad in ("soon", "-5m"):
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="below 60"):
        parse_clock("7:75")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


MINIMAL = """
[enterprise]
code = "e1"
name = "E"
utc_offset = "+05:00"
[shifts]
starts = ["08:00"]
hours = 8
[[workplaces]]
code = "w1"
name = "W"
[[devices]]
code = "d1"
workplace = "w1"
[[devices.instruments]]
kind = "gas"
substance = "CO"
"""


def test_a_minimal_scenario_file_loads(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, MINIMAL))
    assert [c.sensor for c in scenario.build("d1", start=datetime.now(UTC)).channels()] == ["d1.co"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('utc_offset = "+05:00"', 'utc_offset = "UTC+5"'), "utc_offset"),
        (('workplace = "w1"', 'workplace = "w9"'), "no workplace 'w9'"),
        (('substance = "CO"', 'substance = "CO"\nsensitivity = 3'), "unknown key 'sensitivity'"),
        (('kind = "gas"', 'kind = "laser"'), "'laser' is not one of"),
        (("hours = 8", "hours = 8\nlength = 3"), "unknown key"),
        (('starts = ["08:00"]', 'starts = ["8 am"]'), "H:MM"),
    ],
)
def test_scenario_mistakes_name_the_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    text = MINIMAL.replace(*change)
    with pytest.raises(ScenarioError, match=message):
        load_scenario(write(tmp_path, text))


def test_faults_and_events_attach_to_devices(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """
[[events]]
device = "d1"
substance = "CO"
at = "1:00"
peak = 50
[[faults]]
device = "d1"
channel = "co"
kind = "flatline"
at = "2:00"
duration = "10m"
[[faults]]
device = "d1"
kind = "duplicate"
share = 0.2
"""
    )
    scenario = load_scenario(write(tmp_path, text))
    spec = scenario.device("d1")
    assert [f.kind for f in spec.faults] == ["flatline"]
    faults = scenario.message_faults("d1")
    assert faults is not None
    assert faults.duplicate_share == 0.2
    with pytest.raises(ScenarioError, match="no device 'd9'"):
        load_scenario(
            write(tmp_path, text.replace('device = "d1"\nsubstance', 'device = "d9"\nsubstance'))
        )


def test_extra_faults_file(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text('[[faults]]\ndevice = "mine-01-lw-1"\nchannel = "co"\nkind = "dropout"\n')
    scenario = load_scenario("mine").with_faults(load_faults(path))
    assert scenario.device("mine-01-lw-1").faults[0].kind == "dropout"
    path.write_text('[[faults]]\ndevice = "mine-01-lw-1"\nchannel = "zz"\nkind = "dropout"\n')
    faulty = load_scenario("mine").with_faults(load_faults(path))
    with pytest.raises(ValueError, match="unknown channels"):
        faulty.build("mine-01-lw-1", start=datetime.now(UTC))


def test_unknown_scenario_lists_the_builtins() -> None:
    with pytest.raises(ScenarioError, match="mine, foundry, construction"):
        load_scenario("quarry")


def test_csv_export_writes_one_row_per_sample_with_zoned_times() -> None:
    scenario = load_scenario("mine")
    start = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    device = scenario.build("mine-01-disp-1", start=start)
    out = io.StringIO()
    rows = write_csv([device], start + timedelta(seconds=10), out, scenario.tz)
    records = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(records[0]) == HEADER
    assert rows == len(records) - 1 == 10 * 3
    first = dict(zip(HEADER, records[1], strict=True))
    assert first["time"] == "2026-11-23T08:00:00+05:00"
    assert first["sensor"] == "mine-01-disp-1.noise"
    co = [r for r in records[1:] if r[2] == "gas"]
    assert {(r[3], r[4]) for r in co} == {("ppm", "CO")}
