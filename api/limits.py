"""Guards every request passes before a route sees it: the body size limit and the response
headers that keep tenant data out of caches and browsers' content sniffing.

Both are plain ASGI middleware, not Starlette's ``BaseHTTPMiddleware``: that one buffers
streaming responses and would hold back the live and alert streams (SSE).
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def too_large_message(limit_bytes: int) -> str:
    return (
        f"the request body is larger than this server accepts ({limit_bytes} bytes); send less "
        "per request (the limit is QORGAU_API_MAX_BODY_BYTES)"
    )


class BodySizeLimit:
    """Answer 413 to a body larger than ``limit_bytes``, before any of it is parsed.

    A declared ``Content-Length`` over the limit is refused at once. A body without one
    (``Transfer-Encoding: chunked``) is read here up to the limit and handed on from memory, so
    the route never starts on a body that will turn out too large. The server frames a body
    with a ``Content-Length`` by that length, so a client cannot send more than it declared.

    The 413 leaves the connection open: the server reads and drops the rest of the body, so
    the client gets the answer and not a reset connection (closing a socket with unread data in
    it resets it). A client that asked ``Expect: 100-continue`` never sends the body at all.
    """

    def __init__(self, app: ASGIApp, *, limit_bytes: int) -> None:
        self.app = app
        self.limit_bytes = limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None:
            if declared.strip().isdigit() and int(declared) > self.limit_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if scope["method"] not in _BODY_METHODS and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            status_code=413, content={"detail": too_large_message(self.limit_bytes)}
        )
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect a stream waits for

    return replay


class SafeHeaders:
    """``X-Content-Type-Options: nosniff`` on every response, and ``Cache-Control: no-store`` on
    every answer under ``private_prefix`` (tenant data behind a token) unless the route chose
    its own caching: no proxy or browser cache keeps one tenant's data for the next user."""

    def __init__(self, app: ASGIApp, *, private_prefix: str) -> None:
        self.app = app
        self.private_prefix = private_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = scope["path"].startswith(self.private_prefix) or any(
            name == b"authorization" for name, _ in scope.get("headers", ())
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if private:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
