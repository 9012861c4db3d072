"""When PostgreSQL goes away the API answers 503 with a message, and /health says degraded."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from api.settings import ApiSettings
from qorgau.localservices import LocalPostgres
from store.migrate import upgrade
from tests.api.conftest import in_process

pytestmark = [pytest.mark.anyio, pytest.mark.services]


async def test_database_down_is_503(pg_factory: Callable[[], LocalPostgres]) -> None:
    server = pg_factory()
    upgrade(server.url, "qorgau", timescale="off")
    settings = ApiSettings(database_url=server.url, database_schema="qorgau")
    async with in_process(settings) as (app, http):
        assert (await http.get("/health")).status_code == 200
        server.stop()
        app.state.pool.timeout = 2.0
        health = await http.get("/health")
        assert health.status_code == 503
        response = await http.get(
            "/api/v1/enterprises",
            headers={"Authorization": "Bearer qg_whatever", "Accept-Language": "en"},
        )
        assert response.status_code == 503
        assert "unavailable" in response.json()["detail"]
