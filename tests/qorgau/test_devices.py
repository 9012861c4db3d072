"""`qorgau devices add` provisions a device everywhere or nowhere: the broker password file, the
ACL, the saved password and the registry row; secrets are written 0600; a database without the
schema is one line that says to run `qorgau db upgrade`."""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg
import pytest

from firmware_sim.scenario import load_scenario
from qorgau.cli import main

pytestmark = pytest.mark.services


@pytest.fixture
def env(
    tmp_path: Path, pg_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Path]:
    files = {
        "passwd": tmp_path / "broker" / "passwd",
        "acl": tmp_path / "broker" / "acl",
        "saved": tmp_path / "device" / "dev-1.password",
    }
    monkeypatch.setenv("QORGAU_BROKER_PASSWORD_FILE", str(files["passwd"]))
    monkeypatch.setenv("QORGAU_BROKER_ACL_FILE", str(files["acl"]))
    monkeypatch.setenv("QORGAU_DATABASE_URL", pg_url)
    monkeypatch.setenv("QORGAU_DATABASE_SCHEMA", schema)
    monkeypatch.setenv("QORGAU_TOPIC_PREFIX", "qt")
    return files


def registered(pg_url: str, schema: str) -> set[tuple[str, str]]:
    with psycopg.connect(pg_url, options=f"-c search_path={schema}") as conn:
        rows = conn.execute(
            "SELECT e.code, d.code FROM devices d JOIN enterprises e ON e.id = d.enterprise_id"
        ).fetchall()
    return {(r[0], r[1]) for r in rows}


def add(*extra: str, device: str = "dev-1", enterprise: str = "ent-a") -> int:
    return main(["devices", "add", "--enterprise", enterprise, "--device", device, *extra])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("tool", [[], ["--no-tool"]], ids=["mosquitto_passwd", "python"])
def test_a_device_is_provisioned_with_secrets_readable_by_the_owner_only(
    env: dict[str, Path], pg_url: str, schema: str, tool: list[str]
) -> None:
    # A password file left world-readable by an earlier run is replaced, not reused.
    env["saved"].parent.mkdir()
    env["saved"].write_text("old\n")
    env["saved"].chmod(0o644)
    assert add("--save-password", str(env["saved"]), *tool) == 0
    assert registered(pg_url, schema) == {("ent-a", "dev-1")}
    assert env["passwd"].read_text().startswith("dev-1:$7$")
    assert "user dev-1" in env["acl"].read_text()
    assert env["saved"].read_text() not in ("", "old\n")
    assert mode(env["passwd"]) == 0o600
    assert mode(env["saved"]) == 0o600


def test_an_existing_password_file_loses_access_by_others(env: dict[str, Path]) -> None:
    env["passwd"].parent.mkdir()
    env["passwd"].write_text("")
    env["passwd"].chmod(0o644)
    assert add("--no-db") == 0
    assert mode(env["passwd"]) == 0o640


def test_an_unwritable_password_file_changes_nothing(
    env: dict[str, Path], pg_url: str, schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    env["passwd"].mkdir(parents=True)  # a folder where the file should be: root cannot write it
    assert add() == 1
    line = one_line_error(capsys.readouterr().err)
    assert "QORGAU_BROKER_PASSWORD_FILE" in line
    assert "nothing was changed" in line
    assert registered(pg_url, schema) == set()
    assert not env["acl"].exists()


def test_a_failure_after_the_password_is_written_puts_everything_back(
    env: dict[str, Path], pg_url: str, schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(device="dev-0") == 0
    before = {name: path.read_bytes() for name, path in env.items() if path.exists()}
    # A hand-edited ACL whose block of dev-1 lost its end marker: found only when it is
    # rewritten, after the password file has been.
    acl = env["acl"].read_text() + "\n# >>> device ent-a/dev-1\nuser dev-1\n"
    env["acl"].write_text(acl)
    before["acl"] = env["acl"].read_bytes()
    capsys.readouterr()

    assert add("--save-password", str(env["saved"])) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "end marker" in line
    assert registered(pg_url, schema) == {("ent-a", "dev-0")}
    assert {name: path.read_bytes() for name, path in env.items() if path.exists()} == before
    assert not env["saved"].exists()


def test_a_code_registered_to_another_enterprise_is_refused_before_any_file(
    env: dict[str, Path], pg_url: str, schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(enterprise="ent-a", device="dev-1") == 0
    passwd = env["passwd"].read_bytes()
    capsys.readouterr()
    assert add(enterprise="ent-b", device="dev-1") == 1
    line = one_line_error(capsys.readouterr().err)
    assert "another enterprise" in line
    assert "ent-a" not in line
    assert env["passwd"].read_bytes() == passwd
    assert registered(pg_url, schema) == {("ent-a", "dev-1")}


def test_a_database_without_the_schema_is_one_line_naming_the_fix(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QORGAU_DATABASE_SCHEMA", "never_upgraded")
    assert add() == 1
    line = one_line_error(capsys.readouterr().err)
    assert "`qorgau db upgrade`" in line
    assert "never_upgraded" in line
    assert not env["passwd"].exists()
    assert not env["acl"].exists()


def test_a_scenario_is_all_or_nothing_too(
    env: dict[str, Path], pg_url: str, schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = load_scenario("mine")
    assert len(scenario.devices) > 1
    last = scenario.devices[-1].code
    # The last device's block lost its end marker: found after the others were written.
    env["acl"].parent.mkdir()
    env["acl"].write_text(f"# >>> device {scenario.enterprise}/{last}\nuser {last}\n")
    acl = env["acl"].read_bytes()
    assert main(["devices", "add-scenario", "--scenario", "mine"]) == 1
    assert "end marker" in one_line_error(capsys.readouterr().err)
    assert registered(pg_url, schema) == set()
    assert not env["passwd"].exists()
    assert env["acl"].read_bytes() == acl
