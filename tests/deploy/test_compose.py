"""docker-compose.yml, the Dockerfile and what they mount, checked without a container engine:
the compose tool accepts the file, the Compose Specification's schema accepts it, and what it
says agrees with Qorgau's code (commands, settings, routes, ports, broker files, dashboards)."""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from paho.mqtt.client import topic_matches_sub
from pydantic_settings import BaseSettings

from api.settings import ApiSettings
from application.settings import AssessmentSettings
from dashboards.publish import DATASOURCE_TYPE, DEFAULT_DATASOURCE_UID, PROMETHEUS_DATASOURCE_UID
from edge.settings import EdgeSettings
from ingest.alerting.settings import AlertsSettings
from ingest.settings import IngestSettings
from qorgau.broker import DEPLOY_BROKER, DEPLOY_CONF_PATH, render_mosquitto_conf
from qorgau.brokerauth import service_acl
from qorgau.cli import build_parser
from qorgau.commands.devices import DevicesSettings
from store.settings import DatabaseSettings
from tests.deploy.conftest import ENV_EXAMPLE, ROOT, SECRETS, run_compose

SCHEMA = Path(__file__).with_name("compose_spec.json")
# The settings each subcommand reads (its --help lists the same classes).
SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "alerts": AlertsSettings,
    "assessments": AssessmentSettings,
    "api": ApiSettings,
    "db": DatabaseSettings,
    "devices": DevicesSettings,
    "sim": EdgeSettings,
}
# Read with os.environ by qorgau.runtime.setup_logging, by every command.
RUNTIME_VARIABLES = {"QORGAU_LOG_LEVEL", "QORGAU_LOG_FORMAT"}


def services(resolved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = resolved["services"]
    return found


def is_qorgau(service: dict[str, Any]) -> bool:
    return "build" in service  # the services built from our Dockerfile


def one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


def qorgau_invocations(service: dict[str, Any]) -> list[list[str]]:
    """The argument lists given to `qorgau`: the command itself, or each `qorgau …` line of a
    shell script entrypoint."""
    command = service.get("command") or []
    if isinstance(command, str):
        command = shlex.split(command)
    if not service.get("entrypoint"):
        return [list(command)]
    script = "\n".join(command).replace("$$", "$")
    found = []
    for line in script.splitlines():
        for part in line.split("|"):
            words = shlex.split(part)
            if words and words[0] == "qorgau":
                found.append(words[1:])
    return found


def parse(argv: list[str]) -> Any:
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"qorgau {' '.join(argv)}: not a valid command line") from exc


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


# ------------------------------------------------------------------ the tool and the schema


def test_the_compose_tool_accepts_the_file_with_the_example_env(project: Path) -> None:
    result = run_compose(project, "config", "-q", env=SECRETS)
    assert result.returncode == 0, result.stderr


def test_the_compose_tool_refuses_to_run_without_the_secrets(project: Path) -> None:
    # .env.example leaves every password empty; `${VAR:?}` must stop compose, naming one.
    result = run_compose(project, "config", "-q")
    assert result.returncode != 0
    assert any(name in result.stderr for name in SECRETS), result.stderr


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    # It declares draft 2019-09 as "http://json-schema.org/draft/2019-09/schema#", a spelling
    # jsonschema does not look up; name the draft directly.
    assert "2019-09" in schema["$schema"]
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_the_file_follows_the_compose_specification_schema(raw: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator().iter_errors(raw)]
    assert not errors


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        ("service", "restart_policy", "always"),  # not a service key
        ("healthcheck", "test_command", ["CMD", "true"]),
        ("top", "name", "qorgau"),  # newer than this schema and docker-compose 1.29
    ],
)
def test_the_schema_check_refuses_what_the_specification_does_not_allow(
    raw: dict[str, Any], where: str, key: str, value: Any
) -> None:
    broken = copy.deepcopy(raw)
    target = {
        "service": broken["services"]["api"],
        "healthcheck": broken["services"]["api"]["healthcheck"],
        "top": broken,
    }[where]
    target[key] = value
    assert list(validator().iter_errors(broken))


# ------------------------------------------------------------------ commands and settings


def test_every_qorgau_service_runs_a_real_subcommand(resolved: dict[str, Any]) -> None:
    checked = set()
    for name, service in services(resolved).items():
        if not is_qorgau(service):
            continue
        invocations = qorgau_invocations(service)
        assert invocations, f"{name}: no qorgau command found"
        for argv in invocations:
            args = parse(argv)
            assert getattr(args, "handler", None) is not None, f"{name}: {argv} runs nothing"
            checked.add(argv[0])
    assert checked >= {"ingest", "alerts", "api", "db", "devices", "sim"}


def test_the_command_parser_refuses_a_made_up_subcommand() -> None:
    with pytest.raises(AssertionError):
        parse(["ingestt"])
    with pytest.raises(AssertionError):
        parse(["ingest", "--replicas", "2"])


def settings_of(service: dict[str, Any]) -> list[type[BaseSettings]]:
    return [SETTINGS[argv[0]] for argv in qorgau_invocations(service)]


def unknown_variables(service: dict[str, Any]) -> set[str]:
    known = set(RUNTIME_VARIABLES)
    for cls in settings_of(service):
        known |= {f"QORGAU_{field.upper()}" for field in cls.model_fields}
    return {k for k in environment(service) if k.startswith("QORGAU_")} - known


def test_every_qorgau_variable_is_a_setting_of_that_command(resolved: dict[str, Any]) -> None:
    for name, service in services(resolved).items():
        if is_qorgau(service):
            assert not unknown_variables(service), name


def test_a_misspelt_setting_would_be_caught(resolved: dict[str, Any]) -> None:
    ingest = copy.deepcopy(services(resolved)["ingest-1"])
    ingest["environment"]["QORGAU_INGEST_METRIC_PORT"] = "9101"
    assert unknown_variables(ingest) == {"QORGAU_INGEST_METRIC_PORT"}


def test_every_service_accepts_its_settings(
    resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, service in services(resolved).items():
        if not is_qorgau(service):
            continue
        with monkeypatch.context() as m:
            for key, value in environment(service).items():
                m.setenv(key, value)
            for cls in settings_of(service):
                cls()  # raises on a value the service would refuse at start
        assert name


def test_ingest_workers_have_distinct_stable_client_ids(resolved: dict[str, Any]) -> None:
    workers = {
        n: s for n, s in services(resolved).items() if is_qorgau(s) and s["command"][0] == "ingest"
    }
    assert len(workers) >= 2
    ids = [environment(s).get("QORGAU_INGEST_CLIENT_ID") for s in workers.values()]
    assert all(ids), "each worker needs a fixed id"
    assert len(set(ids)) == len(ids), "each worker needs its own id"
    assert all("replicas" not in s.get("deploy", {}) for s in workers.values())
    alerts = services(resolved)["alerts"]
    assert environment(alerts).get("QORGAU_ALERTS_CLIENT_ID"), "the engine's id must be fixed"


# ------------------------------------------------------------------ broker accounts


def broker_users(resolved: dict[str, Any]) -> dict[str, str]:
    """user → role, as broker-init creates them."""
    users = {}
    for argv in qorgau_invocations(services(resolved)["broker-init"]):
        if argv[:2] == ["devices", "add-service"]:
            args = parse(argv)
            users[args.user] = args.role
    return users


def test_services_sign_in_as_accounts_broker_init_creates(resolved: dict[str, Any]) -> None:
    from vocabulary.mqtt_url import MqttEndpoint

    users = broker_users(resolved)
    for name in ("ingest-1", "ingest-2", "alerts", "api"):
        endpoint = MqttEndpoint.parse(environment(services(resolved)[name])["QORGAU_MQTT_URL"])
        assert (endpoint.host, endpoint.port) == ("mosquitto", 1883)
        assert endpoint.password in SECRETS.values(), f"{name}: password not from .env"
        # ingest, the engine and the API (acknowledge/resolve) all publish alerts.
        assert users.get(endpoint.username or "") == "ingest", name


def test_the_ingest_account_may_publish_what_ingest_publishes() -> None:
    settings = IngestSettings(ingest_client_id="qorgau-ingest-1")
    writes = [topic for access, topic in service_acl("qorgau", "ingest") if access == "write"]
    assert any(topic_matches_sub(t, settings.status_topic()) for t in writes)
    assert any(topic_matches_sub(t, "qorgau/v1/mine-01/alerts/ceiling") for t in writes)
    reader = [topic for access, topic in service_acl("qorgau", "reader") if access == "write"]
    assert not reader


def test_broker_files_are_shared_with_the_broker_at_the_paths_its_config_names(
    resolved: dict[str, Any],
) -> None:
    svc = services(resolved)
    init_env = environment(svc["broker-init"])
    assert init_env["QORGAU_BROKER_PASSWORD_FILE"] == str(DEPLOY_BROKER.password_file)
    assert init_env["QORGAU_BROKER_ACL_FILE"] == str(DEPLOY_BROKER.acl_file)
    folder = str(Path(str(DEPLOY_BROKER.password_file)).parent)
    mounts = {name: volume_targets(svc[name]) for name in ("broker-init", "mosquitto")}
    assert mounts["broker-init"][folder] == mounts["mosquitto"][folder]
    assert mounts["mosquitto"][str(DEPLOY_BROKER.persistence_dir)] in resolved["volumes"]
    dep = svc["mosquitto"]["depends_on"]["broker-init"]["condition"]
    assert dep == "service_completed_successfully"


def test_the_broker_runs_the_rendered_configuration(resolved: dict[str, Any]) -> None:
    broker = services(resolved)["mosquitto"]
    config_path = broker["command"][broker["command"].index("-c") + 1]
    source = bind_sources(broker)[config_path]
    assert source == ROOT / DEPLOY_CONF_PATH
    assert source.read_text() == render_mosquitto_conf(DEPLOY_BROKER)
    listeners = [line.split()[1] for line in source.read_text().splitlines() if "listener" in line]
    assert broker["healthcheck"]["test"][-1] in listeners


# ------------------------------------------------------------------ volumes and mounts


def volume_targets(service: dict[str, Any]) -> dict[str, str]:
    """container path → named volume."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            kind = "bind" if source.startswith(("/", ".")) else "volume"
        else:
            source, target, kind = volume.get("source", ""), volume["target"], volume["type"]
        if kind == "volume":
            found[target.rstrip("/")] = source
    return found


def bind_sources(service: dict[str, Any]) -> dict[str, Path]:
    """container path → the repository file or folder it binds (resolving the test links)."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        if source.startswith("/"):
            found[target] = Path(source).resolve()
    return found


def test_every_service_that_writes_keeps_its_data_on_a_named_volume(
    resolved: dict[str, Any],
) -> None:
    svc = services(resolved)
    prometheus_path = next(
        a.split("=", 1)[1] for a in svc["prometheus"]["command"] if "storage.tsdb.path" in a
    )
    data_dirs = {
        "timescaledb": "/var/lib/postgresql/data",
        "mosquitto": str(DEPLOY_BROKER.persistence_dir).rstrip("/"),
        "prometheus": prometheus_path,
        "grafana": "/var/lib/grafana",
        "sim": environment(svc["sim"])["QORGAU_EDGE_OUTBOX_DIR"],
    }
    for name, path in data_dirs.items():
        volume = volume_targets(svc[name]).get(path)
        assert volume in resolved["volumes"], f"{name}: {path} is not on a named volume"


def test_long_running_services_restart_and_report_health(resolved: dict[str, Any]) -> None:
    for name, service in services(resolved).items():
        if one_shot(service):
            continue
        assert service.get("restart") == "unless-stopped", name
        assert service.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"


def test_dependencies_wait_for_health_or_completion(resolved: dict[str, Any]) -> None:
    svc = services(resolved)
    for name, service in svc.items():
        for dependency, spec in service.get("depends_on", {}).items():
            expected = (
                "service_completed_successfully" if one_shot(svc[dependency]) else "service_healthy"
            )
            assert spec["condition"] == expected, f"{name} → {dependency}"
    for name in ("ingest-1", "ingest-2", "alerts", "api"):
        assert "db-migrate" in svc[name]["depends_on"], f"{name} must start after migrations"
        assert "--no-upgrade" in svc[name]["command"] or svc[name]["command"] == ["api"]


# ------------------------------------------------------------------ healthchecks against the code


def healthcheck_code(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    code: str = test[3]
    return code


def port_in(code: str) -> tuple[int, str]:
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/\w*)", code)
    assert match, code
    return int(match.group(1)), match.group(2)


def run_probe(code: str, port: int) -> int:
    probe = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", code)
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=20).returncode


@pytest.mark.anyio
async def test_the_ingest_healthcheck_asks_the_worker_its_readiness(
    resolved: dict[str, Any],
) -> None:
    import asyncio

    from ingest.http import serve_http
    from ingest.metrics import IngestMetrics
    from ingest.status import WorkerStatus

    for name in ("ingest-1", "ingest-2"):
        service = services(resolved)[name]
        port, path = port_in(healthcheck_code(service))
        assert port == int(environment(service)["QORGAU_INGEST_METRICS_PORT"])
        assert path == "/health"
    healthy = {"value": True}

    def status() -> WorkerStatus:
        return WorkerStatus(
            healthy=healthy["value"],
            broker_connected=healthy["value"],
            database_ok=True,
            writer_running=True,
            queue_messages=0,
            unacknowledged=0,
            last_commit_age_s=None,
            database_error=None,
        )

    server = await serve_http("127.0.0.1", 0, IngestMetrics().registry, status)
    try:
        bound = server.sockets[0].getsockname()[1]
        code = healthcheck_code(services(resolved)["ingest-1"])
        assert await asyncio.to_thread(run_probe, code, bound) == 0
        healthy["value"] = False
        assert await asyncio.to_thread(run_probe, code, bound) != 0
    finally:
        server.close()
        await server.wait_closed()


def test_the_alerts_healthcheck_reads_the_engine_readiness_gauge(resolved: dict[str, Any]) -> None:
    from prometheus_client import start_http_server

    from ingest.alerting.metrics import AlertMetrics

    service = services(resolved)["alerts"]
    code = healthcheck_code(service)
    port, path = port_in(code)
    assert port == int(environment(service)["QORGAU_ALERTS_METRICS_PORT"])
    assert path == "/metrics"
    metrics = AlertMetrics()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    try:
        assert run_probe(code, server.server_port) != 0  # not subscribed yet
        metrics.ready.set(1)
        assert run_probe(code, server.server_port) == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_api_healthcheck_calls_the_health_route(resolved: dict[str, Any]) -> None:
    from api.app import create_app
    from dashboards.reports import render as render_report

    service = services(resolved)["api"]
    port, path = port_in(healthcheck_code(service))
    env = environment(service)
    assert port == int(env["QORGAU_API_PORT"])
    assert env["QORGAU_API_HOST"] == "0.0.0.0", "the API must listen beyond the container"
    routes = {
        getattr(r, "path", None)
        for r in create_app(ApiSettings(), render_report=render_report).routes
    }
    assert path in routes
    published = [str(p) for p in service["ports"]]
    assert any(str(port) in p for p in published)


# ------------------------------------------------------------------ monitoring


def test_prometheus_scrapes_every_metrics_port(resolved: dict[str, Any]) -> None:
    svc = services(resolved)
    config_path = next(
        a.split("=", 1)[1] for a in svc["prometheus"]["command"] if "config.file" in a
    )
    config = yaml.safe_load(bind_sources(svc["prometheus"])[config_path].read_text())
    targets = {
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    expected = set()
    for name, service in svc.items():
        env = environment(service)
        for key in (
            "QORGAU_INGEST_METRICS_PORT",
            "QORGAU_ALERTS_METRICS_PORT",
            "QORGAU_ASSESS_METRICS_PORT",
        ):
            if env.get(key):
                expected.add(f"{name}:{env[key]}")
        # The API serves /metrics on its own port unless QORGAU_API_METRICS turns it off.
        if service.get("command") == ["api"] and env.get("QORGAU_API_METRICS", "true") != "false":
            expected.add(f"{name}:{env['QORGAU_API_PORT']}")
    assert expected == targets
    assert {
        "ingest-1:9101",
        "ingest-2:9101",
        "alerts:9102",
        "assessments:9103",
        "api:8000",
    } <= targets


def test_grafana_provisioning_points_at_files_that_exist(resolved: dict[str, Any]) -> None:
    grafana = services(resolved)["grafana"]
    binds = bind_sources(grafana)
    provisioning = binds["/etc/grafana/provisioning"]
    assert provisioning.is_dir()
    providers = yaml.safe_load((provisioning / "dashboards" / "qorgau.yaml").read_text())
    for provider in providers["providers"]:
        folder = binds[provider["options"]["path"]]
        assert folder == ROOT / "dashboards" / "grafana"
        assert sorted(folder.glob("*.json")), "no dashboards to provision"
    sources = yaml.safe_load((provisioning / "datasources" / "qorgau.yaml").read_text())
    by_uid = {d["uid"]: d for d in sources["datasources"]}
    assert by_uid[DEFAULT_DATASOURCE_UID]["type"] == DATASOURCE_TYPE
    assert by_uid[PROMETHEUS_DATASOURCE_UID]["type"] == "prometheus"
    host = by_uid[DEFAULT_DATASOURCE_UID]["url"].split(":")[0]
    assert host in services(resolved)
    # The password reaches Grafana as an environment variable the provisioning file expands.
    secret = by_uid[DEFAULT_DATASOURCE_UID]["secureJsonData"]["password"]
    assert secret.startswith("$")
    assert secret[1:] in environment(grafana)
    prometheus = by_uid[PROMETHEUS_DATASOURCE_UID]["url"].split("//")[1].split(":")[0]
    assert prometheus in services(resolved)
    # Every dashboard asks for a data source of a type provisioned here.
    types = {d["type"] for d in sources["datasources"]}
    for path in (ROOT / "dashboards" / "grafana").glob("*.json"):
        board = json.loads(path.read_text())
        wanted = {v["query"] for v in board["templating"]["list"] if v["type"] == "datasource"}
        assert wanted <= types, path.name


# ------------------------------------------------------------------ .env.example


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def referenced_variables(data: Any) -> set[str]:
    """``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}`` and ``$VAR`` in the file's values
    (not its comments); ``$$`` is a literal dollar."""
    text = "\n".join(strings(data)).replace("$$", "")
    return set(re.findall(r"\$\{([A-Za-z_]\w*)", text)) | set(re.findall(r"\$([A-Za-z_]\w*)", text))


def example_variables() -> set[str]:
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            names.add(line.split("=", 1)[0].strip())
    return names


def test_env_example_covers_every_variable_the_compose_file_uses(raw: dict[str, Any]) -> None:
    used = referenced_variables(raw)
    assert used, "the compose file reads no variables?"
    assert used <= example_variables(), used - example_variables()


def test_the_coverage_check_sees_a_new_variable(raw: dict[str, Any]) -> None:
    changed = copy.deepcopy(raw)
    changed["services"]["api"]["environment"]["X"] = "${NOT_IN_THE_EXAMPLE:-1} $$ESCAPED"
    assert referenced_variables(changed) - example_variables() == {"NOT_IN_THE_EXAMPLE"}


def test_no_secret_is_written_in_the_compose_file(raw: dict[str, Any]) -> None:
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"(PASSWORD|SECRET|TOKEN)$", key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", str(value)), f"{name}: {key}"
            if "URL" in key and "@" in str(value):
                credentials = str(value).split("@")[0]
                assert re.search(r":\$\{\w+:\?[^}]*\}$", credentials), f"{name}: {key}"


# ------------------------------------------------------------------ Dockerfile


def final_stage() -> list[tuple[str, str]]:
    instructions: list[tuple[str, str]] = []
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    args = {}
    for word, rest in instructions:
        if word == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
    return [
        (word, re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest))
        for word, rest in instructions[last_from:]
    ]


def test_the_image_runs_qorgau_as_a_fixed_non_root_user() -> None:
    stage = final_stage()
    assert stage[0][1].startswith("python:3.11-slim")
    users = [rest for word, rest in stage if word == "USER"]
    assert users, "the final stage must switch user"
    user = users[-1].split(":")[0]
    assert user.isdigit(), f"USER {users[-1]}: a fixed uid"
    assert int(user) != 0, f"USER {users[-1]}: not root"
    assert ("ENTRYPOINT", '["qorgau"]') in stage
    assert any(word == "COPY" and rest.startswith("--from=builder") for word, rest in stage)


def test_the_image_installs_the_server_extra_and_ships_every_package() -> None:
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "[server]" in dockerfile
    assert "server" in pyproject["project"]["optional-dependencies"]
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.M))
    assert packages == copied
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert not (packages | {"pyproject.toml", "README.md"}) & ignored


def test_the_compose_services_run_the_image_the_dockerfile_builds(
    resolved: dict[str, Any],
) -> None:
    built = [s for s in services(resolved).values() if is_qorgau(s)]
    assert len(built) >= 6
    assert {Path(s["build"]["context"]).resolve() for s in built} == {
        Path(str(next(iter(built))["build"]["context"])).resolve()
    }
    assert len({s["image"] for s in built}) == 1
