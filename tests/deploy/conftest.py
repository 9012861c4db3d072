"""The compose deployment as the compose tool resolves it: ``docker-compose config`` (Debian's
package; ``docker compose`` v2 if that is what is installed) with ``.env.example`` as ``.env``
and test passwords for the secrets it leaves empty. Nothing is started: there is no engine."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
# Values for the secrets .env.example leaves empty on purpose (compose refuses to start then).
SECRETS = {
    "POSTGRES_PASSWORD": "pg-test-secret",
    "MQTT_INGEST_PASSWORD": "ingest-test-secret",
    "MQTT_ALERTS_PASSWORD": "alerts-test-secret",
    "MQTT_API_PASSWORD": "api-test-secret",
    "GRAFANA_ADMIN_PASSWORD": "grafana-test-secret",
    "RABBITMQ_PASSWORD": "rabbitmq-test-secret",
    "RABBITMQ_ERLANG_COOKIE": "rabbitmq-test-cookie",
}


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def run_compose(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        pytest.fail("no docker-compose: scripts/bootstrap --test installs Debian's package")
    clean = {
        k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("COMPOSE")
    }
    return subprocess.run(
        [
            *command,
            "--project-directory",
            str(project),
            "-f",
            str(project / COMPOSE_FILE.name),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**clean, **(env or {})},
        timeout=120,
    )


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compose file with .env.example as its .env, beside links to what it mounts."""
    folder = tmp_path_factory.mktemp("compose")
    shutil.copy(COMPOSE_FILE, folder / COMPOSE_FILE.name)
    shutil.copy(ENV_EXAMPLE, folder / ".env")
    for name in ("deploy", "dashboards", "Dockerfile"):
        (folder / name).symlink_to(ROOT / name)
    return folder


@pytest.fixture(scope="session")
def resolved(project: Path) -> dict[str, Any]:
    """The configuration with variables substituted and YAML merges applied, by the tool."""
    result = run_compose(
        project, "--profile", "sim", "--profile", "rabbitmq", "config", env=SECRETS
    )
    if result.returncode != 0 and "--profile" in result.stderr:
        result = run_compose(project, "config", env=SECRETS)  # a tool without --profile
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture(scope="session")
def raw() -> dict[str, Any]:
    """The file as written (YAML merge keys applied, ``${VAR}`` left as text)."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data
