"""The delivery interface and its channels: email (SMTP), Telegram (Bot API), SMS (an HTTP
gateway whose request is configuration) and webhooks (signed JSON POSTs).

A channel sends one :class:`Outgoing` to one address and either returns (accepted by the
server: the SMTP server, Telegram, the gateway, the receiver) or raises :class:`DeliveryError`,
``permanent`` when trying again cannot help (an address refused, a 4xx other than 408/429). The
sender (``sender.py``) owns retries, backoff and the record of every attempt; channels hold no
state but their client.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

import aiosmtplib
import httpx

SIGNATURE_HEADER = "X-Qorgau-Signature"


class DeliveryError(Exception):
    """A delivery that failed; ``permanent``: retrying cannot help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to one address, already in the recipient's language."""

    key: str  # stable across retries (message id, de-duplication header)
    address: str
    subject: str
    text: str
    language: str = "en"
    data: Mapping[str, Any] = field(default_factory=dict)  # machine-readable, for webhooks


class Channel(Protocol):
    name: str

    async def send(self, message: Outgoing) -> None: ...


def _http_outcome(response: httpx.Response, *, detail: bool = True) -> None:
    """Nothing when the request was accepted; else the :class:`DeliveryError` it means: a 4xx
    but 408 and 429 is permanent, anything else may pass on a retry."""
    if response.status_code < 300:
        return
    problem = f"HTTP {response.status_code}"
    if detail and response.text.strip():
        problem += f": {response.text.strip()[:200]}"
    permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
    raise DeliveryError(problem, permanent=permanent)


async def _post(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return await client.post(url, **kwargs)
    except httpx.HTTPError as exc:
        raise DeliveryError(str(exc) or type(exc).__name__) from None


# ------------------------------------------------------------------ webhooks


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


async def post_signed(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    body: bytes,
    *,
    key: str,
    key_header: str = "X-Qorgau-Alert",
    clock: Callable[[], float] = time.time,
    detail: bool = True,
) -> None:
    """POST ``body`` as JSON with the HMAC signature header (``webhooks.verify`` checks it) and
    ``key`` in ``key_header`` for the receiver's de-duplication."""
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret, int(clock()), body),
        key_header: key,
    }
    _http_outcome(await _post(client, url, content=body, headers=headers), detail=detail)


class WebhookChannel:
    """A person's webhook (a chat bridge, a paging service): the text and the alert as signed
    JSON. The alert webhooks of ``webhooks.py`` send through the same :func:`post_signed`."""

    name = "webhook"

    def __init__(self, client: httpx.AsyncClient, secret: str) -> None:
        self.client = client
        self.secret = secret

    async def send(self, message: Outgoing) -> None:
        body = json.dumps(
            {
                "subject": message.subject,
                "text": message.text,
                "language": message.language,
                **message.data,
            },
            default=str,
        ).encode()
        await post_signed(
            self.client,
            message.address,
            self.secret,
            body,
            key=message.key,
            key_header="X-Qorgau-Notification",
        )


# ------------------------------------------------------------------ email


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 587
    starttls: bool = True  # upgrade with STARTTLS (required when set)
    tls: bool = False  # implicit TLS from the first byte (port 465)
    username: str = ""
    password: str = ""
    sender: str = "qorgau@localhost"
    timeout_s: float = 10.0
    ca_file: str = ""  # extra CA to trust (a private mail relay); empty: the system's


class EmailChannel:
    """Email through an SMTP server (aiosmtplib): STARTTLS or implicit TLS, login when a user
    name is set. A 5xx reply is permanent (address refused); a 4xx or a network error is not."""

    name = "email"

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._tls: ssl.SSLContext | None = None
        if config.starttls or config.tls:
            self._tls = ssl.create_default_context(cafile=config.ca_file or None)

    def compose(self, message: Outgoing) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.config.sender
        mail["To"] = message.address
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        domain = self.config.sender.rpartition("@")[2] or "qorgau"
        # Stable across retries: a mail client shows a repeat after a lost reply once.
        mail["Message-ID"] = f"<{message.key}@{domain}>"
        mail["Content-Language"] = message.language
        mail.set_content(message.text)
        return mail

    async def send(self, message: Outgoing) -> None:
        c = self.config
        try:
            await aiosmtplib.send(
                self.compose(message),
                hostname=c.host,
                port=c.port,
                username=c.username or None,
                password=c.password or None,
                use_tls=c.tls,
                start_tls=c.starttls and not c.tls,
                tls_context=self._tls,
                timeout=c.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise DeliveryError(
                f"address refused: {exc.recipients[0].message}" if exc.recipients else str(exc),
                permanent=all(500 <= code < 600 for code in codes),
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.code < 600 and not isinstance(
                exc, aiosmtplib.SMTPAuthenticationError
            )
            raise DeliveryError(f"SMTP {exc.code}: {exc.message}", permanent=permanent) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP: {exc}" if str(exc) else type(exc).__name__) from None


# ------------------------------------------------------------------ Telegram


class TelegramChannel:
    """A Telegram chat through the Bot API ``sendMessage`` (the address is the chat id)."""

    name = "telegram"

    def __init__(self, client: httpx.AsyncClient, token: str, api_url: str) -> None:
        self.client = client
        self.url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"

    async def send(self, message: Outgoing) -> None:
        text = f"{message.subject}\n\n{message.text}"[:4096]  # the Bot API's limit
        response = await _post(
            self.client, self.url, json={"chat_id": message.address, "text": text}
        )
        if response.status_code < 300:
            try:
                accepted = bool(response.json().get("ok"))
            except (ValueError, AttributeError):
                accepted = False
            if not accepted:
                raise DeliveryError(f"Telegram did not confirm: {response.text[:200]}")
            return
        # The Bot API answers {"ok": false, "description": …}; a wrong token or chat is 401/400.
        _http_outcome(response)


# ------------------------------------------------------------------ SMS


@dataclass(frozen=True, slots=True)
class SmsConfig:
    """The gateway's request: ``fields`` and ``headers`` are JSON objects whose string values may
    name ``$phone``, ``$text``, ``$key`` and are sent as a JSON body, a form or a query."""

    url: str
    method: str = "POST"
    encoding: str = "json"  # json | form | query
    fields: str = '{"to": "$phone", "text": "$text"}'
    headers: str = "{}"
    max_chars: int = 480  # three concatenated SMS of Cyrillic text


def _fill(template: Any, values: Mapping[str, str]) -> Any:
    if isinstance(template, str):
        return string.Template(template).safe_substitute(values)
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    return template


def parse_template(name: str, text: str) -> dict[str, Any]:
    """A JSON object template, or ``ValueError`` saying what is wrong with it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object")
    return value


class SmsChannel:
    """SMS through an HTTP gateway; each provider's API differs, so the request is a template."""

    name = "sms"

    def __init__(self, client: httpx.AsyncClient, config: SmsConfig) -> None:
        self.client = client
        self.config = config
        self.fields = parse_template("the SMS fields template", config.fields)
        self.headers = parse_template("the SMS headers template", config.headers)
        if config.encoding not in ("json", "form", "query"):
            raise ValueError("the SMS encoding must be json, form or query")

    def request(self, message: Outgoing) -> httpx.Request:
        text = f"{message.subject}. {message.text}"[: self.config.max_chars]
        values = {"phone": message.address, "text": text, "key": message.key}
        fields = _fill(self.fields, values)
        headers = {str(k): str(v) for k, v in _fill(self.headers, values).items()}
        c = self.config
        if c.encoding == "json":
            return self.client.build_request(c.method, c.url, json=fields, headers=headers)
        if c.encoding == "form":
            return self.client.build_request(c.method, c.url, data=fields, headers=headers)
        return self.client.build_request(c.method, c.url, params=fields, headers=headers)

    async def send(self, message: Outgoing) -> None:
        try:
            response = await self.client.send(self.request(message))
        except httpx.HTTPError as exc:
            raise DeliveryError(str(exc) or type(exc).__name__) from None
        _http_outcome(response)
