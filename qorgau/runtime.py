"""What every long-running command shares: logging, signal-driven shutdown, settings help."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings

from vocabulary.errors import ConfigurationError

S = TypeVar("S", bound=BaseSettings)

_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log collectors (Loki, ELK) ingest without parsing rules."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(level: str | None = None, fmt: str | None = None) -> None:
    """``QORGAU_LOG_LEVEL`` (info) and ``QORGAU_LOG_FORMAT`` (text, or json for collectors)."""
    level = (level or os.environ.get("QORGAU_LOG_LEVEL", "info")).upper()
    fmt = fmt or os.environ.get("QORGAU_LOG_FORMAT", "text")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_third_party_logs(level)


# Libraries whose INFO says nothing an operator acts on: fontTools logs some 400 lines while
# matplotlib embeds the fonts of one PDF report; the others log each request or connection.
THIRD_PARTY_LOGGERS = ("uvicorn.access", "httpx", "psycopg.pool", "fontTools", "matplotlib")


def quiet_third_party_logs(level: str | None = None) -> None:
    """Third-party loggers at WARNING unless ``QORGAU_LOG_LEVEL`` is debug."""
    level = (level or os.environ.get("QORGAU_LOG_LEVEL", "info")).upper()
    for noisy in THIRD_PARTY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


def load_settings(cls: type[S]) -> S:
    """Settings from the environment, with a message that names the variable to fix."""
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(
            f"QORGAU_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from None


# What a command that only opens a connection reads of the database settings.
CONNECTION_SETTINGS = ("database_url", "database_schema")


def settings_help(*classes: type[BaseModel], only: Collection[str] | None = None) -> str:
    """An --help epilog listing each setting's variable, default and meaning; ``only`` names the
    fields a command reads where it reads a few of a larger settings class."""
    lines = ["settings (environment variables):"]
    seen: set[str] = set()
    for cls in classes:
        for name, info in cls.model_fields.items():
            if name in seen or (only is not None and name not in only):
                continue
            seen.add(name)
            default = "computed" if info.default_factory is not None else repr(info.default)
            lines.append(f"  QORGAU_{name.upper():<34} {info.description or ''} [{default}]")
    return "\n".join(lines)


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run ``main(stop)``; SIGINT/SIGTERM set ``stop`` so the service can flush and exit."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        asyncio.run(runner())
    except ConfigurationError as exc:
        print(f"qorgau: {exc}", file=sys.stderr)
        return 2
    return 0
