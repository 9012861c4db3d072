"""Response models of the readings part of the API and of the service itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.models_registry import SensorPublic


class ReadingsPublic(BaseModel):
    sensor: SensorPublic
    unit: str = Field(description="unit of `values`")
    start: datetime
    end: datetime
    count: int
    truncated: bool = Field(description="true when more readings exist than `limit` allowed")
    times: list[datetime]
    values: list[float] = Field(description="values in `unit`")


class Health(BaseModel):
    status: str
    database: str
    backend: str | None = None


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="where: body/query/path, then the field")
    msg: str
    type: str


class ErrorPublic(BaseModel):
    """Every error answer: one sentence that says what to fix, and for 422 the details."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": "invalid request: timezone: Value error, unknown time zone "
                    "'Mars/Base'; use an IANA name such as Asia/Almaty",
                    "errors": [
                        {
                            "loc": ["body", "timezone"],
                            "msg": "Value error, unknown time zone 'Mars/Base'; use an IANA "
                            "name such as Asia/Almaty",
                            "type": "value_error",
                        }
                    ],
                    "error_count": 1,
                }
            ]
        }
    )

    detail: str
    errors: list[ValidationIssue] | None = Field(
        default=None, description="422: the first errors (at most QORGAU_API_MAX_VALIDATION_ERRORS)"
    )
    error_count: int | None = Field(default=None, description="422: how many errors in all")


def error_responses() -> dict[int | str, dict[str, Any]]:
    """The error answers every protected route may give, for OpenAPI."""
    return {
        401: {"model": ErrorPublic, "description": "missing, unknown, revoked or expired token"},
        403: {"model": ErrorPublic, "description": "the token's role may not do this"},
        413: {"model": ErrorPublic, "description": "request body over the server's size limit"},
        422: {"model": ErrorPublic, "description": "invalid request: `detail` says what to fix"},
        503: {"model": ErrorPublic, "description": "database unavailable; retry"},
    }
