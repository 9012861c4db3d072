"""Models of assessors' inputs, exposure, В, ПР, the enterprise map and exports."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.models_registry import LongText

Indicator = Literal["T", "Ob", "SIZ", "Z"]
ClassValue = Literal["1", "2", "3.1", "3.2", "3.3", "3.4", "4"]


class EnteredFactor(StrEnum):
    """Factors that sensors don't measure, classed from assessment records."""

    MICROCLIMATE = "microclimate"
    LIGHTING = "lighting"
    BIOLOGICAL = "biological"
    HEAVINESS = "heaviness"
    INTENSITY = "intensity"
    IONIZING_RADIATION = "ionizing_radiation"
    NON_IONIZING_RADIATION = "non_ionizing_radiation"
    INFRASOUND = "infrasound"
    ULTRASOUND = "ultrasound"


AssessedBy = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"),
    Field(description="who assessed: person, organisation or integration"),
]
Evidence = Annotated[
    LongText,
    Field(description="what the value rests on: protocol number, document, link"),
]


class IndicatorCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "indicator": "T",
                    "value": 4,
                    "assessed_by": "A. Seitkali, OSH engineer",
                    "assessed_on": "2026-11-20",
                    "evidence": "injury-risk checklist No 112/2026",
                }
            ]
        },
    )
    indicator: Indicator = Field(
        description="T injury risk, Ob equipment safety, SIZ PPE provision, Z morbidity"
    )
    value: int = Field(ge=1, le=5, description="grade 1 (acceptable) … 5 (very high)")
    assessed_by: AssessedBy
    assessed_on: dt.date = Field(ge=dt.date(1990, 1, 1), le=dt.date(2200, 12, 31))
    evidence: Evidence | None = None


class IndicatorPublic(BaseModel):
    id: int
    workplace_id: int
    indicator: Indicator
    value: int
    assessed_by: str
    assessed_on: dt.date
    evidence: str | None
    entered_at: dt.datetime


class IndicatorsPublic(BaseModel):
    current: dict[str, IndicatorPublic] = Field(
        description="the entry in force per indicator (latest `assessed_on`)"
    )
    missing: list[Indicator] = Field(description="indicators ПР still needs")
    history: list[IndicatorPublic] = Field(description="all entries, newest first (paged)")


class FactorClassCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "factor": "microclimate",
                    "working_class": "3.1",
                    "assessed_by": "KazLab accredited laboratory",
                    "assessed_on": "2026-07-15",
                    "evidence": "protocol 77-M",
                }
            ]
        },
    )
    factor: EnteredFactor
    working_class: ClassValue = Field(description="class of working conditions")
    assessed_by: AssessedBy
    assessed_on: dt.date = Field(ge=dt.date(1990, 1, 1), le=dt.date(2200, 12, 31))
    evidence: Evidence | None = None


class FactorClassPublic(BaseModel):
    id: int
    workplace_id: int
    factor: str
    working_class: str
    assessed_by: str
    assessed_on: dt.date
    evidence: str | None
    entered_at: dt.datetime


class FactorClassesPublic(BaseModel):
    current: dict[str, FactorClassPublic]
    history: list[FactorClassPublic]


# --- exposure -------------------------------------------------------------------------------


class ShiftRef(BaseModel):
    date: dt.date = Field(description="local date on which the shift starts")
    shift: int = Field(description="shift number of that day, from 1")
    start: dt.datetime
    end: dt.datetime
    duration_s: float


class SensorExposure(BaseModel):
    sensor_id: int | None
    sensor: str = Field(description="sensor code")
    quantity: str
    substance: str | None
    samples: int = Field(description="readings in the shift window")
    metrics: dict[str, float | None] = Field(
        description="laeq_db, lex8h_db, lamax_db, dose_pct, a8_m_s2, a8_db, twa8h_mg_m3, "
        "max15min_mg_m3, k_twa, coverage (fraction of the shift measured); where readings "
        "are missing the projected values lex8h_projected_db, a8_projected_m_s2, "
        "twa8h_projected_mg_m3 (unmeasured time at the measured rate, which the class is "
        "taken on: docs/exposure.md, Conventions), unmeasured_s, …"
    )
    working_class: str | None = Field(description="class of working conditions of this sensor")
    factor: str | None
    B_continuous: float | None
    insufficient_data: bool
    classified_by: Literal["measured", "projected"] | None = Field(
        default=None,
        description="whether the class rests on the measured 8-h value or on the projected one "
        "(unmeasured time at the measured rate: docs/exposure.md, Conventions)",
    )
    basis: str = Field(description="what the class was decided on, or why there is none")


class FactorExposure(BaseModel):
    factor: str
    working_class: str
    B: int
    B_continuous: float
    source: Literal["measured", "entered"]
    sensors: list[str]
    basis: str


class StoredShiftStatus(BaseModel):
    """Where a stored shift assessment stands, on every answer that shows one."""

    status: Literal["running", "provisional", "final"] = Field(
        description="running: the shift is under way; provisional: ended, late readings may "
        "still change it; final"
    )
    not_enough_data: bool = Field(
        description="some sensor covered less of the shift than the norms' minimum: the class "
        "and В are provisional, not a finding"
    )


class ExposurePublic(StoredShiftStatus):
    workplace_id: int
    shift: ShiftRef
    computed_at: dt.datetime | None = Field(
        description="when the stored assessment was computed (null: nothing to assess)"
    )
    working_class: str | None = Field(description="combined class of the workplace")
    B: int | None = Field(description="harmfulness index В, 1..5")
    B_continuous: float | None = Field(description="В with the position inside the band")
    rule: str | None = Field(description="combination rule that decided the class")
    deciding_factors: list[str]
    coverage_min: float | None = Field(description="lowest coverage (0..1) of the sensors")
    insufficient_data: list[str] = Field(description="sensors with coverage below the minimum")
    sensors: list[SensorExposure]
    factors: list[FactorExposure]
    mixture_index: dict[str, float | None] = Field(
        description="Σ TWA/ПДК_сс per substance group (reported, not classed)"
    )
    explanation: str
    classification_rule: str | None = Field(
        default=None, description="which value classes an incomplete shift, and why"
    )
    norms: dict[str, str]


class ShiftSummary(StoredShiftStatus):
    date: dt.date
    shift: int
    start: dt.datetime
    working_class: str | None
    B: int | None
    B_continuous: float | None
    deciding_factors: list[str]
    coverage_min: float | None
    insufficient_data: list[str]
    note: str


class ExposureHistory(BaseModel):
    workplace_id: int
    date_from: dt.date = Field(alias="from", serialization_alias="from")
    date_to: dt.date = Field(alias="to", serialization_alias="to")
    shifts: list[ShiftSummary]
    worst: ShiftSummary | None = Field(description="the shift with the highest В")
    source: str = Field(description="where the shifts come from")

    model_config = ConfigDict(populate_by_name=True)


# --- risk -----------------------------------------------------------------------------------


class ContributionPublic(BaseModel):
    indicator: str
    value: float
    weight: float
    contribution: float = Field(description="weight × value, points of ПР")


class BSource(BaseModel):
    """Which shift and factors set В."""

    date: dt.date | None
    shift: int | None
    working_class: str | None
    B_continuous: float | None
    deciding_factors: list[str]
    insufficient_data: bool = Field(
        description="true when no shift of the period had sufficient coverage: В rests on a "
        "partly measured shift and is provisional"
    )
    coverage_min: float | None = Field(description="lowest sensor coverage (0..1) of that shift")
    status: Literal["running", "provisional", "final"] | None
    explanation: str


class TariffPublic(BaseModel):
    base_rate_pct: float = Field(description="base rate of the activity's risk class, % payroll")
    coefficient: float = Field(
        description="adjustment coefficient of the risk level (dimensionless)"
    )
    tariff_pct: float = Field(description="insurance tariff = base × coefficient, % of payroll")
    activity_risk_class: int | None
    base_rate_source: Literal["enterprise", "norms"]
    base_rate_reference: str | None = Field(
        default=None, description="the norms profile's source of the base rate (norms only)"
    )
    base_rate_is_default: bool = Field(
        default=False,
        description="the base rate is a [default] value of the norms, not a sourced one: set "
        "the enterprise's base_rate_pct from its insurance contract",
    )


class PpePublic(BaseModel):
    factor: str = Field(description="workplace factor, e.g. noise, chemical:CO")
    ppe_group: str = Field(description="PPE matrix used: noise, gas, dust or vibration")
    working_class: str
    level: int
    recommendation: str


class RiskPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "workplace_id": 7,
                    "enterprise_id": 2,
                    "period_from": "2026-10-25",
                    "period_to": "2026-11-23",
                    "B": 3,
                    "B_source": {
                        "date": "2026-11-10",
                        "shift": 1,
                        "working_class": "3.2",
                        "B_continuous": 3.5,
                        "deciding_factors": ["noise"],
                        "insufficient_data": False,
                        "explanation": "class 3.2 (highest factor class; deciding: noise); "
                        "В = 3 (continuous 3.50)",
                    },
                    "indicators": {},
                    "pr": 3.05,
                    "level": 3,
                    "level_name": "moderate",
                    "protection_class": "C",
                    "protection_name": "moderate protection",
                    "contributions": [
                        {"indicator": "В", "value": 3, "weight": 0.35, "contribution": 1.05},
                        {"indicator": "Т", "value": 4, "weight": 0.35, "contribution": 1.4},
                        {"indicator": "Об", "value": 2, "weight": 0.1, "contribution": 0.2},
                        {"indicator": "СИЗ", "value": 3, "weight": 0.1, "contribution": 0.3},
                        {"indicator": "З", "value": 1, "weight": 0.1, "contribution": 0.1},
                    ],
                    "explanation": "ПР 3.050 = Т 4×0.35 = 1.400 + В 3×0.35 = 1.050 + СИЗ 3×0.1 "
                    "= 0.300 + Об 2×0.1 = 0.200 + З 1×0.1 = 0.100 → level 3 (moderate)",
                    "tariff": {
                        "base_rate_pct": 1.55,
                        "coefficient": 1.3,
                        "tariff_pct": 2.015,
                        "activity_risk_class": 14,
                        "base_rate_source": "norms",
                    },
                    "ppe": [
                        {
                            "factor": "noise",
                            "ppe_group": "noise",
                            "working_class": "3.2",
                            "level": 3,
                            "recommendation": "anti-noise earmuffs",
                        }
                    ],
                    "social_guarantees": [
                        "increased wages",
                        "milk or equivalent food products",
                    ],
                    "norms": {"name": "default", "version": "2025.1"},
                }
            ]
        }
    )

    workplace_id: int
    enterprise_id: int
    period_from: dt.date
    period_to: dt.date
    B: int
    B_source: BSource
    indicators: dict[str, IndicatorPublic]
    pr: float = Field(description="ПР = 0.7·(В+Т)/2 + 0.2·(Об+СИЗ)/2 + 0.1·З (profile weights)")
    level: int
    level_name: str
    level_names: dict[str, str] = Field(
        default_factory=dict,
        description="the level's name by language: en, ru (as the seed), kz",
    )
    protection_class: str
    protection_name: str
    contributions: list[ContributionPublic]
    explanation: str
    tariff: TariffPublic | None
    tariff_note: str | None = None
    ppe: list[PpePublic]
    social_guarantees: list[str]
    norms: dict[str, str]


class EnterpriseRiskPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "enterprise_id": 2,
                    "enterprise": "kz-build-01",
                    "name": "Almaty Residential Construction LLP",
                    "region": "Almaty",
                    "activity_code": "41.20",
                    "activity_risk_class": 14,
                    "period_from": "2026-10-25",
                    "period_to": "2026-11-23",
                    "mean_pr": 1.7625,
                    "level": 2,
                    "level_name": "low",
                    "headcount_scored": 40,
                    "headcount_by_level": {"1": 30, "2": 0, "3": 10, "4": 0, "5": 0},
                    "share_by_level": {"1": 0.75, "2": 0, "3": 0.25, "4": 0, "5": 0},
                    "workplaces_scored": 2,
                    "workplaces_unscored": 1,
                    "unscored": {"crane-3": "indicators not entered: Z"},
                    "workplaces_not_enough_data": [],
                    "not_enough_data": False,
                    "tariff": {
                        "base_rate_pct": 1.55,
                        "coefficient": 1.2,
                        "tariff_pct": 1.86,
                        "activity_risk_class": 14,
                        "base_rate_source": "norms",
                    },
                }
            ]
        }
    )

    enterprise_id: int
    enterprise: str
    name: str
    region: str | None
    activity_code: str | None
    activity_risk_class: int | None
    period_from: dt.date
    period_to: dt.date
    mean_pr: float | None = Field(description="headcount-weighted mean ПР of scored workplaces")
    level: int | None
    level_name: str | None
    headcount_scored: float = Field(description="persons at scored workplaces")
    headcount_by_level: dict[int, float]
    share_by_level: dict[int, float] = Field(description="fraction of scored headcount per level")
    workplaces_scored: int
    workplaces_unscored: int
    unscored: dict[str, str] = Field(description="workplace code → why it has no ПР")
    workplaces_not_enough_data: list[str] = Field(
        default_factory=list,
        description="scored workplaces whose В rests on a shift with too little data",
    )
    not_enough_data: bool = Field(
        default=False,
        description="some scored workplace's В rests on a shift with too little data: the "
        "level is provisional",
    )
    tariff: TariffPublic | None
    tariff_note: str | None = None


class MapPublic(BaseModel):
    period_from: dt.date
    period_to: dt.date
    enterprises: list[EnterpriseRiskPublic]
    enterprises_by_level: dict[int, int]
    unscored_enterprises: int


class TokenSummary(BaseModel):
    """Who is calling: what ``/api/v1/me`` answers."""

    id: int
    name: str
    role: str
    enterprise_id: int | None
    regions: list[str]
