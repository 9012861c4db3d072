"""The command line as a user meets it, run as a real process: one line that says what to do when
the schema is missing or the server is away, no traceback when the reader of a pipe leaves,
rounded figures, the demo's settings file found by the other commands, and --help naming only
the variables a command reads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from qorgau.envfile import DEFAULT_ENV_FILE, write_env_file
from qorgau.localservices import free_port, scratch_dir

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "daily_exposure"


def qorgau(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``qorgau ARGS`` in a clean environment: no QORGAU_* variable but those in ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QORGAU_")}
    return subprocess.run(
        [sys.executable, "-m", "qorgau.cli", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ("tokens", "list"),
        ("tokens", "create", "--role", "admin"),
        ("report", "--workplace", "1", "--date", "2026-11-23"),
        ("deadletters", "list"),
    ],
)
def test_missing_schema_is_one_line_naming_db_upgrade(
    args: tuple[str, ...], pg_url: str, tmp_path: Path
) -> None:
    never_created = f"t_{uuid.uuid4().hex[:12]}"
    env = {"QORGAU_DATABASE_URL": pg_url, "QORGAU_DATABASE_SCHEMA": never_created}
    done = qorgau(*args, cwd=tmp_path, env=env)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert line.startswith(f"qorgau {args[0]}")
    assert "qorgau db upgrade" in line


@pytest.mark.parametrize(
    "args", [("tokens", "list"), ("report", "--all-workplaces", "--date", "2026-11-23")]
)
def test_unreachable_server_is_one_line_saying_what_to_do(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    done = qorgau(*args, cwd=tmp_path, env={"QORGAU_DATABASE_URL": url})
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert f"127.0.0.1:{port}" in line
    assert "QORGAU_DATABASE_URL" in line
    assert "qorgau demo" in line


def test_the_demo_settings_file_is_found_by_other_commands(pg_url: str, tmp_path: Path) -> None:
    """A file as ``qorgau demo`` writes it, in the folder the demo runs in: ``qorgau db
    upgrade`` and ``qorgau tokens`` there use its database without any variable set."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    write_env_file(
        tmp_path / DEFAULT_ENV_FILE,
        {"QORGAU_DATABASE_URL": pg_url, "QORGAU_DATABASE_SCHEMA": schema},
    )
    try:
        upgraded = qorgau("db", "upgrade", cwd=tmp_path)
        assert upgraded.returncode == 0, upgraded.stderr
        assert f"schema {schema}" in upgraded.stdout
        created = qorgau("tokens", "create", "--role", "admin", cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        listed = qorgau("tokens", "list", cwd=tmp_path)
        assert "\tadmin\t" in listed.stdout
        # A variable in the environment still wins over the file.
        other = {"QORGAU_DATABASE_SCHEMA": f"t_{uuid.uuid4().hex[:12]}"}
        elsewhere = qorgau("tokens", "list", cwd=tmp_path, env=other)
        assert elsewhere.returncode == 1
        assert "qorgau db upgrade" in elsewhere.stderr
    finally:
        from tests.support import drop_schema

        drop_schema(pg_url, schema)


def many_sensors_csv(path: Path, sensors: int = 150) -> Path:
    """Readings of ``sensors`` noise sensors: JSON output far beyond a pipe's 64 KiB buffer."""
    lines = ["time,sensor,quantity,unit,substance,value"]
    for n in range(sensors):
        lines += [
            f"2026-11-23T08:0{m}:00+05:00,noise-{n},noise_laeq,dB(A),,{80 + n % 9}"
            for m in range(3)
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_settings_file_of_a_stopped_demo_is_named(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    write_env_file(tmp_path / DEFAULT_ENV_FILE, {"QORGAU_DATABASE_URL": url})
    done = qorgau("tokens", "list", cwd=tmp_path)
    line = one_line(done.stderr)
    assert str(DEFAULT_ENV_FILE) in line
    assert "demo still running" in line


def test_broken_pipe_leaves_no_traceback(tmp_path: Path) -> None:
    """``qorgau assess --json | head -c 20``: the reader leaves long before the output ends."""
    readings = many_sensors_csv(tmp_path / "many.csv")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QORGAU_")}
    pipeline = (
        f"'{sys.executable}' -m qorgau.cli assess --json --csv '{readings}' 2>'{tmp_path}/err' "
        "| head -c 20 >/dev/null; echo ${PIPESTATUS[0]}"
    )
    done = subprocess.run(
        ["bash", "-c", pipeline],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (tmp_path / "err").read_text() == ""
    assert done.stdout.strip() == "141"  # the output did outgrow the pipe: the reader left


def test_assess_rounds_its_figures(tmp_path: Path) -> None:
    done = qorgau("assess", "--csv", str(VECTORS / "noise_10h_85dBA.csv"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = next(line for line in done.stdout.splitlines() if "continuous В =" in line)
    shown = summary.rsplit("=", 1)[1].strip()
    assert len(shown.split(".")[1]) <= 2, summary


def test_numpy_warnings_stay_out_of_user_output(tmp_path: Path) -> None:
    code = (
        "import numpy as np, sys\n"
        "from qorgau import cli\n"
        "cli._keep_warnings_out()\n"
        "np.log10(np.zeros(3)); np.mean(np.empty(0))\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QORGAU_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stderr == ""
    unfiltered = code.replace("cli._keep_warnings_out()", "")
    loud = subprocess.run(
        [sys.executable, "-c", unfiltered],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "RuntimeWarning" in loud.stderr  # the check above can fail


@pytest.mark.parametrize(
    ("args", "reads", "not_read"),
    [
        (("report",), {"QORGAU_DATABASE_URL", "QORGAU_NORMS_PROFILE"}, {"QORGAU_API_PORT"}),
        (("tokens", "create"), {"QORGAU_DATABASE_URL"}, {"QORGAU_DB_RETENTION"}),
        (("tokens", "list"), {"QORGAU_DATABASE_SCHEMA"}, {"QORGAU_DB_CHUNK_INTERVAL"}),
        (("deadletters", "list"), {"QORGAU_DATABASE_URL"}, {"QORGAU_INGEST_BATCH_MAX_READINGS"}),
    ],
)
def test_help_lists_only_what_the_command_reads(
    args: tuple[str, ...], reads: set[str], not_read: set[str], tmp_path: Path
) -> None:
    done = qorgau(*args, "--help", cwd=tmp_path)
    assert done.returncode == 0
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  QORGAU_")}
    assert reads <= listed
    assert not (not_read & listed)


@pytest.mark.services
def test_demo_writes_its_settings_for_the_commands_beside_it() -> None:
    """``qorgau demo`` in a folder: while it runs, ``qorgau tokens list`` there finds the demo's
    private database (no variable set) and the demo prints the lines to paste elsewhere; once
    it stops, the file is gone, so nothing points at servers that no longer run."""
    # A folder the database's service account can reach (pytest's tmp_path is private to us).
    tmp_path = scratch_dir("qorgau-test-demo-")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QORGAU_")}
    clean["QORGAU_API_PORT"] = str(free_port())
    demo = subprocess.Popen(
        [sys.executable, "-m", "qorgau.cli", "demo"],
        cwd=tmp_path,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert demo.stdout is not None
    env_file = tmp_path / DEFAULT_ENV_FILE
    try:
        printed = []
        for line in demo.stdout:
            printed.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(printed)
        assert env_file.is_file(), text
        assert "export QORGAU_DATABASE_URL=" in text
        assert "export QORGAU_MQTT_URL=" in text
        listed = qorgau("tokens", "list", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert "demo admin" in listed.stdout
    finally:
        demo.terminate()
        demo.wait(timeout=90)
        demo.stdout.close()
    assert demo.returncode == 0
    assert not env_file.exists()
    shutil.rmtree(tmp_path, ignore_errors=True)
