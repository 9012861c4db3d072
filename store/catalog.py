"""The registry as the API reads and writes it: enterprises, sites, workplaces, devices and
sensors, every query filtered by the caller's tenant :class:`Scope`.

An object outside the scope behaves exactly like one that does not exist (None / no row), so
that callers cannot learn other tenants' ids. psycopg errors become ours here, once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection, errors, sql
from psycopg.abc import QueryNoTemplate
from psycopg.rows import dict_row

from store.connection import DatabaseError, DatabaseUnavailableError

Row = dict[str, Any]


class NotFoundError(DatabaseError):
    """No such object, or not one the caller may see."""

    def __init__(self, message: str, noun: str | None = None, ident: int | None = None) -> None:
        super().__init__(message)
        # Kept apart so that the API can say it in the reader's language.
        self.noun = noun
        self.ident = ident


class ConflictError(DatabaseError):
    """The object clashes with an existing one (a code already taken)."""


class InvalidInputError(DatabaseError):
    """The database refused the values (a reference to a missing object, a failed check)."""


# What a clash on a unique constraint means, by table. PostgreSQL's own text names the key and
# its value (``Key (code)=(devb-1) already exists``); device codes are unique across tenants
# (a device's code is its broker user), so that text could show another tenant's data: the
# answer says only which kind of code is taken, never by whom.
_TAKEN = {
    "enterprises": "an enterprise with this code already exists; choose another code",
    "sites": "a site with this code already exists in this enterprise; choose another code",
    "workplaces": "a workplace with this code already exists in this enterprise; choose "
    "another code",
    "devices": "a device with this code already exists; device codes are unique across all "
    "enterprises (a device's code is its broker user), so choose another code, e.g. one that "
    "starts with the enterprise's code",
    "sensors": "a sensor with this code already exists on this device; choose another code",
}
_TAKEN_OTHER = "an object with these values already exists"


def conflict_message(table: str | None) -> str:
    """The answer to a unique-constraint clash on ``table``: which code is taken, no values."""
    return _TAKEN.get(table or "", _TAKEN_OTHER)


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    try:
        yield
    except errors.UniqueViolation as exc:
        raise ConflictError(conflict_message(exc.diag.table_name)) from exc
    except (errors.ForeignKeyViolation, errors.CheckViolation, errors.NotNullViolation) as exc:
        detail = exc.diag.message_primary or str(exc)
        raise InvalidInputError(f"refused by the database: {detail}") from exc
    except (errors.NumericValueOutOfRange, errors.InvalidDatetimeFormat) as exc:
        raise InvalidInputError(f"value out of range: {exc.diag.message_primary}") from exc
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(f"database unavailable: {exc}".strip()) from exc


@dataclass(frozen=True, slots=True)
class Scope:
    """Which enterprises a caller may see: one enterprise, the enterprises of some regions, or
    (both None) all of them."""

    enterprise_id: int | None = None
    regions: tuple[str, ...] | None = None

    def where(self, alias: str = "e") -> tuple[sql.Composable, list[Any]]:
        """A boolean SQL condition on the enterprise table aliased ``alias``."""
        if self.enterprise_id is not None:
            return sql.SQL("{} = %s").format(sql.Identifier(alias, "id")), [self.enterprise_id]
        if self.regions is not None:
            condition = sql.SQL("{} = ANY(%s)").format(sql.Identifier(alias, "region"))
            return condition, [list(self.regions)]
        return sql.SQL("TRUE"), []

    @property
    def unrestricted(self) -> bool:
        return self.enterprise_id is None and self.regions is None


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Row]
    total: int


# What identifies an instrument on a report: on devices and, where a channel has its own, sensors.
INSTRUMENT_COLUMNS = ("model", "serial_number", "calibration_certificate")


@dataclass(frozen=True, slots=True)
class _Kind:
    """How one kind of registry object is selected, and which table holds it."""

    noun: str
    table: str
    alias: str
    select: str
    writable: frozenset[str]


_ENTERPRISE = _Kind(
    "enterprise",
    "enterprises",
    "e",
    """SELECT e.id, e.code, e.name, e.region, e.timezone, e.norms_profile, e.activity_code,
              e.activity_risk_class, e.base_rate_pct, e.latitude, e.longitude, e.created_at,
              e.updated_at
       FROM enterprises e""",
    frozenset(
        {
            "code",
            "name",
            "region",
            "timezone",
            "norms_profile",
            "activity_code",
            "activity_risk_class",
            "base_rate_pct",
            "latitude",
            "longitude",
        }
    ),
)
_SITE = _Kind(
    "site",
    "sites",
    "s",
    """SELECT s.id, s.enterprise_id, s.code, s.name, s.address, s.created_at, s.updated_at
       FROM sites s JOIN enterprises e ON e.id = s.enterprise_id""",
    frozenset({"enterprise_id", "code", "name", "address"}),
)
_WORKPLACE = _Kind(
    "workplace",
    "workplaces",
    "w",
    """SELECT w.id, w.enterprise_id, w.site_id, w.code, w.name, w.profession, w.headcount,
              w.shift_starts, w.shift_duration_s, e.timezone, e.name AS enterprise_name,
              w.created_at, w.updated_at
       FROM workplaces w JOIN enterprises e ON e.id = w.enterprise_id""",
    frozenset(
        {
            "enterprise_id",
            "site_id",
            "code",
            "name",
            "profession",
            "headcount",
            "shift_starts",
            "shift_duration_s",
        }
    ),
)
_DEVICE = _Kind(
    "device",
    "devices",
    "d",
    """SELECT d.id, d.enterprise_id, d.workplace_id, d.code, d.name, d.model, d.serial_number,
              d.calibrated_on, d.calibration_certificate, d.created_at, d.updated_at
       FROM devices d JOIN enterprises e ON e.id = d.enterprise_id""",
    frozenset(
        {"enterprise_id", "workplace_id", "code", "name", *INSTRUMENT_COLUMNS, "calibrated_on"}
    ),
)
_SENSOR = _Kind(
    "sensor",
    "sensors",
    "s",
    """SELECT s.id, s.code, s.device_id, d.code AS device, e.id AS enterprise_id,
              e.code AS enterprise, s.workplace_id, w.code AS workplace, s.quantity, s.unit,
              s.substance, s.min_value, s.max_value, s.calibrated_on, s.calibration_due,
              s.model, s.serial_number, s.calibration_certificate, s.created_at, s.updated_at
       FROM sensors s
       JOIN devices d ON d.id = s.device_id
       JOIN enterprises e ON e.id = d.enterprise_id
       LEFT JOIN workplaces w ON w.id = s.workplace_id""",
    frozenset(
        {
            "device_id",
            "code",
            "quantity",
            "unit",
            "substance",
            "workplace_id",
            "min_value",
            "max_value",
            "calibrated_on",
            "calibration_due",
            *INSTRUMENT_COLUMNS,
        }
    ),
)

KINDS: Mapping[str, _Kind] = {k.noun: k for k in (_ENTERPRISE, _SITE, _WORKPLACE, _DEVICE, _SENSOR)}


def _column(name: str, alias: str) -> sql.Identifier:
    """Column ``name`` (``alias.column`` when qualified) as an identifier; a bare name is
    qualified with ``alias``."""
    return sql.Identifier(*name.split(".")) if "." in name else sql.Identifier(alias, name)


def matching(
    scope: Scope, filters: Mapping[str, Any] | None = None, alias: str = "e"
) -> tuple[sql.Composable, list[Any]]:
    """The condition of rows in ``scope`` (its enterprise table aliased ``e``) whose columns
    equal ``filters``' values (``column = value``; bare names are ``alias``'s, None values are
    ignored), with its parameters."""
    condition, params = scope.where()
    clauses = [condition]
    for column, value in (filters or {}).items():
        if value is not None:
            clauses.append(sql.SQL("{} = %s").format(_column(column, alias)))
            params.append(value)
    return sql.SQL(" AND ").join(clauses), params


async def _fetch(
    conn: AsyncConnection[Any], query: QueryNoTemplate, params: Sequence[Any]
) -> list[Row]:
    cur = conn.cursor(row_factory=dict_row)
    async with translate_errors():
        await cur.execute(query, params)
        return await cur.fetchall()


async def get(conn: AsyncConnection[Any], noun: str, obj_id: int, scope: Scope) -> Row | None:
    """One object by id, or None when it does not exist or lies outside ``scope``."""
    kind = KINDS[noun]
    cond, params = scope.where()
    query = sql.SQL("{select} WHERE {id} = %s AND {cond}").format(
        select=sql.SQL(kind.select), id=sql.Identifier(kind.alias, "id"), cond=cond
    )
    rows = await _fetch(conn, query, [obj_id, *params])
    return rows[0] if rows else None


async def require(conn: AsyncConnection[Any], noun: str, obj_id: int, scope: Scope) -> Row:
    row = await get(conn, noun, obj_id, scope)
    if row is None:
        raise NotFoundError(f"no {noun} with id {obj_id}", noun, obj_id)
    return row


async def page(
    conn: AsyncConnection[Any],
    noun: str,
    scope: Scope,
    *,
    filters: Mapping[str, Any] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page:
    """Objects in ``scope`` ordered by id; ``filters`` are ``column = value`` on the kind's
    columns (qualified names like ``e.region`` allowed), None values ignored."""
    kind = KINDS[noun]
    where, params = matching(scope, filters, kind.alias)
    selected = sql.SQL("{} WHERE {}").format(sql.SQL(kind.select), where)
    rows = await _fetch(
        conn,
        sql.SQL(
            """SELECT q.*, count(*) OVER () AS total_count FROM ({}) q
            ORDER BY q.id LIMIT %s OFFSET %s"""
        ).format(selected),
        [*params, limit, offset],
    )
    if rows:
        total = int(rows[0]["total_count"])
    else:
        count = await _fetch(
            conn, sql.SQL("SELECT count(*) AS n FROM ({}) q").format(selected), params
        )
        total = int(count[0]["n"])
    for row in rows:
        del row["total_count"]
    return Page(items=rows, total=total)


async def _same_enterprise(
    conn: AsyncConnection[Any], table: str, noun: str, obj_id: int | None, enterprise_id: int
) -> None:
    if obj_id is None:
        return
    query = sql.SQL("SELECT 1 FROM {} WHERE id = %s AND enterprise_id = %s").format(
        sql.Identifier(table)
    )
    rows = await _fetch(conn, query, [obj_id, enterprise_id])
    if not rows:
        raise InvalidInputError(f"{noun} {obj_id} is not a {noun} of this enterprise")


async def _check_references(
    conn: AsyncConnection[Any], kind: _Kind, values: Mapping[str, Any], enterprise_id: int
) -> None:
    if "site_id" in values:
        await _same_enterprise(conn, "sites", "site", values["site_id"], enterprise_id)
    if "workplace_id" in values:
        await _same_enterprise(
            conn, "workplaces", "workplace", values["workplace_id"], enterprise_id
        )


def _enterprise_of(kind: _Kind, row: Row) -> int:
    return int(row["id"] if kind is _ENTERPRISE else row["enterprise_id"])


async def create(
    conn: AsyncConnection[Any],
    noun: str,
    values: Mapping[str, Any],
    scope: Scope,
    *,
    parent: tuple[str, int] | None = None,
) -> Row:
    """Insert an object under ``parent`` (``("enterprise", id)`` or ``("device", id)``), which
    must lie in ``scope``; returns the object as :func:`get` shows it."""
    kind = KINDS[noun]
    data = {k: v for k, v in values.items() if k in kind.writable}
    if parent is not None:
        parent_row = await require(conn, parent[0], parent[1], scope)
        data[f"{parent[0]}_id"] = parent[1]
        await _check_references(conn, kind, data, _enterprise_of(KINDS[parent[0]], parent_row))
    columns = list(data)
    query = sql.SQL("INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING id").format(
        table=sql.Identifier(kind.table),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    async with conn.transaction():
        rows = await _fetch(conn, query, [data[c] for c in columns])
    return await require(conn, noun, int(rows[0]["id"]), Scope())


async def update(
    conn: AsyncConnection[Any], noun: str, obj_id: int, values: Mapping[str, Any], scope: Scope
) -> Row:
    """Change the given columns of an object in ``scope``; returns it as :func:`get` shows it."""
    kind = KINDS[noun]
    current = await require(conn, noun, obj_id, scope)
    data = {k: v for k, v in values.items() if k in kind.writable}
    if not data:
        return current
    await _check_references(conn, kind, data, _enterprise_of(kind, current))
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in data)
    query = sql.SQL("UPDATE {} SET {}, updated_at = now() WHERE id = %s RETURNING id").format(
        sql.Identifier(kind.table), assignments
    )
    await _fetch(conn, query, [*data.values(), obj_id])
    if any(current.get(k) != v for k, v in data.items() if k in _SHAPES_SHIFTS.get(noun, ())):
        # Shifts are defined by these: the stored assessments must follow (a late import:
        # store.shift_assessments reads this module's helpers).
        from store.shift_assessments import reassess

        ids = {"workplace_id": obj_id} if noun == "workplace" else {"enterprise_id": obj_id}
        await reassess(conn, **ids)
    return await require(conn, noun, obj_id, Scope())


# The fields that define an object's shifts or how they are assessed.
_SHAPES_SHIFTS: Mapping[str, frozenset[str]] = {
    "workplace": frozenset({"shift_starts", "shift_duration_s"}),
    "enterprise": frozenset({"timezone", "norms_profile"}),
}


async def workplaces_of(
    conn: AsyncConnection[Any],
    scope: Scope,
    filters: Mapping[str, Any] | None = None,
    *,
    ids: Sequence[int] | None = None,
) -> list[Row]:
    """Every workplace in ``scope`` (and among ``ids``) with its enterprise's fields, for
    integral risk, exports and the assessment service; ``filters`` as :func:`matching` takes
    them (the workplace is aliased ``w``, its enterprise ``e``)."""
    where, params = matching(scope, filters, "w")
    if ids is not None:
        where = sql.SQL("{} AND w.id = ANY(%s::bigint[])").format(where)
        params.append(list(ids))
    query = sql.SQL(
        """SELECT w.id, w.code, w.name, w.profession, w.headcount, w.enterprise_id,
                   w.shift_starts, w.shift_duration_s,
                   e.code AS enterprise, e.name AS enterprise_name, e.region, e.timezone,
                   e.norms_profile, e.activity_code, e.activity_risk_class, e.base_rate_pct
            FROM workplaces w JOIN enterprises e ON e.id = w.enterprise_id
            WHERE {}
            ORDER BY e.id, w.id"""
    ).format(where)
    return await _fetch(conn, query, params)


async def enterprise_codes(conn: AsyncConnection[Any], scope: Scope) -> set[str] | None:
    """Codes of the enterprises in ``scope``, or None when the scope is unrestricted (for data
    keyed by enterprise code, such as alerts)."""
    if scope.unrestricted:
        return None
    cond, params = scope.where()
    query = sql.SQL("SELECT e.code FROM enterprises e WHERE {}").format(cond)
    rows = await _fetch(conn, query, params)
    return {row["code"] for row in rows}
