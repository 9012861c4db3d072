"""Logging as services set it up (``setup_logging``, INFO): rendering a PDF report, as the API
does for GET /report, logs nothing from fontTools (it logged some 400 INFO lines per report while
matplotlib subset the fonts), unless QORGAU_LOG_LEVEL=debug asks for everything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RENDER_ONE_REPORT = """
from datetime import UTC, datetime, timedelta
import numpy as np
from application.report_model import SensorSection, ShiftReport
from dashboards.reports import render
from qorgau.runtime import setup_logging

setup_logging()
start = datetime(2026, 11, 23, 3, tzinfo=UTC)
minutes = np.arange(np.datetime64("2026-11-23T03:00"), np.datetime64("2026-11-23T11:00"))
noise = SensorSection(
    sensor="dev-1.noise", quantity="noise_laeq", unit="dB(A)", substance=None, samples=28800,
    metrics={"lex8h_db": 84.2, "coverage": 1.0}, working_class="3.1", factor="noise",
    basis="LEX,8h 84.2 dB(A)", insufficient=False, chart_label="1-min energy-mean level",
    chart_times=minutes, chart_values=np.full(minutes.size, 84.2),
)
report = ShiftReport(
    enterprise="ent", enterprise_name="Ent", workplace="wp", workplace_name="Қазан цехы",
    profession=None, headcount=3, timezone="Asia/Almaty", shift_date="2026-11-23",
    shift_number=1, start=start, end=start + timedelta(hours=8), working_class="3.1", b=2,
    b_continuous=2.4, rule=None, deciding_factors=("noise",), explanation="", sensors=(noise,),
    factors=(), risk=None, risk_note="no assessor inputs", alerts=(), norms="default 2025.1",
    generated_at=start,
)
assert render(report, "pdf", lang="kk").startswith(b"%PDF")
"""


@pytest.mark.parametrize(("level", "quiet"), [("info", True), ("debug", False)])
def test_third_party_info_logs_stay_quiet(level: str, quiet: bool, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QORGAU_")}
    env["QORGAU_LOG_LEVEL"] = level
    done = subprocess.run(
        [sys.executable, "-c", RENDER_ONE_REPORT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    font_lines = [line for line in done.stderr.splitlines() if "fontTools" in line]
    if quiet:
        assert done.stderr == ""
    else:
        assert len(font_lines) > 20  # what the default now hides
