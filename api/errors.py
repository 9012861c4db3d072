"""The one place where Qorgau's errors (and the database's) become HTTP responses."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from analytics import AnalyticsError
from application.schedule import NoSuchShiftError
from qorgau.errors import QorgauError
from store.catalog import ConflictError, InvalidInputError, NotFoundError
from store.connection import DatabaseUnavailableError

log = logging.getLogger(__name__)

UNAVAILABLE = "the database is unavailable; try again shortly"


class ApiError(QorgauError):
    """An error with an HTTP status, raised by routes and services of the API."""

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code


class UnprocessableError(ApiError):
    """The request is well-formed but cannot be acted on as it is (422)."""

    status_code = 422


def _json(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": message})


def _location(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "request")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Keep FastAPI's structured list and add one sentence that says what to fix.
        errs = exc.errors()
        summary = "; ".join(
            f"{_location(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in errs[:5]
        )
        return JSONResponse(
            status_code=422,
            content={
                "detail": f"invalid request: {summary}",
                "errors": [
                    {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
                    for e in errs
                ],
            },
        )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _json(exc.status_code, str(exc))

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return _json(404, str(exc))

    @app.exception_handler(ConflictError)
    async def conflict(request: Request, exc: ConflictError) -> JSONResponse:
        return _json(409, str(exc))

    @app.exception_handler(InvalidInputError)
    async def invalid(request: Request, exc: InvalidInputError) -> JSONResponse:
        return _json(422, str(exc))

    @app.exception_handler(NoSuchShiftError)
    async def no_such_shift(request: Request, exc: NoSuchShiftError) -> JSONResponse:
        return _json(422, str(exc))

    @app.exception_handler(AnalyticsError)
    async def analytics(request: Request, exc: AnalyticsError) -> JSONResponse:
        return _json(422, f"cannot assess: {exc}")

    @app.exception_handler(DatabaseUnavailableError)
    async def unavailable(request: Request, exc: DatabaseUnavailableError) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return _json(503, UNAVAILABLE)

    @app.exception_handler(PoolTimeout)
    async def pool_timeout(request: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("no database connection: %s", exc)
        return _json(503, UNAVAILABLE)

    @app.exception_handler(psycopg.errors.DataError)
    async def bad_value(request: Request, exc: psycopg.errors.DataError) -> JSONResponse:
        # A value the request validation let through but PostgreSQL cannot store or compare
        # (NUL in text, out-of-range number): the caller's to fix, not a server fault.
        primary = exc.diag.message_primary or str(exc)
        return _json(422, f"invalid value: {primary}")

    @app.exception_handler(psycopg.OperationalError)
    async def operational(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        log.warning("database error: %s", exc)
        return _json(503, UNAVAILABLE)


def not_found_response(what: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entry of a route that answers 404 for other tenants' objects."""
    return {404: {"description": f"no such {what}, or one of another tenant"}}
