"""Real servers that alert notifications go to, for tests and the benchmark: an SMTP server
(aiosmtpd, optionally with STARTTLS and login) keeping what it accepts, and a local HTTP server
standing in for the outside services, the Telegram Bot API and an SMS gateway, keeping every
request."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import ssl
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import uvicorn
from aiosmtpd import smtp as aiosmtpd_smtp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from fastapi import FastAPI, Request, Response

from qorgau.demo import EmbeddedServer
from qorgau.localservices import free_port

SMTP_USER = "qorgau"
SMTP_PASSWORD = "a-test-password"


@dataclass
class Mail:
    to: list[str]
    message: EmailMessage
    received_at: float  # time.time() when the server accepted it

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        return str(body.get_content())


@dataclass
class SmtpSink:
    """An SMTP server on 127.0.0.1:``port``; ``start``/``stop`` to take it up and down."""

    port: int = field(default_factory=free_port)
    tls_folder: Path | None = None  # ca.pem, server.pem, server.key: then STARTTLS and login
    mails: list[Mail] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    _controller: Controller | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(  # noqa: N802 - the hook's name in aiosmtpd
        self, server: aiosmtpd_smtp.SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.mails.append(Mail(list(envelope.rcpt_tos), parsed, time.time()))
        return "250 Message accepted for delivery"

    def _authenticate(
        self,
        server: aiosmtpd_smtp.SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        data: Any,
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        if ok:
            self.logins.append(SMTP_USER)
        return AuthResult(success=ok)

    def start(self) -> None:
        options: dict[str, Any] = {}
        if self.tls_folder is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.tls_folder / "server.pem", self.tls_folder / "server.key")
            options = {
                "tls_context": context,
                "require_starttls": True,
                "authenticator": self._authenticate,
                "auth_required": True,
                "auth_require_tls": True,
            }
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[Mail]:
        with self._lock:
            return [m for m in self.mails if address in m.to]


@dataclass
class HttpRequestSeen:
    path: str
    headers: dict[str, str]
    body: bytes
    query: dict[str, str]
    received_at: float


@dataclass
class HttpSink:
    """Stands in for the Telegram Bot API (``/bot<token>/sendMessage``), an SMS gateway
    (``/sms``) and webhook receivers (``/hook``); ``failing`` makes each answer 503."""

    url: str = ""
    requests: list[HttpRequestSeen] = field(default_factory=list)
    failing: bool = False

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def receive(path: str, request: Request) -> Response:
            if self.failing:
                return Response(status_code=503)
            self.requests.append(
                HttpRequestSeen(
                    path="/" + path,
                    headers=dict(request.headers),
                    body=await request.body(),
                    query=dict(request.query_params),
                    received_at=time.time(),
                )
            )
            if path.endswith("/sendMessage"):
                return Response(
                    content=b'{"ok": true, "result": {"message_id": 1}}',
                    media_type="application/json",
                )
            return Response(content=b'{"status": "queued"}', media_type="application/json")

        return app

    def on(self, path: str) -> list[HttpRequestSeen]:
        return [r for r in self.requests if r.path == path]


@contextlib.asynccontextmanager
async def http_sink() -> AsyncIterator[HttpSink]:
    sink = HttpSink()
    port = free_port()
    config = uvicorn.Config(sink.app(), host="127.0.0.1", port=port, log_config=None)
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.02)
        sink.url = f"http://127.0.0.1:{port}"
        yield sink
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
