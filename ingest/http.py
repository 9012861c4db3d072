"""The worker's HTTP side: ``/metrics`` for Prometheus, ``/health`` (503 while the broker or the
database is away: for readiness and alerts) and ``/live`` (200 while the event loop answers: for
liveness probes, which must not restart a worker that is only waiting for its database).

A few lines of asyncio instead of a web framework: three read-only routes, served from the
worker's own event loop so that /health reflects that loop being alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class HealthStatus(Protocol):
    """What ``/health`` reports: a service's own status object (ingest's, the assessment
    service's)."""

    @property
    def healthy(self) -> bool: ...

    def as_json(self) -> dict[str, Any]: ...


log = logging.getLogger(__name__)


async def serve_http(
    host: str,
    port: int,
    registry: CollectorRegistry,
    status: Callable[[], HealthStatus],
) -> asyncio.Server:
    """Start serving; the caller closes the returned server."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass  # headers: nothing we need
            parts = request.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            if len(parts) < 2 or parts[0] not in {"GET", "HEAD"}:
                code, ctype, body = 405, "text/plain", b"only GET\n"
            elif path == "/metrics":
                code, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest(registry)
            elif path == "/live":
                code, ctype, body = 200, "text/plain", b"alive\n"
            elif path in {"/health", "/healthz"}:
                current = status()
                code = 200 if current.healthy else 503
                ctype, body = "application/json", json.dumps(current.as_json()).encode()
            else:
                code, ctype, body = 404, "text/plain", b"try /metrics, /health or /live\n"
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(
                code, "Service Unavailable"
            )
            head = (
                f"HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            writer.write(head + (body if parts and parts[0] != "HEAD" else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError) as exc:
            log.debug("health/metrics request failed: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port)
    log.info("metrics and health on http://%s:%d/metrics and /health", host, port)
    return server
