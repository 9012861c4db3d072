"""The system-health dashboard asks Prometheus only for metrics our services really export: every
metric name in its PromQL is checked against what a real ingest /metrics endpoint and a real alert
engine metrics server serve, and the API's registry (the same servers and registries the commands
start)."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.conftest import ROOT

BOARD = ROOT / "dashboards" / "grafana" / "qorgau-system.json"
# Prometheus's own series about every scrape, not ours.
PROMETHEUS_BUILTINS = {"up"}
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created", ""),
    "gauge": ("",),
}


def metric_names(expr: str) -> set[str]:
    """Series names a PromQL expression selects (not functions, labels, grouping or ranges)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)  # Grafana variables
    text = re.sub(r"\boffset\s+\w+", "", text)  # offset 5m
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", text):
        following = text[match.end() :].lstrip()[:1]
        if following != "(" and match.group(0) not in KEYWORDS:
            names.add(match.group(0))
    return names


def exported(exposition: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(exposition):
        base = family.name.removesuffix("_total")
        names |= {base + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def board() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(BOARD.read_text())
    return loaded


def expressions() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in board()["panels"]
        for target in panel.get("targets", [])
    ]


@pytest.fixture(scope="module")
def served() -> set[str]:
    """What ingest's /metrics and the alert engine's metrics server expose, scraped over HTTP."""
    import asyncio

    from prometheus_client import generate_latest, start_http_server

    from api.metrics import ApiMetrics
    from ingest.alerting.metrics import AlertMetrics
    from ingest.http import serve_http
    from ingest.metrics import IngestMetrics
    from ingest.status import WorkerStatus

    def fetch(port: int, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            body: bytes = answer.read()
            return body.decode()

    async def scrape_ingest() -> str:
        status = WorkerStatus(
            healthy=True,
            broker_connected=True,
            database_ok=True,
            writer_running=True,
            queue_messages=0,
            unacknowledged=0,
            last_commit_age_s=None,
            database_error=None,
        )
        server = await serve_http("127.0.0.1", 0, IngestMetrics().registry, lambda: status)
        try:
            port = server.sockets[0].getsockname()[1]
            return await asyncio.to_thread(fetch, port, "/metrics")
        finally:
            server.close()
            await server.wait_closed()

    ingest = asyncio.run(scrape_ingest())
    http, thread = start_http_server(0, addr="127.0.0.1", registry=AlertMetrics().registry)
    try:
        alerts = fetch(http.server_port, "/metrics")
    finally:
        http.shutdown()
        http.server_close()
        thread.join(5)
    # The API serves its registry at /metrics as generate_latest renders it (tests/api covers
    # the route itself).
    api = generate_latest(ApiMetrics().registry).decode()
    return exported(ingest) | exported(alerts) | exported(api)


def test_the_scrape_sees_both_services(served: set[str]) -> None:
    assert "qorgau_ingest_readings_total" in served
    assert "qorgau_ingest_commit_seconds_bucket" in served
    assert "qorgau_alerts_ready" in served
    assert "qorgau_api_response_start_seconds_bucket" in served
    # A labelled counter with no samples yet is still announced (HELP/TYPE).
    assert "qorgau_ingest_quarantined_total" in served


def test_every_metric_in_the_dashboard_is_exported(served: set[str]) -> None:
    used = {name for _, expr in expressions() for name in metric_names(expr)}
    assert len(used) >= 20
    assert used - PROMETHEUS_BUILTINS <= served, sorted(used - PROMETHEUS_BUILTINS - served)


def test_the_dashboard_covers_what_operators_watch() -> None:
    used = {name for _, expr in expressions() for name in metric_names(expr)}
    for wanted in (
        "qorgau_ingest_readings_total",
        "qorgau_ingest_commit_seconds_bucket",
        "qorgau_ingest_broker_lag_seconds",
        "qorgau_ingest_unacknowledged_messages",
        "qorgau_ingest_quarantined_total",
        "qorgau_ingest_duplicate_messages_total",
        "qorgau_ingest_mqtt_reconnects_total",
        "qorgau_ingest_broker_connected",
        "qorgau_ingest_database_ok",
        "qorgau_alerts_receive_to_publish_seconds_bucket",
        "qorgau_alerts_open",
        "qorgau_alerts_webhook_deliveries_total",
    ):
        assert wanted in used, wanted


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            "histogram_quantile(0.99, sum by (le) (rate(qorgau_ingest_commit_seconds_bucket"
            '{job="qorgau-ingest"}[$__rate_interval])))',
            {"qorgau_ingest_commit_seconds_bucket"},
        ),
        (
            "time() - qorgau_ingest_last_commit_timestamp_seconds",
            {"qorgau_ingest_last_commit_timestamp_seconds"},
        ),
        (
            "sum by (reason) (increase(qorgau_ingest_quarantine_total[1h]))",
            {"qorgau_ingest_quarantine_total"},
        ),
        ("a / on (instance) group_left b offset 5m", {"a", "b"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_misspelt_metric_would_be_caught(served: set[str]) -> None:
    # "quarantine" for "quarantined": the check above must see it.
    assert not metric_names("rate(qorgau_ingest_quarantine_total[5m])") <= served


def test_panels_read_the_prometheus_variable() -> None:
    variables = board()["templating"]["list"]
    assert [v["query"] for v in variables if v["type"] == "datasource"] == ["prometheus"]
    for panel in board()["panels"]:
        for target in panel.get("targets", []):
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert target["datasource"] == panel["datasource"]


def test_the_dashboard_file_is_shipped_as_package_data() -> None:
    from dashboards.publish import bundled_dashboards

    assert "qorgau-system" in {d["uid"] for d in bundled_dashboards()}
    assert Path(BOARD).name.startswith("qorgau-")
