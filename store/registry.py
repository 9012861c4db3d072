"""Enterprises, workplaces, devices and sensors: what ingest checks every message against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from vocabulary.driver import Driver


@dataclass(frozen=True, slots=True)
class SensorInfo:
    id: int
    device_id: int
    code: str
    quantity: str
    unit: str
    substance: str | None
    workplace_id: int | None
    min_value: float | None
    max_value: float | None


@dataclass(slots=True)
class DeviceInfo:
    id: int
    code: str
    enterprise_id: int
    enterprise_code: str
    workplace_id: int | None
    sensors: dict[str, SensorInfo] = field(default_factory=dict)


_SENSOR_COLUMNS = sql.SQL(
    "id, device_id, code, quantity, unit, substance, workplace_id, min_value, max_value"
)


def _sensor(row: dict[str, Any]) -> SensorInfo:
    return SensorInfo(**{k: row[k] for k in SensorInfo.__slots__})


async def upsert_enterprise(
    conn: AsyncConnection[Any],
    code: str,
    name: str,
    region: str | None = None,
    position: tuple[float, float] | None = None,
) -> int:
    """Create or rename an enterprise; ``position`` is (latitude, longitude) for the map."""
    latitude, longitude = position or (None, None)
    row = await (
        await conn.execute(
            """
            INSERT INTO enterprises (code, name, region, latitude, longitude)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name,
                region = COALESCE(EXCLUDED.region, enterprises.region),
                latitude = COALESCE(EXCLUDED.latitude, enterprises.latitude),
                longitude = COALESCE(EXCLUDED.longitude, enterprises.longitude)
            RETURNING id
            """,
            [code, name, region, latitude, longitude],
        )
    ).fetchone()
    assert row is not None
    return int(row[0])


async def upsert_workplace(
    conn: AsyncConnection[Any],
    enterprise_id: int,
    code: str,
    name: str,
    *,
    profession: str | None = None,
    headcount: int = 1,
) -> int:
    row = await (
        await conn.execute(
            """
            INSERT INTO workplaces (enterprise_id, code, name, profession, headcount)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (enterprise_id, code) DO UPDATE SET name = EXCLUDED.name,
                profession = EXCLUDED.profession, headcount = EXCLUDED.headcount
            RETURNING id
            """,
            [enterprise_id, code, name, profession, headcount],
        )
    ).fetchone()
    assert row is not None
    return int(row[0])


async def upsert_device(
    conn: AsyncConnection[Any],
    enterprise_id: int,
    code: str,
    *,
    name: str | None = None,
    workplace_id: int | None = None,
) -> int:
    row = await (
        await conn.execute(
            """
            INSERT INTO devices (enterprise_id, code, name, workplace_id) VALUES (%s, %s, %s, %s)
            ON CONFLICT (code) DO UPDATE SET name = COALESCE(EXCLUDED.name, devices.name),
                workplace_id = COALESCE(EXCLUDED.workplace_id, devices.workplace_id)
            RETURNING id
            """,
            [enterprise_id, code, name, workplace_id],
        )
    ).fetchone()
    assert row is not None
    return int(row[0])


async def upsert_sensor(
    conn: AsyncConnection[Any],
    device_id: int,
    code: str,
    *,
    quantity: str,
    unit: str,
    substance: str | None = None,
    workplace_id: int | None = None,
    min_value: float | None = None,
    max_value: float | None = None,
) -> SensorInfo:
    """Register a sensor, or return the registered one unchanged if it exists."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL("""
        INSERT INTO sensors (device_id, code, quantity, unit, substance, workplace_id,
                             min_value, max_value)
        VALUES (%s, %s, %s, %s, %s,
                COALESCE(%s, (SELECT workplace_id FROM devices WHERE id = %s)), %s, %s)
        ON CONFLICT (device_id, code) DO NOTHING
        RETURNING {}
        """).format(_SENSOR_COLUMNS),
        [device_id, code, quantity, unit, substance, workplace_id, device_id, min_value, max_value],
    )
    row = await cur.fetchone()
    if row is None:
        await cur.execute(
            sql.SQL("SELECT {} FROM sensors WHERE device_id = %s AND code = %s").format(
                _SENSOR_COLUMNS
            ),
            [device_id, code],
        )
        row = await cur.fetchone()
        assert row is not None
    return _sensor(row)


async def upsert_device_channels(
    conn: AsyncConnection[Any],
    enterprise_id: int,
    device: Driver,
    *,
    name: str | None = None,
    workplace_id: int | None = None,
) -> int:
    """Register ``device`` and a sensor for each channel its driver reports; returns the
    device's id."""
    device_id = await upsert_device(
        conn, enterprise_id, device.device, name=name, workplace_id=workplace_id
    )
    for channel in device.channels():
        await upsert_sensor(
            conn,
            device_id,
            channel.sensor,
            quantity=channel.quantity.value,
            unit=channel.unit,
            substance=channel.substance,
            workplace_id=workplace_id,
        )
    return device_id


async def enterprise_id_of(conn: AsyncConnection[Any], code: str) -> int | None:
    """The id of the enterprise ``code``, or None if it is not registered."""
    cur = await conn.execute("SELECT id FROM enterprises WHERE code = %s", [code])
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def workplace_id_of(conn: AsyncConnection[Any], enterprise_id: int, code: str) -> int | None:
    """The id of workplace ``code`` of an enterprise, or None if it is not registered."""
    cur = await conn.execute(
        "SELECT id FROM workplaces WHERE enterprise_id = %s AND code = %s", [enterprise_id, code]
    )
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def workplace_by_codes(
    conn: AsyncConnection[Any], enterprise: str, workplace: str
) -> tuple[int, int] | None:
    """(enterprise id, workplace id) of workplace ``workplace`` of enterprise ``enterprise``, or
    None if either is not registered."""
    cur = await conn.execute(
        "SELECT e.id, w.id FROM enterprises e JOIN workplaces w ON w.enterprise_id = e.id "
        "WHERE e.code = %s AND w.code = %s",
        [enterprise, workplace],
    )
    row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else None


async def set_shift_schedule(
    conn: AsyncConnection[Any], workplace_id: int, starts: Sequence[time], duration_s: int
) -> None:
    """Give a workplace new shift start times and length, as they are: the stored assessments
    are not recomputed here (``store.catalog.update`` does that for the API)."""
    await conn.execute(
        "UPDATE workplaces SET shift_starts = %s, shift_duration_s = %s WHERE id = %s",
        [list(starts), duration_s, workplace_id],
    )


async def enterprise_timezone(conn: AsyncConnection[Any], enterprise_id: int) -> str | None:
    """The IANA zone an enterprise's shifts are scheduled in, or None if it is not registered."""
    cur = await conn.execute("SELECT timezone FROM enterprises WHERE id = %s", [enterprise_id])
    row = await cur.fetchone()
    return str(row[0]) if row else None


async def find_device(conn: AsyncConnection[Any], code: str) -> DeviceInfo | None:
    """A device with its enterprise and sensors, or None if it is not registered."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT d.id, d.code, d.enterprise_id, e.code AS enterprise_code, d.workplace_id
        FROM devices d JOIN enterprises e ON e.id = d.enterprise_id
        WHERE d.code = %s
        """,
        [code],
    )
    row = await cur.fetchone()
    if row is None:
        return None
    device = DeviceInfo(**row)
    await cur.execute(
        sql.SQL("SELECT {} FROM sensors WHERE device_id = %s").format(_SENSOR_COLUMNS), [device.id]
    )
    for sensor_row in await cur.fetchall():
        sensor = _sensor(sensor_row)
        device.sensors[sensor.code] = sensor
    return device


async def find_devices(conn: AsyncConnection[Any], codes: Sequence[str]) -> dict[str, DeviceInfo]:
    """``find_device`` for many codes in two queries, whatever their number: a worker that
    starts, or whose cached entries expire together, meets its whole fleet at once. Codes that
    are not registered are absent from the result."""
    if not codes:
        return {}
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT d.id, d.code, d.enterprise_id, e.code AS enterprise_code, d.workplace_id
        FROM devices d JOIN enterprises e ON e.id = d.enterprise_id
        WHERE d.code = ANY(%s::text[])
        """,
        [list(codes)],
    )
    devices = {row["code"]: DeviceInfo(**row) for row in await cur.fetchall()}
    by_id = {device.id: device for device in devices.values()}
    if by_id:
        await cur.execute(
            sql.SQL("SELECT {} FROM sensors WHERE device_id = ANY(%s::bigint[])").format(
                _SENSOR_COLUMNS
            ),
            [list(by_id)],
        )
        for sensor_row in await cur.fetchall():
            sensor = _sensor(sensor_row)
            by_id[sensor.device_id].sensors[sensor.code] = sensor
    return devices


@dataclass(frozen=True, slots=True)
class SensorListing:
    id: int
    code: str
    device: str
    enterprise: str
    workplace: str | None
    quantity: str
    unit: str
    substance: str | None


async def list_sensors(
    conn: AsyncConnection[Any], *, limit: int = 100, offset: int = 0
) -> list[SensorListing]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT s.id, s.code, d.code AS device, e.code AS enterprise, w.code AS workplace,
               s.quantity, s.unit, s.substance
        FROM sensors s
        JOIN devices d ON d.id = s.device_id
        JOIN enterprises e ON e.id = d.enterprise_id
        LEFT JOIN workplaces w ON w.id = s.workplace_id
        ORDER BY s.id
        LIMIT %s OFFSET %s
        """,
        [limit, offset],
    )
    return [SensorListing(**row) for row in await cur.fetchall()]


async def get_sensor(conn: AsyncConnection[Any], sensor_id: int) -> SensorListing | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT s.id, s.code, d.code AS device, e.code AS enterprise, w.code AS workplace,
               s.quantity, s.unit, s.substance
        FROM sensors s
        JOIN devices d ON d.id = s.device_id
        JOIN enterprises e ON e.id = d.enterprise_id
        LEFT JOIN workplaces w ON w.id = s.workplace_id
        WHERE s.id = %s
        """,
        [sensor_id],
    )
    row = await cur.fetchone()
    return SensorListing(**row) if row else None


@dataclass(frozen=True, slots=True)
class InstrumentRecord:
    """What a report names of the instrument behind one sensor; a sensor's own model, serial
    number and calibration win over its device's."""

    sensor: str
    device: str
    device_name: str | None
    model: str | None
    serial_number: str | None
    calibrated_on: date | None
    calibration_certificate: str | None
    calibration_due: date | None

    def calibration_overdue(self, on: date) -> bool:
        return self.calibration_due is not None and self.calibration_due < on


async def instruments_of(conn: AsyncConnection[Any], workplace_id: int) -> list[InstrumentRecord]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT s.code AS sensor, d.code AS device, d.name AS device_name,
               COALESCE(s.model, d.model) AS model,
               COALESCE(s.serial_number, d.serial_number) AS serial_number,
               COALESCE(s.calibrated_on, d.calibrated_on) AS calibrated_on,
               COALESCE(s.calibration_certificate, d.calibration_certificate)
                   AS calibration_certificate,
               s.calibration_due
        FROM sensors s
        JOIN devices d ON d.id = s.device_id
        WHERE s.workplace_id = %s
        ORDER BY d.code, s.code
        """,
        [workplace_id],
    )
    return [InstrumentRecord(**row) for row in await cur.fetchall()]
