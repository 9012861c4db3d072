"""Request dependencies as type aliases, so routes stay short."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from psycopg import AsyncConnection

from analytics import Norms
from api.settings import ApiSettings


async def get_conn(request: Request) -> AsyncIterator[AsyncConnection[Any]]:
    async with request.app.state.pool.connection() as conn:
        yield conn


# Coroutines, not plain functions: FastAPI runs a plain function dependency in a worker
# thread, two thread hops a request for a lookup that never blocks.
async def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def get_norms(request: Request) -> Norms:
    norms: Norms = request.app.state.norms
    return norms


# Back to the pool when the handler returns, before the response is sent: a long response
# (the alert stream) must not hold a connection.
ConnDep = Annotated[AsyncConnection[Any], Depends(get_conn, scope="function")]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
NormsDep = Annotated[Norms, Depends(get_norms)]

# Ids in paths: bigint identities (sensors are integer), bounded so that no value reaches the
# database that it would reject as out of range.
EnterpriseId = Annotated[int, Path(ge=1, le=2**63 - 1, description="enterprise id")]
SiteId = Annotated[int, Path(ge=1, le=2**63 - 1, description="site id")]
WorkplaceId = Annotated[int, Path(ge=1, le=2**63 - 1, description="workplace id")]
DeviceId = Annotated[int, Path(ge=1, le=2**63 - 1, description="device id")]
SensorId = Annotated[int, Path(ge=1, le=2**31 - 1, description="sensor id")]

Limit = Annotated[int, Query(ge=1, le=1000, description="most items per page")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="items to skip")]

# Calendar dates in queries: bounded so that shift arithmetic and the database stay in range.
Day = Annotated[
    date | None,
    Query(ge=date(2000, 1, 1), le=date(2100, 12, 31), description="local date, YYYY-MM-DD"),
]
