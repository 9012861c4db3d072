"""``mqtt://user:password@host:port`` and ``mqtts://…`` (TLS) broker addresses."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> MqttEndpoint:
        parts = urlsplit(url)
        if parts.scheme not in {"mqtt", "mqtts", "tcp", "ssl"}:
            raise ValueError(
                f"broker URL {url!r} must start with mqtt:// or mqtts:// (TLS), "
                "e.g. mqtt://127.0.0.1:1883"
            )
        tls = parts.scheme in {"mqtts", "ssl"}
        if not parts.hostname:
            raise ValueError(f"broker URL {url!r} has no host")
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def redacted(self) -> str:
        auth = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{auth}{self.host}:{self.port}"
