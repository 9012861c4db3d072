"""Request and response models of the registry: enterprises, sites, workplaces, devices, sensors.

Split by use: ``…Create`` (POST body), ``…Update`` (PATCH body: every field optional, only the
fields sent change), ``…Public`` (responses). Units are in field names or descriptions.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Annotated, Any, Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from analytics.norms import builtin_profiles
from vocabulary.protocol import UNITS_BY_QUANTITY, Quantity, check_device_code, normalise_unit

# Codes are what devices and topics use: letters, digits and . _ - (the registry's CHECK).
Code = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
    Field(description="letters, digits and `. _ -`, starting with a letter or digit; ≤128"),
]


def _device_code(value: str) -> str:
    check_device_code(value)  # ValueError names the reserved segments
    return value


# A device code is also a topic segment beside the service topics (alerts, status...).
DeviceCode = Annotated[
    Code,
    AfterValidator(_device_code),
    Field(description="as `code`, and not a segment reserved for service topics (e.g. alerts)"),
]

# PostgreSQL text holds no NUL and names hold no control characters.
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
LongText = Annotated[str, StringConstraints(max_length=4000, pattern=r"^[^\x00]*$")]
Region = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"),
    Field(description="region of Kazakhstan as the jurisdiction of inspectors names it"),
]
RefId = Annotated[int, Field(ge=1, le=2**63 - 1)]


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # a directory or data file is OSError
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as Asia/Almaty"
        ) from None
    return value


TimeZone = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$", max_length=64),
    AfterValidator(_zone),
    Field(description="IANA time zone of the enterprise; shifts are in its local time"),
]


def _local_time(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("give a local time without an offset, e.g. 08:00")
    return value


ShiftStart = Annotated[time, AfterValidator(_local_time)]


def _profile(value: str) -> str:
    known = builtin_profiles()
    if value not in known:
        raise ValueError(f"unknown norms profile {value!r}; use one of {', '.join(known)}")
    return value


NormsProfile = Annotated[
    str,
    AfterValidator(_profile),
    Field(
        description="the enterprise's norms profile (limits, class tables, В and ПР weights, "
        "alert thresholds) for every surface; null: the service's default profile",
        examples=["default"],
    ),
]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]


# --- enterprises ----------------------------------------------------------------------------


class EnterpriseFields(BaseModel):
    region: Region | None = None
    timezone: TimeZone = "Asia/Almaty"
    norms_profile: NormsProfile | None = None
    activity_code: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z.]{1,20}$")] | None = (
        Field(default=None, description="code of the economic activity (ОКЭД), e.g. 41.20")
    )
    activity_risk_class: int | None = Field(
        default=None,
        ge=1,
        le=22,
        description="occupational risk class of the economic activity (1..22); sets the base "
        "insurance rate from the norms profile unless `base_rate_pct` is given",
    )
    base_rate_pct: float | None = Field(
        default=None,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="base insurance rate, % of payroll; overrides the rate of the risk class",
    )


class EnterpriseCreate(EnterpriseFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "kz-build-01",
                    "name": "Almaty Residential Construction LLP",
                    "region": "Almaty",
                    "timezone": "Asia/Almaty",
                    "activity_code": "41.20",
                    "activity_risk_class": 14,
                }
            ]
        },
    )
    code: Code
    name: Name


class EnterpriseUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Almaty Construction", "base_rate_pct": 1.55}]},
    )
    name: Name | None = None
    region: Region | None = None
    timezone: TimeZone | None = None
    norms_profile: NormsProfile | None = None
    activity_code: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z.]{1,20}$")] | None = None
    activity_risk_class: int | None = Field(default=None, ge=1, le=22)
    base_rate_pct: float | None = Field(default=None, gt=0, le=100, allow_inf_nan=False)


class EnterprisePublic(EnterpriseFields):
    id: int
    code: str
    name: str
    timezone: str
    # As stored: a profile set by an operator need not be one that ships (no re-validation).
    norms_profile: str | None = Field(
        default=None, description="the enterprise's norms profile; null: the service's default"
    )
    created_at: datetime
    updated_at: datetime


# --- sites ----------------------------------------------------------------------------------


class SiteCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"code": "block-7", "name": "Block 7", "address": "Abay Ave 150"}]
        },
    )
    code: Code
    name: Name
    address: LongText | None = None


class SiteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "B-7"}]})
    name: Name | None = None
    address: LongText | None = None


class SitePublic(BaseModel):
    id: int
    enterprise_id: int
    code: str
    name: str
    address: str | None
    created_at: datetime
    updated_at: datetime


# --- workplaces -----------------------------------------------------------------------------


def _distinct_starts(value: list[time] | None) -> list[time] | None:
    if value is not None and len(set(value)) != len(value):
        raise ValueError("shift start times must be distinct")
    return value


ShiftStarts = Annotated[
    list[ShiftStart],
    Field(
        min_length=1,
        max_length=6,
        description="local start times of the shifts of a day (enterprise time zone), e.g. "
        '["08:00", "20:00"]; shift n (1-based) starts at the n-th time',
    ),
    AfterValidator(_distinct_starts),
]
ShiftDuration = Annotated[
    int, Field(ge=600, le=86400, description="length of every shift, seconds (8 h = 28800)")
]


class WorkplaceCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "crane-3",
                    "name": "Tower crane operator cabin",
                    "profession": "Crane operator",
                    "headcount": 4,
                    "shift_starts": ["08:00", "20:00"],
                    "shift_duration_s": 43200,
                }
            ]
        },
    )
    code: Code
    name: Name
    site_id: RefId | None = None
    profession: Name | None = None
    headcount: int = Field(
        default=1, ge=0, le=1_000_000, description="workers at this workplace (persons)"
    )
    shift_starts: ShiftStarts = Field(default_factory=lambda: [time(8, 0)])
    shift_duration_s: ShiftDuration = 28800


class WorkplaceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"headcount": 6}]})
    name: Name | None = None
    site_id: RefId | None = None
    profession: Name | None = None
    headcount: int | None = Field(default=None, ge=0, le=1_000_000)
    shift_starts: ShiftStarts | None = None
    shift_duration_s: ShiftDuration | None = None


class WorkplacePublic(BaseModel):
    id: int
    enterprise_id: int
    site_id: int | None
    code: str
    name: str
    profession: str | None
    headcount: int = Field(description="persons")
    shift_starts: list[time] = Field(description="local start times (enterprise time zone)")
    shift_duration_s: int
    timezone: str = Field(description="the enterprise's time zone, for the shift times")
    created_at: datetime
    updated_at: datetime


# --- devices and sensors --------------------------------------------------------------------


class Instrument(BaseModel):
    """What a shift report names of an instrument: its model, serial number and certificate
    of the last calibration (on a sensor: where it differs from its device's)."""

    model: str | None = Field(default=None, max_length=120, description="make and model")
    serial_number: str | None = Field(default=None, max_length=64)
    calibration_certificate: str | None = Field(
        default=None, max_length=120, description="number of the last calibration certificate"
    )


class DeviceCreate(Instrument):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "build-01-dev-7",
                    "name": "Noise and dust station",
                    "model": "Octava-110A",
                    "serial_number": "A110-07412",
                    "calibrated_on": "2026-09-01",
                    "calibration_certificate": "ВА-24-0917",
                }
            ]
        },
    )
    code: DeviceCode
    name: Name | None = None
    workplace_id: RefId | None = Field(
        default=None, description="workplace its sensors measure by default"
    )
    calibrated_on: date | None = Field(default=None, description="date of the last calibration")


class DeviceUpdate(Instrument):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "St. 7"}]})
    name: Name | None = None
    workplace_id: RefId | None = None
    calibrated_on: date | None = None


class DevicePublic(Instrument):
    id: int
    enterprise_id: int
    workplace_id: int | None
    code: str
    name: str | None
    calibrated_on: date | None
    created_at: datetime
    updated_at: datetime


_SUBSTANCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SensorCreate(Instrument):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "build-01-dev-7.noise",
                    "quantity": "noise_laeq",
                    "unit": "dB(A)",
                    "min_value": 20,
                    "max_value": 140,
                    "calibrated_on": "2026-09-01",
                    "calibration_due": "2027-09-01",
                }
            ]
        },
    )
    code: Code
    quantity: Quantity
    unit: str = Field(
        max_length=16, description="unit of the values: dB(A), dB(C), m/s2, mg/m3, ppm, %LEL, %vol"
    )
    substance: str | None = Field(
        default=None,
        max_length=64,
        description="substance or dust id of the norms profile (e.g. CO, silica_10_70); "
        "required for gas and dust",
    )
    workplace_id: RefId | None = Field(default=None, description="default: the device's workplace")
    min_value: FiniteFloat | None = Field(default=None, description="lowest physical value, unit")
    max_value: FiniteFloat | None = Field(default=None, description="highest physical value, unit")
    calibrated_on: date | None = None
    calibration_due: date | None = None

    @field_validator("substance")
    @classmethod
    def _substance(cls, value: str | None) -> str | None:
        if value is not None and not _SUBSTANCE.match(value):
            raise ValueError("substance ids are letters, digits and . _ - (e.g. CO, H2S)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SensorCreate:
        unit = normalise_unit(self.unit)
        allowed = UNITS_BY_QUANTITY[self.quantity]
        if unit not in allowed:
            raise ValueError(
                f"unit {self.unit!r} does not fit {self.quantity.value}; use {', '.join(allowed)}"
            )
        self.unit = unit
        needs = self.quantity in (Quantity.GAS, Quantity.DUST)
        if needs and not self.substance:
            raise ValueError(f"a {self.quantity.value} sensor needs `substance`")
        if not needs and self.substance:
            raise ValueError(f"a {self.quantity.value} sensor takes no `substance`")
        _ordered(self.min_value, self.max_value)
        return self


def _ordered(low: float | None, high: float | None) -> None:
    if low is not None and high is not None and low >= high:
        raise ValueError("min_value must be below max_value")


class SensorUpdate(Instrument):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"calibrated_on": "2026-11-01"}]},
    )
    workplace_id: RefId | None = None
    min_value: FiniteFloat | None = None
    max_value: FiniteFloat | None = None
    calibrated_on: date | None = None
    calibration_due: date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SensorUpdate:
        _ordered(self.min_value, self.max_value)
        return self


class SensorPublic(Instrument):
    id: int
    code: str = Field(description="sensor id as the device sends it")
    device_id: int
    device: str = Field(description="device code")
    enterprise_id: int
    enterprise: str = Field(description="enterprise code")
    workplace_id: int | None
    workplace: str | None = Field(description="workplace code")
    quantity: str = Field(description="noise_laeq, gas, dust, vib_hav, …")
    unit: str = Field(description="unit of every value of this sensor, e.g. dB(A), mg/m3, m/s2")
    substance: str | None
    min_value: float | None = Field(description="lowest physical value, in `unit`")
    max_value: float | None = Field(description="highest physical value, in `unit`")
    calibrated_on: date | None
    calibration_due: date | None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list, ordered by id."""

    items: list[T]
    total: int = Field(description="objects matching the request across all pages")
    limit: int
    offset: int


def changed(model: BaseModel) -> dict[str, Any]:
    """The fields a PATCH body actually sent."""
    return model.model_dump(exclude_unset=True)
