"""Classes, combination, В, norms profiles, ПР, EN 689 and input validation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from analytics import (
    InputError,
    Norms,
    NormsError,
    SensorSeries,
    Verdict,
    WorkingClass,
    assess_workplace,
    classify,
    combine_classes,
    concentration_irregular,
    enterprise_risk,
    exposure_statistics,
    harmfulness_index,
    hold_durations,
    insurance_tariff,
    load_norms,
    ppe_recommendation,
    ppm_to_mg_m3,
    preliminary_test,
    social_guarantees,
    statistical_test,
)
from qorgau.commands import assess as assess_cmd
from qorgau.commands import norms as norms_cmd
from tests.analytics.analytics_testkit import run_cli, steps_rows, write_csv


def test_bands_lower_exclusive_upper_inclusive(norms: Norms) -> None:
    b = norms.band("noise_lex8h")
    got = [
        list(WorkingClass)[r].value
        for r in classify(np.array([80.0, 80.01, 85.0, 115.0, 115.1]), b)
    ]
    assert got == ["2", "3.1", "3.1", "3.4", "4"]  # DOMAIN.md §2 table, edges inclusive


def test_b_discrete_scale_and_domain_example(norms: Norms) -> None:
    # DOMAIN.md §3: classes 1–2 → 1, 3.1 → 2, 3.2 → 3, 3.3 → 4, 3.4 and 4 → 5.
    expected = {"1": 1, "2": 1, "3.1": 2, "3.2": 3, "3.3": 4, "3.4": 5, "4": 5}
    for cls, b in expected.items():
        assert harmfulness_index(cls, norms.harmfulness)[0] == b
    # DOMAIN.md §3: noise 90 dB(A) is halfway through 3.2 → continuous В 3.5.
    series = [
        SensorSeries(
            "n", "noise_laeq", "dB(A)", None, np.arange(0, 28800, 60.0), np.full(480, 90.0)
        )
    ]
    r = assess_workplace(series, norms)
    assert r.b == 3
    assert r.b_continuous == pytest.approx(3.5)


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        (["2", "3.1", "3.1"], "3.1"),
        (["3.1", "3.1", "3.1"], "3.2"),
        (["3.2", "3.2"], "3.3"),
        (["3.3", "3.2", "2"], "3.4"),
        (["3.4", "3.3"], "3.4"),  # cap 3.4
        (["4", "3.2"], "4"),  # class 4 only on its own
        (["3.2", "3.1", "3.1", "3.1"], "3.2"),
    ],
)
def test_combination_rule(classes: list[str], expected: str) -> None:
    assert combine_classes(classes).working_class.value == expected


def test_combination_cap_configurable_and_never_4() -> None:
    assert combine_classes(["3.2", "3.2"], cap="3.2").working_class.value == "3.2"
    with pytest.raises(InputError, match=r"3\.4 or lower"):
        combine_classes(["3.2"], cap="4")


def test_entered_factors_join_combination(norms: Norms) -> None:
    r = assess_workplace(
        [], norms, entered_factors={"microclimate": "3.1", "lighting": "3.1", "heaviness": "3.1"}
    )
    assert r.working_class == WorkingClass.C3_2
    assert "3 factors at class 3.1" in (r.combination.rule if r.combination else "")


def test_chemical_worse_of_twa_and_15min(norms: Norms) -> None:
    t = np.arange(0, 28800, 60.0)
    c = np.full(t.size, 2.0)
    c[:15] = 70.0  # a 15-min peak of 70 mg/m3 CO: K_max = 3.5 → 3.2; TWA K ≈ 0.2
    r = assess_workplace([SensorSeries("g", "gas", "mg/m3", "CO", t, c)], norms)
    s = r.sensors[0]
    assert s.metrics["max15min_mg_m3"] == pytest.approx(70.0)
    assert s.working_class == WorkingClass.C3_2


def test_ppm_conversion(norms: Norms) -> None:
    co = norms.substance("CO")
    assert float(ppm_to_mg_m3(24.04, co.molar_mass_g_mol or 0.0)) == pytest.approx(28.010)
    with pytest.raises(InputError):
        ppm_to_mg_m3(1.0, 0.0)


def test_gap_counts_as_unmeasured_not_zero() -> None:
    t = np.array([0.0, 10.0, 20.0, 3600.0, 3610.0])
    h = hold_durations(t, [0], shift_duration_s=7200.0, max_gap_s=60.0)
    # The sample before the gap holds the median interval (10 s) only; the last holds 10 s.
    np.testing.assert_allclose(h.duration_s, [10.0, 10.0, 10.0, 10.0, 10.0])
    m = concentration_irregular(
        [1.0, 1.0, 1.0, 5.0, 5.0],
        t,
        [0],
        shift_duration_s=7200.0,
        max_gap_s=60.0,
        min_window_fraction=0.75,
    )
    assert m.mean_mg_m3[0] == pytest.approx((3 * 10 + 2 * 50) / 50.0)  # not diluted by the gap


def test_validation_errors() -> None:
    with pytest.raises(InputError, match="backwards"):
        hold_durations([0.0, 10.0, 5.0], [0], shift_duration_s=100.0, max_gap_s=60.0)
    with pytest.raises(InputError, match="strictly increase"):
        hold_durations([0.0, 1.0], [0, 0], shift_duration_s=100.0, max_gap_s=60.0)
    with pytest.raises(InputError, match="≥ 0"):
        concentration_irregular(
            [-1.0], [0.0], [0], shift_duration_s=100.0, max_gap_s=60.0, min_window_fraction=0.75
        )


def test_enterprise_profile_extends_default(tmp_path: Path) -> None:
    p = tmp_path / "ent.toml"
    p.write_text(
        'extends = "default"\n[profile]\nname = "acme"\n'
        '[sources]\nacme = "ACME internal standard 7"\n'
        '[noise]\ndose_criterion_db = { value = 85.0, source = "acme" }\n'
        '[substances.NH3]\nname = "ammonia"\nkind = "gas"\n'
        'group = { value = "acute", source = "acme" }\n'
        'molar_mass_g_mol = { value = 17.031, source = "acme" }\n'
        'pdk_max_mg_m3 = { value = 20.0, source = "acme" }\n',
        encoding="utf-8",
    )
    n = load_norms(p)
    assert n.name == "acme"
    assert n.dose_criterion_db == 85.0
    assert n.substance("nh3").pdk_max_mg_m3 == 20.0
    assert n.substance("CO").pdk_max_mg_m3 == 20.0  # inherited
    assert n.sources["noise.dose_criterion_db"] == "ACME internal standard 7"
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'extends = "default"\n[noise]\ndose_criterion_db = { value = 85.0, source = "nope" }\n',
        encoding="utf-8",
    )
    with pytest.raises(NormsError, match="not defined in"):
        load_norms(bad)
    with pytest.raises(NormsError, match="no built-in"):
        load_norms("nonexistent")


def test_every_default_value_has_a_source(norms: Norms) -> None:
    assert all(src.strip() for src in norms.sources.values())
    assert "bands.noise_lex8h.upper" in norms.sources
    assert "risk.tariff_coefficients" in norms.sources


def test_every_activity_class_has_a_base_rate_that_says_whether_it_is_sourced(
    norms: Norms,
) -> None:
    rates = norms.risk.activity_base_rate_pct
    assert sorted(rates) == list(range(1, 23))
    ordered = [rates[c] for c in range(1, 23)]
    assert ordered == sorted(ordered)
    assert len(set(ordered)) == 22
    for c in range(1, 23):
        t = insurance_tariff(4, norms, activity_class=c)
        assert t.base_rate_pct == rates[c]
        # the seed names class 14 (1.55 %) and the range 0.12..2.96 %; the rest is [default]
        assert t.base_rate_is_default is (c not in (1, 14, 22)), c
    assert insurance_tariff(4, norms, activity_class=14).tariff_pct == pytest.approx(2.17)


def test_risk_matrices_and_enterprise(norms: Norms) -> None:
    assert ppe_recommendation("noise", 2, norms) == "earplugs"
    assert "active noise-cancelling" in ppe_recommendation("noise", 5, norms)
    assert len(social_guarantees(5, norms)) > len(social_guarantees(2, norms))
    assert insurance_tariff(3, norms, base_rate_pct=1.0).tariff_pct == pytest.approx(1.3)
    assert insurance_tariff(3, norms, base_rate_pct=1.0).base_rate_reference is None
    e = enterprise_risk([1.2, 3.05, 4.8], [10, 30, 10], norms)
    assert e.mean_pr == pytest.approx((12 + 91.5 + 48) / 50)  # headcount-weighted mean
    assert e.headcount_by_level == {1: 10.0, 2: 0.0, 3: 30.0, 4: 0.0, 5: 10.0}
    assert e.level == 3


def test_en689_tests(norms: Norms) -> None:
    oel = 10.0
    assert preliminary_test([0.5, 0.8, 0.9], oel, norms) is Verdict.COMPLIANCE
    assert preliminary_test([0.5, 0.8, 1.1], oel, norms) is Verdict.NO_DECISION
    assert preliminary_test([0.5, 11.0, 1.0, 2.0], oel, norms) is Verdict.NON_COMPLIANCE
    x = np.array([1.0, 2.0, 1.5, 3.0, 2.2, 1.1])
    stats_ = exposure_statistics(x, oel)
    y = np.log(x)
    assert stats_.gm == pytest.approx(np.exp(y.mean()))
    assert stats_.gsd == pytest.approx(np.exp(y.std(ddof=1)))
    assert stats_.p95 == pytest.approx(stats_.gm * stats_.gsd**1.6448536269514722)
    assert stats_.utl95_95 > stats_.p95
    res = statistical_test(x, oel, norms)
    assert res.ut == pytest.approx(2.187)
    assert res.verdict is (Verdict.COMPLIANCE if res.ur >= 2.187 else Verdict.NON_COMPLIANCE)
    assert statistical_test(x, 2.0, norms).verdict is Verdict.NON_COMPLIANCE


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2025-03-03T08:00:00+00:00,s,noise_laeq,dB(A),,abc", "line 3: value"),
        ("2025-03-03T08:00:00+00:00,s,noise_xyz,dB(A),,80", "line 3: unknown quantity"),
        ("2025-03-03T08:00:00+00:00,s,gas,dB(A),CO,1", "line 3: unit"),
        ("yesterday,s,gas,mg/m3,CO,1", "line 3: time"),
        ("2025-03-03T08:00:00,s,gas,mg/m3,CO,1", "line 3: time"),
        ("2025-03-03T08:00:00+00:00,s,gas,mg/m3,CO,-1", "line 3: negative concentration"),
    ],
)
def test_cli_errors_name_the_line(tmp_path: Path, row: str, message: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(
        "time,sensor,quantity,unit,substance,value\n2025-03-03T08:00:00+00:00,s,noise_laeq,dB(A),,80\n"
        + row
        + "\n",
        encoding="utf-8",
    )
    rc, out, err = run_cli(assess_cmd, ["assess", "--csv", str(p), "--json"])
    assert rc == 2
    assert out == ""
    assert message in err


def test_cli_missing_column(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("time,sensor,quantity,unit,value\n", encoding="utf-8")
    rc, _, err = run_cli(assess_cmd, ["assess", "--csv", str(p)])
    assert rc == 2
    assert "line 1: missing column(s) substance" in err


def test_cli_table_and_json_contract(tmp_path: Path) -> None:
    rows = steps_rows("n1", "noise_laeq", "dB(A)", "", [90.0], [8.0], 60.0)
    rows += steps_rows("p1", "noise_lcpeak", "dB(C)", "", [130.0], [8.0], 60.0)
    rows += steps_rows("x1", "vib_wbv_x", "m/s2", "", [0.3], [8.0], 60.0)
    rows += steps_rows("z1", "vib_wbv_z", "m/s2", "", [0.9], [8.0], 60.0)
    rows += steps_rows("d1", "dust", "mg/m3", "silica_10_70", [3.0], [8.0], 60.0)
    rows += steps_rows("g1", "gas", "ppm", "H2S", [2.0], [8.0], 60.0)
    p = write_csv(tmp_path / "ok.csv", rows)
    rc, out, _ = run_cli(assess_cmd, ["assess", "--csv", str(p)])
    assert rc == 0
    assert "dB(A)" in out
    assert "mg/m³" in out
    import json

    rc, out, _ = run_cli(
        assess_cmd, ["assess", "--csv", str(p), "--json", "--factor", "microclimate=3.1"]
    )
    data = json.loads(out)
    by = {s["sensor"]: s for s in data["sensors"]}
    assert set(by["n1"]["metrics"]) >= {"laeq_db", "lex8h_db", "dose_pct"}
    assert set(by["p1"]["metrics"]) >= {"lcpeak_db"}
    assert set(by["z1"]["metrics"]) >= {"a8_m_s2", "a8_db"}
    assert set(by["g1"]["metrics"]) >= {
        "twa8h_mg_m3",
        "mean_mg_m3",
        "max15min_mg_m3",
        "max_mg_m3",
        "coverage",
    }
    assert by["g1"]["metrics"]["mean_mg_m3"] == pytest.approx(2.0 * 34.081 / 24.04)
    assert isinstance(data["workplace"]["B"], int)
    assert isinstance(data["workplace"]["class"], str)
    factors = {f["factor"]: f["class"] for f in data["workplace"]["factors"]}
    # z 0.9 m/s² = 119.1 dB → 3.1 (Z band); x 0.3 m/s² = 109.5 dB → 2; the worse axis counts.
    assert factors["vibration_whole_body"] == "3.1"
    assert factors["dust:silica_10_70"] == "3.1"  # 3/2 = 1.5 ≤ 2 (strongly fibrogenic band)
    assert factors["microclimate"] == "3.1"


def test_norms_show(tmp_path: Path) -> None:
    rc, out, _ = run_cli(norms_cmd, ["norms", "show"])
    assert rc == 0
    assert "dB(A)" in out
    assert "ПДК_max mg/m³" in out
    rc, out, _ = run_cli(norms_cmd, ["norms", "show", "--json"])
    import json

    assert json.loads(out)["bands"]["noise_lex8h"]["upper"][0] == 80.0
    rc, _, err = run_cli(norms_cmd, ["norms", "show", "--norms", str(tmp_path / "missing.toml")])
    assert rc == 2
    assert "does not exist" in err


def test_whole_body_xy_a8_carries_k_and_keeps_its_class(norms: Norms) -> None:
    """ISO 2631-1: X/Y A(8) = 1.4·a_w·√(T/8 h); the X/Y band (published 112/118/… dB for the
    unweighted level) is raised by 20·lg 1.4 in the profile, so the class is that of the
    unweighted level against the published edges."""
    from analytics import classify
    from analytics.classes import ClassBands, class_from_rank

    assert norms.k_xy == pytest.approx(1.4)
    published = ClassBands(
        "published_xy",
        "a_db",
        "dB",
        "db",
        (112.0, 118.0, 124.0, 130.0, 136.0),
        norms.band("vibration_whole_body_xy").classes,
    )
    rng = np.random.default_rng(15)
    levels = np.concatenate((rng.uniform(0.05, 8.0, 200), [0.3, 0.399, 0.401, 0.8, 1.6]))
    t = np.arange(480, dtype=np.float64) * 60.0
    series = [
        SensorSeries(f"x{i}", "vib_wbv_x", "m/s2", None, t, np.full(t.size, a))
        for i, a in enumerate(levels)
    ]
    result = assess_workplace(series, norms)
    for a, s in zip(levels, result.sensors, strict=True):
        assert s.metrics["a8_m_s2"] == pytest.approx(1.4 * a, rel=1e-12)
        unweighted_db = 20.0 * math.log10(a / 1e-6)
        assert s.working_class == class_from_rank(int(classify(unweighted_db, published)))


def test_partial_hand_arm_exposures_combine_as_root_sum_of_squares(norms: Norms) -> None:
    """Two tools of one worker: A(8) = √(A₁(8)² + A₂(8)²) (ISO 5349-1 eq. 4)."""
    from analytics import combine_a8

    t1 = np.arange(120, dtype=np.float64) * 60.0  # 2 h
    t2 = 7200.0 + np.arange(180, dtype=np.float64) * 60.0  # then 3 h
    one = [SensorSeries("grinder", "vib_hav", "m/s2", None, t1, np.full(t1.size, 6.0))]
    two = [SensorSeries("drill", "vib_hav", "m/s2", None, t2, np.full(t2.size, 4.0))]
    a1 = assess_workplace(one, norms).sensors[0].metrics["a8_m_s2"]
    a2 = assess_workplace(two, norms).sensors[0].metrics["a8_m_s2"]
    total = float(combine_a8(np.array([a1, a2])))
    assert total == pytest.approx(math.sqrt(36 * 2 / 8 + 16 * 3 / 8), rel=1e-12)
    # The same worker's two tools logged by one meter, back to back: the same A(8).
    both = SensorSeries(
        "worker",
        "vib_hav",
        "m/s2",
        None,
        np.concatenate((t1, t2)),
        np.concatenate((np.full(t1.size, 6.0), np.full(t2.size, 4.0))),
    )
    assert assess_workplace([both], norms).sensors[0].metrics["a8_m_s2"] == pytest.approx(total)


def test_several_hand_arm_tools_are_classed_on_their_sum(norms: Norms) -> None:
    """Two tool sensors logging all shift (idle ≈ 0): the factor takes √ΣA(8)² when worse."""
    from analytics import classify, combine_a8
    from analytics.classes import class_from_rank
    from analytics.units import acceleration_db

    t = np.arange(480, dtype=np.float64) * 60.0
    grinder = np.where(t < 2 * 3600, 4.0, 0.05)
    drill = np.where((t >= 2 * 3600) & (t < 5 * 3600), 3.5, 0.05)
    series = [
        SensorSeries("grinder", "vib_hav", "m/s2", None, t, grinder),
        SensorSeries("drill", "vib_hav", "m/s2", None, t, drill),
    ]
    result = assess_workplace(series, norms)
    parts = [s.metrics["a8_m_s2"] for s in result.sensors]
    total_db = float(acceleration_db(combine_a8(np.array(parts))))
    (factor,) = result.factors
    want = class_from_rank(int(classify(total_db, norms.band("vibration_hand_arm"))))
    assert factor.working_class == want
    assert want.rank > max(s.working_class.rank for s in result.sensors if s.working_class)
    assert "√ΣA(8)²" in factor.basis


def test_ppe_follows_the_factors_own_class(norms: Norms) -> None:
    """Issue 15.4: noise at class 3.4 in a low-risk workplace still gets the strongest
    hearing protection; whole-body vibration is never offered gloves."""
    from analytics import ppe_for_factor

    rows = norms.risk.ppe_row_by_class
    row, text = ppe_for_factor("noise", "3.4", 2, norms)
    assert row == rows[WorkingClass.C3_4]
    assert text == norms.risk.ppe["noise"][-1]
    # Within the limit: the baseline row whatever the workplace's level.
    assert ppe_for_factor("noise", "2", 5, norms)[0] == 1
    # Noise follows the level too where it is higher (the seed's example picks by level).
    assert ppe_for_factor("noise", "3.1", 4, norms)[0] == 4
    # Other groups follow their class alone.
    assert ppe_for_factor("dust", "3.1", 4, norms)[0] == rows[WorkingClass.C3_1]
    for cls in ("2", "3.1", "3.2", "3.3", "3.4", "4"):
        _, wbv = ppe_for_factor("vibration_whole_body", cls, 5, norms)
        assert "glove" not in wbv.lower()
    assert "gloves" in ppe_for_factor("vibration", "3.2", 3, norms)[1]
