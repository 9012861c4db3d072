"""Daily exposure as the standards define it, through ``qorgau assess`` with default arguments
(issue 15, "Must show"): the four cases of tests/vectors/daily_exposure.toml."""

from __future__ import annotations

from typing import Any

import pytest

from analytics import INCOMPLETE_SHIFT_RULE, WorkingClass, classify, load_norms
from analytics.classes import class_from_rank
from qorgau.commands import assess as assess_cmd
from tests.analytics.analytics_testkit import VECTORS, assess_json, vector

CASES = vector("daily_exposure.toml")

#: The projected value of each metric (unmeasured time of the shift at the measured rate).
PROJECTED = {
    "lex8h_db": "lex8h_projected_db",
    "a8_m_s2": "a8_projected_m_s2",
    "twa8h_mg_m3": "twa8h_projected_mg_m3",
}


def _run(case: dict[str, Any]) -> dict[str, Any]:
    return assess_json(assess_cmd, ["--csv", str(VECTORS / case["csv"])])


@pytest.mark.parametrize("name", sorted(CASES))
def test_standard_daily_value_through_cli(name: str) -> None:
    case = CASES[name]
    data = _run(case)
    (sensor,) = data["sensors"]
    m = sensor["metrics"]
    assert m[case["metric"]] == pytest.approx(case["expected"], abs=case["tolerance"])
    assert m["coverage"] == pytest.approx(case["expected_coverage"], abs=1e-9)
    # The projection only fills the shift's unmeasured time: never below the measured value,
    # equal to it once the shift is covered.
    projected = m[PROJECTED[case["metric"]]]
    assert projected >= m[case["metric"]] - 1e-9
    if case["expected_coverage"] >= 1.0:
        assert projected == pytest.approx(m[case["metric"]], rel=1e-12)
        assert sensor["classified_by"] == "measured"
    else:
        assert projected > m[case["metric"]] + case["tolerance"]
        assert sensor["classified_by"] == "projected"
    assert data["workplace"]["classification_rule"] == INCOMPLETE_SHIFT_RULE


def test_incomplete_noise_shift_is_classed_on_the_projection() -> None:
    """4 h at 83 dB(A) of a declared 8-h shift: reported 80.0, classed on 83.0 (the rule)."""
    data = _run(CASES["noise_4h_83"])
    (sensor,) = data["sensors"]
    bands = load_norms("default").band("noise_lex8h")
    m = sensor["metrics"]
    want = class_from_rank(int(classify(m["lex8h_projected_db"], bands)))
    assert WorkingClass.parse(sensor["class"]) == want
    assert data["workplace"]["projected"] == [sensor["sensor"]]


def test_declaring_the_true_shift_leaves_nothing_to_project() -> None:
    """The same 4 h with --shift-hours 4: covered, nothing projected, classed on 80.0."""
    case = CASES["noise_4h_83"]
    data = assess_json(assess_cmd, ["--csv", str(VECTORS / case["csv"]), "--shift-hours", "4"])
    (sensor,) = data["sensors"]
    m = sensor["metrics"]
    assert m["coverage"] == pytest.approx(1.0)
    assert m["lex8h_projected_db"] == pytest.approx(m["lex8h_db"], rel=1e-12)
    assert m["lex8h_db"] == pytest.approx(case["expected"], abs=case["tolerance"])
    assert sensor["classified_by"] == "measured"
    assert data["workplace"]["projected"] == []
