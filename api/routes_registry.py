"""Registry: enterprises, sites, workplaces, devices and sensors (create, read, update, list)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query
from psycopg import AsyncConnection
from pydantic import BaseModel

from api.auth import Admin, Reader, Writer
from api.deps import (
    ConnDep,
    DeviceId,
    EnterpriseId,
    Limit,
    Offset,
    SensorId,
    SiteId,
    WorkplaceId,
)
from api.errors import not_found_response
from api.models import error_responses
from api.models_registry import (
    DeviceCreate,
    DevicePublic,
    DeviceUpdate,
    EnterpriseCreate,
    EnterprisePublic,
    EnterpriseUpdate,
    Page,
    SensorCreate,
    SensorPublic,
    SensorUpdate,
    SiteCreate,
    SitePublic,
    SiteUpdate,
    WorkplaceCreate,
    WorkplacePublic,
    WorkplaceUpdate,
    changed,
)
from application.localisation import Message
from store import catalog
from store.auth import Role
from store.catalog import Scope

router = APIRouter(prefix="/api/v1", tags=["registry"], responses=error_responses())

NOT_FOUND = not_found_response("object")
RefFilter = Annotated[int | None, Query(ge=1, le=2**63 - 1)]

P = TypeVar("P", bound=BaseModel)

# Fields that decide the tariff and the inspectors' jurisdiction (the norms profile sets the
# limits, classes and ПР behind the tariff): only an admin sets them.
_ADMIN_ONLY_ENTERPRISE_FIELDS = frozenset(
    {"region", "activity_risk_class", "base_rate_pct", "norms_profile"}
)


async def _page(
    conn: AsyncConnection[Any],
    noun: str,
    model: type[P],
    scope: Scope,
    filters: dict[str, Any],
    limit: int,
    offset: int,
) -> Page[P]:
    found = await catalog.page(conn, noun, scope, filters=filters, limit=limit, offset=offset)
    return Page[model](  # type: ignore[valid-type]
        items=[model.model_validate(r) for r in found.items],
        total=found.total,
        limit=limit,
        offset=offset,
    )


# --- enterprises ----------------------------------------------------------------------------


@router.post("/enterprises", status_code=201, response_model=EnterprisePublic)
async def create_enterprise(
    body: EnterpriseCreate, conn: ConnDep, token: Admin
) -> EnterprisePublic:
    row = await catalog.create(conn, "enterprise", body.model_dump(), token.scope)
    return EnterprisePublic.model_validate(row)


@router.get("/enterprises", response_model=Page[EnterprisePublic])
async def list_enterprises(
    conn: ConnDep,
    token: Reader,
    region: Annotated[str | None, Query(max_length=100)] = None,
    activity_risk_class: Annotated[int | None, Query(ge=1, le=22)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[EnterprisePublic]:
    filters = {"region": region, "activity_risk_class": activity_risk_class}
    return await _page(conn, "enterprise", EnterprisePublic, token.scope, filters, limit, offset)


@router.get("/enterprises/{enterprise_id}", response_model=EnterprisePublic, responses=NOT_FOUND)
async def get_enterprise(
    enterprise_id: EnterpriseId, conn: ConnDep, token: Reader
) -> EnterprisePublic:
    row = await catalog.require(conn, "enterprise", enterprise_id, token.scope)
    return EnterprisePublic.model_validate(row)


@router.patch("/enterprises/{enterprise_id}", response_model=EnterprisePublic, responses=NOT_FOUND)
async def update_enterprise(
    enterprise_id: EnterpriseId, body: EnterpriseUpdate, conn: ConnDep, token: Writer
) -> EnterprisePublic:
    values = changed(body)
    await catalog.require(conn, "enterprise", enterprise_id, token.scope)
    restricted = sorted(_ADMIN_ONLY_ENTERPRISE_FIELDS & values.keys())
    if restricted and token.role is not Role.ADMIN:
        raise HTTPException(
            403, Message("only an admin may change {fields}", fields=", ".join(restricted))
        )
    row = await catalog.update(conn, "enterprise", enterprise_id, values, token.scope)
    return EnterprisePublic.model_validate(row)


# --- sites ----------------------------------------------------------------------------------


@router.post(
    "/enterprises/{enterprise_id}/sites",
    status_code=201,
    response_model=SitePublic,
    responses=NOT_FOUND,
)
async def create_site(
    enterprise_id: EnterpriseId, body: SiteCreate, conn: ConnDep, token: Writer
) -> SitePublic:
    row = await catalog.create(
        conn, "site", body.model_dump(), token.scope, parent=("enterprise", enterprise_id)
    )
    return SitePublic.model_validate(row)


@router.get(
    "/enterprises/{enterprise_id}/sites", response_model=Page[SitePublic], responses=NOT_FOUND
)
async def list_sites(
    enterprise_id: EnterpriseId,
    conn: ConnDep,
    token: Reader,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[SitePublic]:
    await catalog.require(conn, "enterprise", enterprise_id, token.scope)
    filters = {"enterprise_id": enterprise_id}
    return await _page(conn, "site", SitePublic, token.scope, filters, limit, offset)


@router.get("/sites/{site_id}", response_model=SitePublic, responses=NOT_FOUND)
async def get_site(site_id: SiteId, conn: ConnDep, token: Reader) -> SitePublic:
    return SitePublic.model_validate(await catalog.require(conn, "site", site_id, token.scope))


@router.patch("/sites/{site_id}", response_model=SitePublic, responses=NOT_FOUND)
async def update_site(
    site_id: SiteId, body: SiteUpdate, conn: ConnDep, token: Writer
) -> SitePublic:
    row = await catalog.update(conn, "site", site_id, changed(body), token.scope)
    return SitePublic.model_validate(row)


# --- workplaces -----------------------------------------------------------------------------


@router.post(
    "/enterprises/{enterprise_id}/workplaces",
    status_code=201,
    response_model=WorkplacePublic,
    responses=NOT_FOUND,
)
async def create_workplace(
    enterprise_id: EnterpriseId, body: WorkplaceCreate, conn: ConnDep, token: Writer
) -> WorkplacePublic:
    row = await catalog.create(
        conn, "workplace", body.model_dump(), token.scope, parent=("enterprise", enterprise_id)
    )
    return WorkplacePublic.model_validate(row)


@router.get(
    "/enterprises/{enterprise_id}/workplaces",
    response_model=Page[WorkplacePublic],
    responses=NOT_FOUND,
)
async def list_workplaces(
    enterprise_id: EnterpriseId,
    conn: ConnDep,
    token: Reader,
    site_id: RefFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[WorkplacePublic]:
    await catalog.require(conn, "enterprise", enterprise_id, token.scope)
    filters = {"enterprise_id": enterprise_id, "site_id": site_id}
    return await _page(conn, "workplace", WorkplacePublic, token.scope, filters, limit, offset)


@router.get("/workplaces/{workplace_id}", response_model=WorkplacePublic, responses=NOT_FOUND)
async def get_workplace(workplace_id: WorkplaceId, conn: ConnDep, token: Reader) -> WorkplacePublic:
    row = await catalog.require(conn, "workplace", workplace_id, token.scope)
    return WorkplacePublic.model_validate(row)


@router.patch("/workplaces/{workplace_id}", response_model=WorkplacePublic, responses=NOT_FOUND)
async def update_workplace(
    workplace_id: WorkplaceId, body: WorkplaceUpdate, conn: ConnDep, token: Writer
) -> WorkplacePublic:
    row = await catalog.update(conn, "workplace", workplace_id, changed(body), token.scope)
    return WorkplacePublic.model_validate(row)


# --- devices --------------------------------------------------------------------------------


@router.post(
    "/enterprises/{enterprise_id}/devices",
    status_code=201,
    response_model=DevicePublic,
    responses=NOT_FOUND,
)
async def create_device(
    enterprise_id: EnterpriseId, body: DeviceCreate, conn: ConnDep, token: Writer
) -> DevicePublic:
    row = await catalog.create(
        conn, "device", body.model_dump(), token.scope, parent=("enterprise", enterprise_id)
    )
    return DevicePublic.model_validate(row)


@router.get(
    "/enterprises/{enterprise_id}/devices",
    response_model=Page[DevicePublic],
    responses=NOT_FOUND,
)
async def list_devices(
    enterprise_id: EnterpriseId,
    conn: ConnDep,
    token: Reader,
    workplace_id: RefFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[DevicePublic]:
    await catalog.require(conn, "enterprise", enterprise_id, token.scope)
    filters = {"enterprise_id": enterprise_id, "workplace_id": workplace_id}
    return await _page(conn, "device", DevicePublic, token.scope, filters, limit, offset)


@router.get("/devices/{device_id}", response_model=DevicePublic, responses=NOT_FOUND)
async def get_device(device_id: DeviceId, conn: ConnDep, token: Reader) -> DevicePublic:
    return DevicePublic.model_validate(
        await catalog.require(conn, "device", device_id, token.scope)
    )


@router.patch("/devices/{device_id}", response_model=DevicePublic, responses=NOT_FOUND)
async def update_device(
    device_id: DeviceId, body: DeviceUpdate, conn: ConnDep, token: Writer
) -> DevicePublic:
    row = await catalog.update(conn, "device", device_id, changed(body), token.scope)
    return DevicePublic.model_validate(row)


# --- sensors --------------------------------------------------------------------------------


@router.post(
    "/devices/{device_id}/sensors",
    status_code=201,
    response_model=SensorPublic,
    responses=NOT_FOUND,
)
async def create_sensor(
    device_id: DeviceId, body: SensorCreate, conn: ConnDep, token: Writer
) -> SensorPublic:
    values = body.model_dump()
    values["quantity"] = body.quantity.value
    if values["workplace_id"] is None:
        device = await catalog.require(conn, "device", device_id, token.scope)
        values["workplace_id"] = device["workplace_id"]
    row = await catalog.create(conn, "sensor", values, token.scope, parent=("device", device_id))
    return SensorPublic.model_validate(row)


@router.get("/sensors", response_model=Page[SensorPublic])
async def list_sensors(
    conn: ConnDep,
    token: Reader,
    enterprise_id: RefFilter = None,
    workplace_id: RefFilter = None,
    device_id: RefFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[SensorPublic]:
    filters = {"e.id": enterprise_id, "workplace_id": workplace_id, "device_id": device_id}
    return await _page(conn, "sensor", SensorPublic, token.scope, filters, limit, offset)


@router.get("/sensors/{sensor_id}", response_model=SensorPublic, responses=NOT_FOUND)
async def get_sensor(sensor_id: SensorId, conn: ConnDep, token: Reader) -> SensorPublic:
    return SensorPublic.model_validate(
        await catalog.require(conn, "sensor", sensor_id, token.scope)
    )


@router.patch("/sensors/{sensor_id}", response_model=SensorPublic, responses=NOT_FOUND)
async def update_sensor(
    sensor_id: SensorId, body: SensorUpdate, conn: ConnDep, token: Writer
) -> SensorPublic:
    row = await catalog.update(conn, "sensor", sensor_id, changed(body), token.scope)
    return SensorPublic.model_validate(row)
