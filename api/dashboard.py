"""The built-in web dashboard: one HTML page, a small plain-JavaScript app and the vendored
uPlot, all shipped as package data of ``api`` and served by the API itself (no build step).

The page holds no secret: it asks for a bearer token, keeps it in ``sessionStorage`` and sends
it in the ``Authorization`` header of every call, streams included (read with ``fetch``), so a
token never appears in a URL or an access log.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"


def _headers(tile_origin: str | None) -> dict[str, str]:
    # The page may load only what the API serves itself, and talk only to it; images also from
    # the map's tile server when one is configured.
    images = "'self' data:" + (f" {tile_origin}" if tile_origin else "")
    return {
        "Cache-Control": "no-cache",
        "Content-Security-Policy": (
            f"default-src 'self'; img-src {images}; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/`` and its files under ``/static``."""
    tiles = getattr(app.state.settings, "map_tiles_url", None)
    headers = _headers(None if tiles is None else "/".join(tiles.split("/")[:3]))

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=headers)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
