"""Published worked examples (tests/vectors/*.toml) through the functions and through the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from analytics import (
    Norms,
    a8,
    combine_a8,
    insurance_tariff,
    lex_8h,
    lex_8h_from_exposure,
    mixture_index,
    occupational_risk,
    sound_exposure_sum,
    tolerance_factor,
    twa_8h,
    ut_value,
)
from qorgau.commands import assess as assess_cmd
from tests.analytics.analytics_testkit import assess_json, steps_rows, vector, write_csv


def test_osha_twa_function() -> None:
    v = vector("osha_1910_1000_d.toml")["twa"]
    hours = np.array(v["hours"])
    twa = float(twa_8h(np.array(v["conc"]), hours * 3600.0))
    assert twa == pytest.approx(v["expected_twa"], abs=1e-12)
    assert (twa <= v["limit"]) is v["expected_acceptable"]


def test_osha_mixture_function() -> None:
    v = vector("osha_1910_1000_d.toml")["mixture"]
    assert float(mixture_index(v["conc"], v["limit"])) == pytest.approx(v["expected_index"])


def test_osha_twa_through_cli(tmp_path: Path) -> None:
    v = vector("osha_1910_1000_d.toml")["twa"]
    # Same numbers as CO concentrations in mg/m3, one sample a minute over the 8-h shift.
    rows = steps_rows("g1", "gas", "mg/m3", "CO", v["conc"], v["hours"], 60.0)
    data = assess_json(assess_cmd, ["--csv", str(write_csv(tmp_path / "osha.csv", rows))])
    metrics = data["sensors"][0]["metrics"]
    assert metrics["twa8h_mg_m3"] == pytest.approx(v["expected_twa"], abs=1e-6)
    assert metrics["coverage"] == pytest.approx(1.0)
    assert metrics["max_mg_m3"] == pytest.approx(max(v["conc"]))


@pytest.mark.parametrize("case", ["equal_exposures", "dose_85"])
def test_hse_noise_function(case: str) -> None:
    v = vector("hse_noise_sound_advice.toml")[case]
    for level, hours in zip(v["laeq_db"], v["hours"], strict=True):
        assert float(lex_8h(level, hours * 3600.0)) == pytest.approx(
            v["expected_lex8h_db"], abs=v["tolerance_db"]
        )
        e = sound_exposure_sum(np.array([level]), np.array([hours * 3600.0]))
        assert float(lex_8h_from_exposure(e)) == pytest.approx(
            v["expected_lex8h_db"], abs=v["tolerance_db"]
        )


@pytest.mark.parametrize("index", range(5))
def test_hse_noise_through_cli(tmp_path: Path, index: int) -> None:
    v = vector("hse_noise_sound_advice.toml")["equal_exposures"]
    level, hours = v["laeq_db"][index], v["hours"][index]
    rows = steps_rows("n1", "noise_laeq", "dB(A)", "", [level], [hours], 10.0)
    data = assess_json(
        assess_cmd,
        ["--csv", str(write_csv(tmp_path / "n.csv", rows)), "--shift-hours", str(hours)],
    )
    m = data["sensors"][0]["metrics"]
    assert m["lex8h_db"] == pytest.approx(v["expected_lex8h_db"], abs=v["tolerance_db"])
    assert m["laeq_db"] == pytest.approx(level)
    # 100 % dose at 80 dB(A): the vector's exposures are all 100 % within the tolerance.
    assert m["dose_pct"] == pytest.approx(100.0, rel=0.012)


def _points(a8_m_s2: float, v: dict[str, float]) -> float:
    return v["eav_points"] * (a8_m_s2 / v["eav_a8_m_s2"]) ** 2


def test_hse_hav_points_scale_is_consistent() -> None:
    v = vector("hse_hav_ready_reckoner.toml")["points_scale"]
    assert _points(v["elv_a8_m_s2"], v) == pytest.approx(v["elv_points"])


def test_hse_hav_example_function() -> None:
    vv = vector("hse_hav_ready_reckoner.toml")
    ex, scale = vv["example"], vv["points_scale"]
    value = float(a8(ex["a_m_s2"], ex["hours"] * 3600.0))
    assert _points(value, scale) == pytest.approx(ex["expected_points"], abs=ex["tolerance_points"])
    assert (value > scale["eav_a8_m_s2"]) is ex["expected_above_eav"]
    # Two tools: points add, i.e. A(8)s combine as root-sum-of-squares.
    two = float(combine_a8(np.array([value, value])))
    assert _points(two, scale) == pytest.approx(2 * ex["expected_points"], abs=1.0)


def test_hse_hav_example_through_cli(tmp_path: Path) -> None:
    vv = vector("hse_hav_ready_reckoner.toml")
    ex, scale = vv["example"], vv["points_scale"]
    rows = steps_rows("h1", "vib_hav", "m/s2", "", [ex["a_m_s2"]], [ex["hours"]], 30.0)
    data = assess_json(assess_cmd, ["--csv", str(write_csv(tmp_path / "hav.csv", rows))])
    m = data["sensors"][0]["metrics"]
    # Over an 8-h shift only 3 h are logged: the CLI must not zero-fill (coverage flags it).
    assert m["coverage"] == pytest.approx(3.0 / 8.0)
    assert data["sensors"][0]["insufficient_data"] is True
    data3 = assess_json(
        assess_cmd,
        ["--csv", str(write_csv(tmp_path / "hav3.csv", rows)), "--shift-hours", str(ex["hours"])],
    )
    m3 = data3["sensors"][0]["metrics"]
    assert _points(m3["a8_m_s2"], scale) == pytest.approx(
        ex["expected_points"], abs=ex["tolerance_points"]
    )
    assert m3["a8_db"] == pytest.approx(20 * math.log10(m3["a8_m_s2"] / 1e-6))


def test_wbv_derived_cases() -> None:
    for case in vector("wbv_uk_si_2005_1093.toml")["case"]:
        got = float(a8(case["a_m_s2"], case["hours"] * 3600.0, k=case["k"]))
        assert got == pytest.approx(case["expected_a8_m_s2"], rel=1e-12)


def test_wbv_z_through_cli(tmp_path: Path) -> None:
    case = next(c for c in vector("wbv_uk_si_2005_1093.toml")["case"] if c["axis"] == "z")
    rows = steps_rows("w", "vib_wbv_z", "m/s²", "", [case["a_m_s2"]], [case["hours"]], 60.0)
    data = assess_json(
        assess_cmd,
        ["--csv", str(write_csv(tmp_path / "w.csv", rows)), "--shift-hours", str(case["hours"])],
    )
    assert data["sensors"][0]["metrics"]["a8_m_s2"] == pytest.approx(case["expected_a8_m_s2"])


def test_en689_ut_table_matches_noncentral_t(norms: Norms) -> None:
    table = vector("en689_ut.toml")["ut"]
    for n_text, published in table.items():
        n = int(n_text)
        assert tolerance_factor(n, 0.95, 0.70) == pytest.approx(published, abs=0.0015)
        ut, basis = ut_value(n, norms)
        assert ut == pytest.approx(published)
        assert basis == "table"


def test_seed_tariff_and_pr_cases(norms: Norms) -> None:
    v = vector("kz_safe_labour_concept.toml")
    for case in v["tariff"]:
        t = insurance_tariff(case["level"], norms, activity_class=case["activity_class"])
        assert round(t.tariff_pct, 2) == pytest.approx(case["expected_pct"])
        assert t.tariff_pct == pytest.approx(case["expected_pct"], abs=1e-9)
    pr = v["pr"]
    r = occupational_risk(pr["B"], pr["T"], pr["Ob"], pr["SIZ"], pr["Z"], norms)
    assert r.pr == pytest.approx(pr["expected_pr"])
    assert r.level == pr["expected_level"]
    assert sum(c.contribution for c in r.contributions) == pytest.approx(r.pr)


def test_seed_level_names_and_coefficients(norms: Norms) -> None:
    v = vector("kz_safe_labour_concept.toml")["levels"]
    assert list(norms.risk.level_names_ru) == v["names_ru"]
    assert list(norms.risk.tariff_coefficients[1:]) == v["coefficients_2_to_5"]
    # EN and KZ render the same five levels, one name each.
    assert len(norms.risk.level_names) == len(norms.risk.level_names_kz) == len(v["names_ru"])
    assert "[default]" in norms.sources["risk.level_names_kz"]
