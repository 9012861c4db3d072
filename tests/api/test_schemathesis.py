"""Schemathesis against the live OpenAPI schema of a running server: generated requests for
every operation (bounded per operation) never get a 5xx answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Err

from api.app import create_app
from api.settings import ApiSettings
from dashboards.reports import render as render_report
from qorgau.demo import EmbeddedServer
from qorgau.localservices import free_port
from store.auth import Role

pytestmark = [pytest.mark.services]

EXAMPLES_PER_OPERATION = 25
NEGATIVE_EXAMPLES_PER_OPERATION = 10


@pytest.fixture
def live_api(pg_url: str, schema: str) -> Iterator[str]:
    port = free_port()
    app = create_app(
        ApiSettings(
            database_url=pg_url,
            database_schema=schema,
            api_alert_stream=False,
            api_live_stream=False,
        ),
        render_report=render_report,
    )
    server = EmbeddedServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def _token(pg_url: str, schema: str, role: Role, **kwargs: Any) -> str:
    import asyncio

    from store.auth import create_token
    from store.connection import connect_async

    async def make() -> str:
        conn = await connect_async(pg_url, schema, autocommit=True)
        async with conn:
            token, _ = await create_token(conn, name=role.value, role=role, **kwargs)
            return token

    return asyncio.run(make())


def _world(base: str, admin: str) -> dict[str, int]:
    """One enterprise with a site, workplace, device and sensor, so that generated requests
    also reach real objects."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}) as http:

        def post(path: str, body: dict[str, Any]) -> int:
            response = http.post(path, json=body)
            assert response.status_code == 201, response.text
            return int(response.json()["id"])

        eid = post("/api/v1/enterprises", {"code": "st-ent", "name": "E", "region": "Almaty"})
        site = post(f"/api/v1/enterprises/{eid}/sites", {"code": "s", "name": "S"})
        wp = post(f"/api/v1/enterprises/{eid}/workplaces", {"code": "w", "name": "W"})
        dev = post(f"/api/v1/enterprises/{eid}/devices", {"code": "st-dev", "workplace_id": wp})
        sensor = post(
            f"/api/v1/devices/{dev}/sensors",
            {"code": "st-dev.co", "quantity": "gas", "unit": "ppm", "substance": "CO"},
        )
    return {
        "enterprise_id": eid,
        "site_id": site,
        "workplace_id": wp,
        "device_id": dev,
        "sensor_id": sensor,
    }


def test_no_server_errors(live_api: str, pg_url: str, schema: str) -> None:
    admin = _token(pg_url, schema, Role.ADMIN)
    ids = _world(live_api, admin)
    officer = _token(pg_url, schema, Role.SAFETY_OFFICER, enterprise_id=ids["enterprise_id"])
    api_schema = schemathesis.openapi.from_url(f"{live_api}/openapi.json")
    failures: list[str] = []
    answered: dict[str, set[int]] = {}
    operations = 0
    for result in api_schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        operations += 1
        if operation.path in ("/api/v1/alerts/stream", "/api/v1/workplaces/{workplace_id}/live"):
            # Endless event streams (503 here, with the hubs off); covered by their own tests.
            continue
        params = {p: ids[p] for p in ids if "{" + p + "}" in operation.path}
        variants: list[tuple[GenerationMode, dict[str, Any], str, int]] = [
            (GenerationMode.POSITIVE, {}, admin, EXAMPLES_PER_OPERATION),
            (GenerationMode.NEGATIVE, {}, admin, NEGATIVE_EXAMPLES_PER_OPERATION),
        ]
        if params:
            variants.append((GenerationMode.POSITIVE, params, officer, EXAMPLES_PER_OPERATION))
        for mode, fixed, token, examples in variants:
            strategy = operation.as_strategy(
                generation_mode=mode,
                path_parameters=fixed or None,
                headers={"Authorization": f"Bearer {token}"},
            )

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def run(case: Any) -> None:
                response = case.call(base_url=live_api, timeout=60)
                answered.setdefault(case.operation.label, set()).add(response.status_code)
                if response.status_code >= 500:
                    failures.append(
                        f"{response.status_code} for {case.method} {case.formatted_path} "
                        f"query={case.query} body={getattr(case, 'body', None)!r}: "
                        f"{response.text[:300]}"
                    )

            try:
                run()
            except Unsatisfiable:
                # Nothing to make invalid (e.g. no parameters besides the token).
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert operations >= 30
    # The generated requests got past validation and auth into the handlers of most operations.
    succeeded = [label for label, codes in answered.items() if codes & {200, 201}]
    print(f"{len(succeeded)} of {operations} operations answered 2xx; statuses: {answered}")
    assert len(succeeded) >= operations * 0.7, answered
    assert not failures, "\n".join(failures[:20])
