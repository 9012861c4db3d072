"""``qorgau assess`` on bad files (issue 13 item 7): exit 2 with a message naming the line and
the fix, never a traceback, never a class from impossible data; coverage counts real gaps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import InputError, Norms, SensorSeries, assess_workplace
from analytics.assess import check_physical
from qorgau.commands import assess as assess_cmd
from tests.analytics.analytics_testkit import assess_json, run_cli
from tests.support import examples

HEADER = "time,sensor,quantity,unit,substance,value\n"
GOOD = "2025-03-03T08:00:00+05:00,s,noise_laeq,dB(A),,80\n"


def _refused(path: Path, *needles: str) -> str:
    rc, out, err = run_cli(assess_cmd, ["assess", "--csv", str(path), "--json"])
    assert rc == 2, out
    assert out == ""
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "cp1251.csv"
    # Excel in a Russian locale saves "CSV" in Windows-1251: a Cyrillic sensor name on line 3.
    p.write_bytes((HEADER + GOOD).encode() + "t,пресс,noise_laeq,dB(A),,80\n".encode("cp1251"))
    _refused(p, "line 3:", "not UTF-8", "CSV UTF-8")


def test_binary_file_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "book.xlsx.csv"
    p.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)))
    _refused(p, "line 1:", "binary")


@pytest.mark.parametrize(
    ("row", "needles"),
    [
        ("2025-03-03T08:01:00+05:00,g,gas,mg/m3,CO,1e308", ("line 3:", "physical range")),
        ("2025-03-03T08:01:00+05:00,s,noise_laeq,dB(A),,1000", ("line 3:", "physical range")),
        ("2025-03-03T08:01:00+05:00,g,gas,ppm,CO,2000000", ("line 3:", "physical range")),
        ("2025-03-03T08:01:00+05:00,v,vib_hav,m/s2,,5e4", ("line 3:", "physical range")),
        ("2025-03-03T08:01:00+05:00,d,dust,mg/m3,silica_gt70,1e9", ("line 3:", "physical range")),
        ("2025-03-03T08:01:00+05:00,s,noise_laeq,dB(A),,nan", ("line 3:", "physical range")),
        ("2025-03-03T08:01:00+05:00,s,noise_laeq,dB(A),,80,extra", ("line 3:", "7 fields")),
        ("2025-03-03T08:01:00+05:00,s,noise_laeq,dB(A),80", ("line 3:", "5 fields")),
        (
            "2025-03-03T08:00:00+05:00,s,noise_laeq,dB(A),,81",
            ("line 3:", "line 2", "two different"),
        ),
        ("2025-03-03T08:01:00+05:00,g,gas,mg/m3,XYZ,1", ("line 3:", "not in norms profile")),
        ("2025-03-03T08:01:00+05:00,s,noise_laeq,dB(A),,83.5.1", ("line 3:", "not a number")),
    ],
)
def test_bad_rows_name_the_line(tmp_path: Path, row: str, needles: tuple[str, ...]) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(HEADER + GOOD + row + "\n", encoding="utf-8")
    _refused(p, *needles)


def test_identical_repeated_rows_count_once(tmp_path: Path) -> None:
    rows = [f"2025-03-03T08:{m:02d}:00+05:00,s,noise_laeq,dB(A),,{80 + m % 7}\n" for m in range(60)]
    once = tmp_path / "once.csv"
    once.write_text(HEADER + "".join(rows), encoding="utf-8")
    twice = tmp_path / "twice.csv"
    twice.write_text(HEADER + "".join(rows) + "".join(rows), encoding="utf-8")
    a, b = (
        assess_json(assess_cmd, ["--csv", str(once)]),
        assess_json(assess_cmd, ["--csv", str(twice)]),
    )
    assert a["sensors"][0]["metrics"] == b["sensors"][0]["metrics"]


def test_semicolons_and_decimal_commas_read_as_excel_writes_them(tmp_path: Path) -> None:
    levels = [83.5, 84.25, 90.0, 79.75]
    comma = tmp_path / "comma.csv"
    comma.write_text(
        HEADER
        + "".join(
            f"2025-03-03T08:0{i}:00+05:00,s,noise_laeq,dB(A),,{v}\n" for i, v in enumerate(levels)
        ),
        encoding="utf-8",
    )
    semi = tmp_path / "semi.csv"
    semi.write_text(
        "\ufefftime;sensor;quantity;unit;substance;value\r\n"
        + "".join(
            f"2025-03-03T08:0{i}:00+05:00;s;noise_laeq;dB(A);;{str(v).replace('.', ',')}\r\n"
            for i, v in enumerate(levels)
        ),
        encoding="utf-8",
    )
    a = assess_json(assess_cmd, ["--csv", str(comma)])
    b = assess_json(assess_cmd, ["--csv", str(semi)])
    assert b["sensors"][0]["metrics"] == a["sensors"][0]["metrics"]
    assert b["sensors"][0]["metrics"]["lamax_db"] == pytest.approx(max(levels))


def test_decimal_comma_in_a_comma_separated_file_says_how_to_fix(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(HEADER + GOOD + '2025-03-03T08:01:00+05:00,s,noise_laeq,dB(A),,"83,5"\n')
    _refused(p, "line 3:", "decimal point")


def test_sparse_samples_are_not_full_coverage(tmp_path: Path, norms: Norms) -> None:
    """Three samples three hours apart: each holds at most the gap limit, not 3 h."""
    p = tmp_path / "sparse.csv"
    p.write_text(
        HEADER
        + "".join(
            f"2025-03-03T{8 + 3 * i:02d}:00:00+05:00,s,noise_laeq,dB(A),,85\n" for i in range(3)
        )
    )
    m = assess_json(assess_cmd, ["--csv", str(p)])["sensors"][0]["metrics"]
    gap = norms.sampling.max_gap_s
    assert m["measured_s"] == pytest.approx(3 * gap)
    assert m["coverage"] == pytest.approx(3 * gap / 28800.0)


def test_assess_workplace_refuses_impossible_values(norms: Norms) -> None:
    """A stored series with an impossible value: that sensor is refused by name (no metrics,
    no class), the others are assessed, and nothing raises (a service must go on)."""
    t = np.arange(480, dtype=np.float64) * 60.0
    v = np.full(t.size, 5.0)
    v[4] = 1e308
    bad = SensorSeries("g", "gas", "mg/m3", "CO", t, v)
    noise = SensorSeries("n", "noise_laeq", "dB(A)", None, t, np.full(t.size, 90.0))
    result = assess_workplace([bad, noise], norms)
    by = {s.sensor: s for s in result.sensors}
    assert by["g"].working_class is None
    assert by["g"].factor is None
    assert not by["g"].metrics
    assert "sample 4" in by["g"].basis
    assert "physical range" in by["g"].basis
    assert result.refused == ("g",)
    assert [f.factor for f in result.factors] == ["noise"]
    assert "refused" in result.explanation
    with pytest.raises(InputError, match=r"sample 4 .*physical range"):
        check_physical(norms, bad, norms.substance("CO"))


_FIELD = st.sampled_from(
    [
        "",
        "2025-03-03T08:00:00+05:00",
        "2025-03-03T08:00:00",
        "s",
        "noise_laeq",
        "gas",
        "dust",
        "vib_hav",
        "dB(A)",
        "mg/m3",
        "ppm",
        "CO",
        "H2S",
        "80",
        "-1",
        "1e308",
        "nan",
        "inf",
        "83,5",
        '"',
        "\x00",
        "é",
        ";",
        "\r",
    ]
) | st.text(max_size=8)


@settings(
    max_examples=examples(150, 30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(st.lists(_FIELD, min_size=0, max_size=8), max_size=6),
    st.sampled_from([",", ";", "\t"]),
)
def test_any_text_exits_0_or_2(tmp_path: Path, rows: list[list[str]], sep: str) -> None:
    p = tmp_path / "fuzz.csv"
    p.write_text(
        sep.join(["time", "sensor", "quantity", "unit", "substance", "value"])
        + "\n"
        + "".join(sep.join(r) + "\n" for r in rows),
        encoding="utf-8",
        errors="surrogatepass",
    )
    rc, out, err = run_cli(assess_cmd, ["assess", "--csv", str(p), "--json"])
    assert rc in (0, 2)
    if rc == 0:
        json.loads(out)
    else:
        assert err.startswith("qorgau assess:")


@settings(
    max_examples=examples(100, 30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.binary(max_size=400))
def test_any_bytes_exit_0_or_2(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "fuzz.bin"
    p.write_bytes(HEADER.encode() + data)
    rc, _, err = run_cli(assess_cmd, ["assess", "--csv", str(p), "--json"])
    assert rc in (0, 2), err


def test_oxygen_and_methane_channels_are_reported_not_classed(tmp_path: Path) -> None:
    p = tmp_path / "mine.csv"
    rows = [
        f"2025-03-03T08:{m:02d}:00+05:00,o2,gas,%vol,O2,{20.9 - m / 100:.2f}\n" for m in range(30)
    ]
    rows += [f"2025-03-03T08:{m:02d}:00+05:00,ch4,gas,% LEL,CH4,{m % 7}\n" for m in range(30)]
    rows += [f"2025-03-03T08:{m:02d}:00+05:00,co,gas,mg/m3,CO,5\n" for m in range(30)]
    p.write_text(HEADER + "".join(rows), encoding="utf-8")
    data = assess_json(assess_cmd, ["--csv", str(p)])
    by = {s["sensor"]: s for s in data["sensors"]}
    assert by["o2"]["class"] is None
    assert by["o2"]["factor"] is None
    assert by["o2"]["metrics"]["min_pct_vol"] == pytest.approx(20.9 - 0.29)
    assert by["o2"]["metrics"]["max_pct_vol"] == pytest.approx(20.9)
    assert by["ch4"]["metrics"]["max_pct_lel"] == pytest.approx(6.0)
    assert [f["factor"] for f in data["workplace"]["factors"]] == ["chemical:CO"]


def test_oxygen_above_100_percent_by_volume_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(HEADER + GOOD + "2025-03-03T08:01:00+05:00,o2,gas,%vol,O2,150\n")
    _refused(p, "line 3:", "physical range")
