"""``create_app(settings, render_report=...)``: the FastAPI application, built when called, never
at import. The report renderer is passed in by the composition root (``qorgau``): it is another
surface (``dashboards.reports``), which the API does not import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from analytics import load_norms
from analytics.alerts import load_alert_norms
from api.alert_stream import AlertHub
from api.auth import AnyRole
from api.dashboard import install_dashboard
from api.deps import ConnDep
from api.errors import install_error_handlers
from api.limits import BodySizeLimit, SafeHeaders
from api.live import ReadingsHub
from api.localisation import install_localisation
from api.metrics import ApiMetrics, RequestMetricsMiddleware
from api.models import Health, error_responses
from api.models_risk import TokenSummary
from api.routes_alerts import router as alerts_router
from api.routes_assessments import router as assessments_router
from api.routes_exposure import router as exposure_router
from api.routes_live import router as live_router
from api.routes_map import router as map_router
from api.routes_notifications import router as notifications_router
from api.routes_readings import router as readings_router
from api.routes_registry import router as registry_router
from api.routes_reports import router as reports_router
from api.settings import ApiSettings
from application.report_files import ReportRenderer
from store.connection import make_pool
from store.migrate import recorded_backend_async
from vocabulary import __version__

log = logging.getLogger(__name__)

DESCRIPTION = """
Workplace exposure from instrument readings, the harmfulness index **В**, assessors' inputs
(Т, Об, СИЗ, З and classes of unmeasured factors), occupational risk **ПР** with its level,
protection class, insurance tariff, PPE and social guarantees, the enterprises' digital map and
exports for risk scoring and insurers.

**Auth**: every endpoint except `/health` needs `Authorization: Bearer <token>`; create tokens
with `qorgau tokens create --role admin|safety_officer|inspector|scoring`. Objects of another
tenant answer 404; an endpoint the token's role may not use answers 403.
"""

# Where the Swagger UI and ReDoc files of /docs and /redoc are served (no token: no data).
DOCS_ASSETS = "/docs-assets"

_me_router = APIRouter(prefix="/api/v1", tags=["service"], responses=error_responses())


@_me_router.get("/me", response_model=TokenSummary)
async def me(token: AnyRole) -> TokenSummary:
    """The calling token's role and tenant."""
    return TokenSummary(
        id=token.id,
        name=token.name,
        role=token.role.value,
        enterprise_id=token.enterprise_id,
        regions=list(token.regions),
        locale=token.locale,
    )


def create_app(settings: ApiSettings, *, render_report: ReportRenderer) -> FastAPI:
    norms = load_norms(settings.norms_profile)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = make_pool(
            settings.database_url,
            settings.database_schema,
            max_size=settings.db_pool_max,
            name="qorgau-api",
        )
        await pool.open(wait=False)
        app.state.pool = pool
        stop = asyncio.Event()
        hub_tasks: list[asyncio.Task[None]] = []
        if settings.api_alert_stream:
            hub = AlertHub(settings.mqtt_url, settings.topic_prefix)
            app.state.alert_hub = hub
            metrics.watch_link("alerts", hub.connected.is_set)
            metrics.watch_stream("alerts", hub.subscriber_count)
            hub_tasks.append(asyncio.create_task(hub.run(stop), name="alert-hub"))
        if settings.api_live_stream:
            readings_hub = ReadingsHub(settings.mqtt_url, settings.topic_prefix)
            app.state.readings_hub = readings_hub
            metrics.watch_link("live", readings_hub.connected.is_set)
            metrics.watch_stream("live", readings_hub.viewer_count)
            hub_tasks.append(asyncio.create_task(readings_hub.run(stop), name="readings-hub"))
        try:
            yield
        finally:
            stop.set()
            for task in hub_tasks:
                await task
            await pool.close()

    # Swagger UI and ReDoc from the assets fastapi-offline ships, not from a CDN: a plant network
    # without internet still gets its /docs.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        title="Qorgau",
        version=__version__,
        summary="Workplace exposure, harmfulness index В, early warning and occupational risk.",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.norms = norms
    app.state.alert_norms = load_alert_norms(settings.norms_profile)
    app.state.render_report = render_report
    install_error_handlers(app, max_validation_errors=settings.api_max_validation_errors)
    if settings.api_metrics:
        app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
        app.add_route("/metrics", metrics.exposition, include_in_schema=False)
    app.state.metrics = metrics
    # Added last, so outermost: a too large body is refused before anything else runs, and every
    # answer (the 413 and other errors included) gets the headers.
    app.add_middleware(BodySizeLimit, limit_bytes=settings.api_max_body_bytes)
    app.add_middleware(SafeHeaders, private_prefix="/api/")

    @app.get("/health", response_model=Health, tags=["service"])
    async def health(conn: ConnDep) -> Health | JSONResponse:
        try:
            backend = await recorded_backend_async(conn)
        except psycopg.Error as exc:  # report, don't raise: this is what monitoring polls
            return JSONResponse(
                status_code=503,
                content=Health(status="degraded", database=f"error: {exc}").model_dump(),
            )
        return Health(status="ok", database="ok", backend=backend)

    for router in (
        _me_router,
        registry_router,
        readings_router,
        assessments_router,
        exposure_router,
        map_router,
        alerts_router,
        notifications_router,
        live_router,
        reports_router,
    ):
        app.include_router(router)
    install_localisation(app, norms, settings.default_locale)
    install_dashboard(app)
    return app
