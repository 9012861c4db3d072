"""A stand-in for Grafana's HTTP API: a real HTTP server on a free loopback port that records
every request and answers the calls the publisher makes the way Grafana's API documentation
describes them (folders, data sources, dashboards; bearer-token auth). It keeps state, so a
second publish sees what the first one created. It is not Grafana: it checks shapes, not
rendering."""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class State:
    token: str
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        state = self.server.state
        auth = self.headers.get("Authorization")
        state.requests.append(Recorded(method, self.path, auth, body))
        if auth != f"Bearer {state.token}":
            self._answer(401, {"message": "Unauthorized"})
            return
        status, answer = _route(state, method, self.path, body)
        self._answer(status, answer)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")


Answer = tuple[int, Any]
_NOT_FOUND: Answer = (404, {"message": "Not found"})


def _route(state: State, method: str, path: str, body: Any) -> Answer:
    parts = path.split("?")[0].strip("/").split("/")
    if parts[:2] == ["api", "folders"]:
        return _folders(state, method, parts, body)
    if parts[:2] == ["api", "datasources"]:
        return _datasources(state, method, parts, body)
    if parts == ["api", "dashboards", "db"] and method == "POST":
        return _save_dashboard(state, body)
    return _NOT_FOUND


def _folders(state: State, method: str, parts: list[str], body: Any) -> Answer:
    if method == "GET" and len(parts) == 3:
        found = state.folders.get(parts[2])
        return (200, found) if found else (404, {"message": "folder not found"})
    if method == "POST" and len(parts) == 2:
        uid = body.get("uid") or f"f{len(state.folders)}"
        if uid in state.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        if not body.get("title"):
            return 400, {"message": "folder title cannot be empty"}
        folder = {
            "id": next(state.ids),
            "uid": uid,
            "title": body["title"],
            "url": f"/dashboards/f/{uid}/",
            "version": 1,
        }
        state.folders[uid] = folder
        return 200, folder
    return _NOT_FOUND


def _datasources(state: State, method: str, parts: list[str], body: Any) -> Answer:
    if len(parts) == 4 and parts[2] == "uid":
        uid = parts[3]
        if method == "GET":
            found = state.datasources.get(uid)
            return (200, found) if found else (404, {"message": "Data source not found"})
        if method == "PUT":
            if uid not in state.datasources:
                return 404, {"message": "Data source not found"}
            stored = {**body, "id": state.datasources[uid]["id"], "uid": uid}
            stored["version"] = state.datasources[uid]["version"] + 1
            state.datasources[uid] = stored
            return 200, {
                "datasource": stored,
                "id": stored["id"],
                "message": "Datasource updated",
                "name": stored["name"],
            }
    if method == "POST" and len(parts) == 2:
        if any(d["name"] == body.get("name") for d in state.datasources.values()):
            return 409, {"message": "data source with the same name already exists"}
        for key in ("name", "type", "access"):
            if not body.get(key):
                return 400, {"message": f"{key} is required"}
        uid = body.get("uid") or f"ds{len(state.datasources)}"
        stored = {**body, "id": next(state.ids), "uid": uid, "version": 1}
        state.datasources[uid] = stored
        return 200, {
            "datasource": stored,
            "id": stored["id"],
            "message": "Datasource added",
            "name": stored["name"],
        }
    return _NOT_FOUND


def _save_dashboard(state: State, body: Any) -> Answer:
    dashboard = body.get("dashboard") or {}
    if not dashboard.get("title"):
        return 400, {"message": "Dashboard title cannot be empty", "status": "empty-name"}
    folder = body.get("folderUid")
    if folder and folder not in state.folders:
        return 400, {"message": "folder not found", "status": "not-found"}
    # Grafana makes up a uid for a dashboard saved without one.
    uid = str(dashboard.get("uid") or f"d{len(state.dashboards)}")
    old = state.dashboards.get(uid)
    if (
        old is not None
        and not body.get("overwrite")
        and dashboard.get("version") != old["dashboard"].get("version")
    ):
        return 412, {
            "message": "The dashboard has been changed by someone else",
            "status": "version-mismatch",
        }
    version = 1 if old is None else old["dashboard"]["version"] + 1
    ident = next(state.ids) if old is None else old["dashboard"]["id"]
    saved = {**dashboard, "id": ident, "version": version}
    state.dashboards[uid] = {"dashboard": saved, "folderUid": folder}
    slug = str(dashboard["title"]).lower().replace(" ", "-")
    return 200, {
        "id": ident,
        "uid": uid,
        "url": f"/d/{uid}/{slug}",
        "status": "success",
        "version": version,
        "slug": slug,
    }


class _Server(ThreadingHTTPServer):
    state: State


class FakeGrafana:
    def __init__(self, token: str) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.state = State(token)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def state(self) -> State:
        return self.server.state

    def __enter__(self) -> FakeGrafana:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
