"""The one place where Qorgau's errors (and the database's) become HTTP responses."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from analytics import AnalyticsError
from api.localisation import request_locale
from application.localisation import Message, localised
from application.schedule import NoSuchShiftError
from store.catalog import ConflictError, InvalidInputError, NotFoundError
from store.connection import DatabaseUnavailableError
from vocabulary.errors import QorgauError

log = logging.getLogger(__name__)

UNAVAILABLE = "the database is unavailable; try again shortly"
NOT_FOUND = "no {noun} with id {id}"


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


def _json(status: int, message: str, request: Request | None = None) -> JSONResponse:
    """An error answer; with the request, its message in the reader's language."""
    if request is None:
        return JSONResponse(status_code=status, content={"detail": message})
    locale = request_locale(request)
    return JSONResponse(
        status_code=status,
        content={"detail": localised(message, locale)},
        headers={"Content-Language": locale},
    )


# A 422 names what to fix, it does not mirror the request: each part of a field's location
# and each message is cut to these lengths (an unknown key can be a megabyte long).
_LOC_PART_CHARS = 64
_MSG_CHARS = 200


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _loc(loc: Sequence[Any]) -> list[int | str]:
    return [p if isinstance(p, int) else _clip(str(p), _LOC_PART_CHARS) for p in loc]


def _location(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "request")


def validation_content(errs: Sequence[Mapping[str, Any]], max_errors: int) -> dict[str, Any]:
    """The body of a 422: one sentence naming the first bad fields and a structured list of at
    most ``max_errors`` errors, clipped, never echoing the input; ``error_count`` says how many
    there were in all."""
    shown = [
        (_loc(e.get("loc", ())), _clip(str(e.get("msg", "invalid")), _MSG_CHARS), e.get("type"))
        for e in errs[:max_errors]
    ]
    summary = "; ".join(f"{_location(loc)}: {msg}" for loc, msg, _ in shown[:5])
    if len(errs) > len(shown[:5]):
        summary += f"; and {len(errs) - len(shown[:5])} more"
    return {
        "detail": f"invalid request: {summary}",
        "errors": [{"loc": loc, "msg": msg, "type": kind} for loc, msg, kind in shown],
        "error_count": len(errs),
    }


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's own errors and the routes' HTTPExceptions, in the reader's language."""
    if not isinstance(exc.detail, str) or exc.status_code in (204, 304):
        return await http_exception_handler(request, exc)
    response = _json(exc.status_code, exc.detail, request)
    response.headers.update(exc.headers or {})
    return response


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    said = exc.args[0] if exc.args and isinstance(exc.args[0], Message) else str(exc)
    return _json(exc.status_code, said, request)


async def _not_found(request: Request, exc: NotFoundError) -> JSONResponse:
    if exc.noun is None:
        return _json(404, str(exc), request)
    return _json(404, Message(NOT_FOUND, noun=Message(exc.noun), id=exc.ident), request)


def install_error_handlers(app: FastAPI, *, max_validation_errors: int = 20) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            status_code=422, content=validation_content(exc.errors(), max_validation_errors)
        )

    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(NotFoundError, _not_found)  # type: ignore[arg-type]

    @app.exception_handler(ConflictError)
    async def conflict(request: Request, exc: ConflictError) -> JSONResponse:
        return _json(409, str(exc), request)

    @app.exception_handler(InvalidInputError)
    async def invalid(request: Request, exc: InvalidInputError) -> JSONResponse:
        return _json(422, str(exc), request)

    @app.exception_handler(NoSuchShiftError)
    async def no_such_shift(request: Request, exc: NoSuchShiftError) -> JSONResponse:
        return _json(422, str(exc), request)

    @app.exception_handler(AnalyticsError)
    async def analytics(request: Request, exc: AnalyticsError) -> JSONResponse:
        return _json(422, f"cannot assess: {exc}", request)

    @app.exception_handler(DatabaseUnavailableError)
    async def unavailable(request: Request, exc: DatabaseUnavailableError) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return _json(503, UNAVAILABLE, request)

    @app.exception_handler(PoolTimeout)
    async def pool_timeout(request: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("no database connection: %s", exc)
        return _json(503, UNAVAILABLE, request)

    @app.exception_handler(psycopg.errors.DataError)
    async def bad_value(request: Request, exc: psycopg.errors.DataError) -> JSONResponse:
        # A value the request validation let through but PostgreSQL cannot store or compare
        # (NUL in text, out-of-range number): the caller's to fix, not a server fault.
        primary = exc.diag.message_primary or str(exc)
        return _json(422, f"invalid value: {primary}", request)

    @app.exception_handler(psycopg.OperationalError)
    async def operational(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        log.warning("database error: %s", exc)
        return _json(503, UNAVAILABLE, request)


def not_found_response(what: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entry of a route that answers 404 for other tenants' objects."""
    return {404: {"description": f"no such {what}, or one of another tenant"}}
