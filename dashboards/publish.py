"""Publish the Grafana dashboards of ``dashboards/grafana/`` with grafana-client.

Idempotent: the folder and the PostgreSQL data source are looked up by uid and created only
when missing (the data source is updated to the given connection otherwise), and every
dashboard is saved by uid with ``overwrite``, so publishing twice changes nothing but the
dashboards' version numbers. The same JSON files serve Grafana's file provisioning unchanged
(``deploy/grafana/provisioning`` uses the same uids).

The exposure dashboards read PostgreSQL; the system-health dashboard (``qorgau-system.json``)
reads Prometheus. Each picks its data source through a variable of that type, so given a
Prometheus address the publisher also creates (or updates) a Prometheus data source.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from vocabulary.errors import QorgauError

DATASOURCE_TYPE = "grafana-postgresql-datasource"
DEFAULT_FOLDER_UID = "qorgau"
DEFAULT_DATASOURCE_UID = "qorgau-postgres"
PROMETHEUS_DATASOURCE_UID = "qorgau-prometheus"


class PublishError(QorgauError):
    """Grafana refused or could not be reached; the message says what it answered."""


def bundled_dashboards() -> list[dict[str, Any]]:
    """Every dashboard JSON shipped in ``dashboards/grafana`` (ours and the ops ones)."""
    folder = resources.files("dashboards").joinpath("grafana")
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            found.append(json.loads(entry.read_text(encoding="utf-8")))
    return found


def datasource_model(database_url: str, *, name: str, uid: str, timescale: bool) -> dict[str, Any]:
    """A PostgreSQL data source of Grafana for ``database_url`` (Grafana's own connection)."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise PublishError(
            f"the database URL must look like postgresql://user:password@host:port/database, "
            f"got {parts.scheme}://…"
        )
    database = unquote(parts.path.lstrip("/")) or "postgres"
    json_data: dict[str, Any] = {
        "database": database,
        "sslmode": "disable" if parts.hostname in ("127.0.0.1", "localhost") else "require",
        "postgresVersion": 1500,
        "timescaledb": timescale,
    }
    model: dict[str, Any] = {
        "name": name,
        "uid": uid,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "url": f"{parts.hostname}:{parts.port or 5432}",
        "user": unquote(parts.username or "postgres"),
        "database": database,  # older Grafana reads it here, newer in jsonData
        "jsonData": json_data,
        "isDefault": False,
    }
    if parts.password:
        model["secureJsonData"] = {"password": unquote(parts.password)}
    return model


def prometheus_datasource_model(url: str, *, name: str, uid: str) -> dict[str, Any]:
    """A Prometheus data source of Grafana (the metrics of ingest and the alert engine)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PublishError(f"the Prometheus URL must look like http://host:9090, got {url!r}")
    return {
        "name": name,
        "uid": uid,
        "type": "prometheus",
        "access": "proxy",
        "url": url,
        "jsonData": {},
        "isDefault": False,
    }


def prepared(dashboard: dict[str, Any], schema: str) -> dict[str, Any]:
    """The dashboard as Grafana's save API wants it, its hidden ``schema`` constant set."""
    out = copy.deepcopy(dashboard)
    out["id"] = None
    for variable in out.get("templating", {}).get("list", []):
        if variable.get("name") == "schema" and variable.get("type") == "constant":
            variable["query"] = schema
            variable["current"] = {"text": schema, "value": schema}
            variable["options"] = [{"selected": True, "text": schema, "value": schema}]
    return out


@dataclass
class PublishResult:
    folder_uid: str
    datasource_uid: str
    folder_created: bool
    datasource_created: bool
    dashboards: list[str] = field(default_factory=list)  # urls Grafana answered
    prometheus_created: bool = False


def _missing(exc: GrafanaException) -> bool:
    return isinstance(exc, GrafanaClientError) and exc.status_code == 404


def _ensure_datasource(api: Any, uid: str, model: dict[str, Any]) -> bool:
    """Create the data source ``uid`` or update it to ``model``; True if it was created."""
    try:
        api.datasource.get_datasource_by_uid(uid)
    except GrafanaException as exc:
        if not _missing(exc):
            raise
        api.datasource.create_datasource(model)
        return True
    api.datasource.update_datasource_by_uid(uid, model)
    return False


def publish(
    grafana: GrafanaApi,
    *,
    database_url: str,
    schema: str,
    dashboards: Sequence[dict[str, Any]] | None = None,
    folder_title: str = "Qorgau",
    folder_uid: str = DEFAULT_FOLDER_UID,
    datasource_name: str = "Qorgau PostgreSQL",
    datasource_uid: str = DEFAULT_DATASOURCE_UID,
    timescale: bool = False,
    prometheus_url: str | None = None,
) -> PublishResult:
    model = datasource_model(
        database_url, name=datasource_name, uid=datasource_uid, timescale=timescale
    )
    prometheus = (
        prometheus_datasource_model(
            prometheus_url, name="Qorgau Prometheus", uid=PROMETHEUS_DATASOURCE_UID
        )
        if prometheus_url
        else None
    )
    # grafana-client's element methods are untyped: one Any-typed seam for all calls.
    api: Any = grafana
    try:
        folder_created = False
        try:
            api.folder.get_folder(folder_uid)
        except GrafanaException as exc:
            if not _missing(exc):
                raise
            api.folder.create_folder(folder_title, uid=folder_uid)
            folder_created = True

        datasource_created = _ensure_datasource(api, datasource_uid, model)
        result = PublishResult(folder_uid, datasource_uid, folder_created, datasource_created)
        if prometheus is not None:
            result.prometheus_created = _ensure_datasource(
                api, PROMETHEUS_DATASOURCE_UID, prometheus
            )
        for dashboard in dashboards if dashboards is not None else bundled_dashboards():
            answer = api.dashboard.update_dashboard(
                {
                    "dashboard": prepared(dashboard, schema),
                    "folderUid": folder_uid,
                    "overwrite": True,
                    "message": "qorgau dashboards publish",
                }
            )
            result.dashboards.append(str(answer.get("url") or dashboard.get("uid")))
        return result
    except GrafanaException as exc:
        raise PublishError(f"Grafana answered {exc.status_code}: {exc.message}") from exc
    except OSError as exc:  # connection refused, DNS, TLS
        raise PublishError(f"cannot reach Grafana: {exc}") from exc
