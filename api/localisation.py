"""Languages of the API: the page's message catalogues as JSON, each token's chosen language,
and the language of messages meant for people (errors).

The JSON is exported from the same gettext catalogues Python uses (``locales/``), once when the
app is built; the page reads it before sign-in, so it needs no token (it holds no data).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from analytics import Norms
from api.auth import AnyRole
from api.deps import ConnDep
from api.models import error_responses
from application.localisation import (
    AUTONYMS,
    DEFAULT_LOCALE,
    LOCALES,
    LocaleCode,
    messages,
    negotiate,
    page_formats,
)
from store.auth import set_token_locale

# The catalogues do not change while the process runs; the page may cache them for an hour.
_CACHE = {"Cache-Control": "public, max-age=3600"}


class LocaleChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"locale": "kk"}]})

    locale: LocaleCode | None = Field(
        description="kk, ru or en; null: follow the browser's Accept-Language"
    )


router = APIRouter(prefix="/api/v1", tags=["service"], responses=error_responses())


@router.put("/me/locale", response_model=LocaleChoice)
async def choose_locale(body: LocaleChoice, conn: ConnDep, token: AnyRole) -> LocaleChoice:
    """Store the language the calling token's holder reads; the page and the API's messages
    for people then use it before the browser's `Accept-Language`."""
    await set_token_locale(conn, token.id, body.locale)
    return body


def request_locale(request: Request) -> str:
    """The language to answer ``request`` in: the token's choice (set on ``request.state`` when
    the token was resolved), then ``Accept-Language``, then the deployment's default. A request
    with neither comes from a program (browsers always send Accept-Language): English, the
    language of the API's documentation."""
    preference = getattr(request.state, "locale", None)
    header = request.headers.get("accept-language")
    if preference is None and header is None:
        return "en"
    default = getattr(request.app.state.settings, "default_locale", DEFAULT_LOCALE)
    return negotiate(preference, header, default)


def page_index(
    norms: Norms, default: str, accept_language: str | None, tiles: str | None, attribution: str
) -> dict[str, Any]:
    return {
        "locale": negotiate(None, accept_language, default),
        "default": default,
        "locales": [{"code": code, "name": AUTONYMS[code]} for code in LOCALES],
        # Display names of the norms' substances (English; the catalogues translate them).
        "substances": {code: s.name for code, s in norms.substances.items()},
        # Risk level names are part of the norms profile, in each language, with their source.
        "level_names": {
            "en": list(norms.risk.level_names),
            "ru": list(norms.risk.level_names_ru),
            "kk": list(norms.risk.level_names_kz),
        },
        "map": {"tiles": tiles, "attribution": attribution},
    }


def install_localisation(app: FastAPI, norms: Norms, default: str) -> None:
    """Serve ``/i18n/index.json`` (languages, the one negotiated for this browser) and
    ``/i18n/{locale}.json`` (the page's catalogue), and the token's language choice."""
    catalogues = {
        code: {"locale": code, "messages": messages(code), "formats": page_formats(code)}
        for code in LOCALES
    }

    @app.get("/i18n/index.json", include_in_schema=False)
    async def index(
        accept_language: Annotated[str | None, Header(max_length=500)] = None,
    ) -> JSONResponse:
        settings = app.state.settings
        body = page_index(
            norms, default, accept_language, settings.map_tiles_url, settings.map_tiles_attribution
        )
        return JSONResponse(body, headers={"Cache-Control": "no-cache", "Vary": "Accept-Language"})

    @app.get("/i18n/{locale}.json", include_in_schema=False)
    async def catalogue(locale: LocaleCode) -> JSONResponse:
        return JSONResponse(catalogues[locale], headers=_CACHE)

    app.include_router(router)
