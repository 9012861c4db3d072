"""Prometheus metrics of ``qorgau api``: requests by route template and status, time to the
response's first byte, and the state of its broker links; served at ``/metrics``.

Requests are counted by an ASGI middleware of our own rather than Starlette's
``BaseHTTPMiddleware``, which would buffer the server-sent event streams of the dashboard and
the alert feed. Latency is measured to the start of the response (headers sent): for a JSON
route that is the whole handler, and a stream that stays open for hours does not swamp the
histogram. Labels use the route template (``/api/v1/workplaces/{workplace_id}``), never the
concrete path, so the number of series stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"  # requests no route answered (404s of scanners, typos)


@dataclass
class ApiMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "qorgau_api_requests_total",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=r,
        )
        self.response_start = Histogram(
            "qorgau_api_response_start_seconds",
            "time from receiving a request to sending the response's headers",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.in_progress = Gauge(
            "qorgau_api_requests_in_progress",
            "requests being answered, open event streams included",
            registry=r,
        )
        self.broker_connected = Gauge(
            "qorgau_api_broker_connected",
            "1 while the API's link to the broker is up (link: alerts or live readings)",
            ["link"],
            registry=r,
        )
        self.stream_clients = Gauge(
            "qorgau_api_stream_clients",
            "open event streams (stream: alerts or live readings)",
            ["stream"],
            registry=r,
        )

    def watch_link(self, link: str, connected: Callable[[], bool]) -> None:
        self.broker_connected.labels(link=link).set_function(lambda: float(connected()))

    def watch_stream(self, stream: str, clients: Callable[[], int]) -> None:
        self.stream_clients.labels(stream=stream).set_function(lambda: float(clients()))

    def exposition(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the application fails before answering
        timed = False

        def observe_start() -> None:
            nonlocal timed
            if not timed:
                timed = True
                self.metrics.response_start.labels(scope["method"], route_of(scope)).observe(
                    time.perf_counter() - started
                )

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                observe_start()
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_counted)
        finally:
            self.metrics.in_progress.dec()
            observe_start()
            self.metrics.requests.labels(scope["method"], route_of(scope), str(status)).inc()


def route_of(scope: Scope) -> str:
    """The template of the route that answered (FastAPI puts it in the scope), or UNMATCHED."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
