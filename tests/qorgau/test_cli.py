"""The command line: every subcommand answers --help with its settings."""

from __future__ import annotations

import pytest

from qorgau.cli import COMMAND_MODULES, main


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for name in ("demo", "edge", "sim", "ingest", "api", "db"):
        assert name in out


@pytest.mark.parametrize("command", [c for c in COMMAND_MODULES if c not in {"assess", "norms"}])
def test_subcommand_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip()


def test_service_help_lists_its_environment_variables(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["ingest", "--help"])
    out = capsys.readouterr().out
    assert "QORGAU_DATABASE_URL" in out
    assert "QORGAU_INGEST_BATCH_MAX_READINGS" in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out
