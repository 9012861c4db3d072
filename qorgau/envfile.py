"""The settings file ``qorgau demo`` writes and every other command reads.

The demo starts PostgreSQL and Mosquitto on free ports; other commands run beside it (``qorgau
report``, ``qorgau tokens create``) would otherwise look for a server on 127.0.0.1:5432. So the
demo writes the addresses it chose to ``.qorgau/demo/qorgau.env`` (``KEY=value`` lines, the
dotenv format), and ``qorgau`` loads that file before any command runs. Variables already set in
the environment win over the file; ``QORGAU_ENV_FILE`` names another file.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

DEFAULT_ENV_FILE = Path(".qorgau/demo/qorgau.env")
ENV_FILE_VARIABLE = "QORGAU_ENV_FILE"
# Set to the file's path when the database address came from it, so that a connection error can
# say so (a demo killed without stopping leaves its file behind).
DATABASE_FROM_VARIABLE = "QORGAU_DATABASE_URL_FROM"


def env_file_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get(ENV_FILE_VARIABLE) or DEFAULT_ENV_FILE)


def load_env_file(path: Path | None = None) -> dict[str, str]:
    """Put the file's ``QORGAU_*`` settings into ``os.environ`` where they are not set already;
    returns the ones applied. A missing file is no error (no demo is running)."""
    from dotenv import dotenv_values

    path = path or env_file_path()
    if not path.is_file():
        return {}
    applied: dict[str, str] = {}
    for key, value in dotenv_values(path).items():
        if key.startswith("QORGAU_") and value is not None and key not in os.environ:
            os.environ[key] = value
            applied[key] = value
    if "QORGAU_DATABASE_URL" in applied:
        os.environ[DATABASE_FROM_VARIABLE] = str(path)
    return applied


def write_env_file(path: Path, settings: Mapping[str, str]) -> None:
    """Write ``settings`` (readable by ``load_env_file`` and by ``source`` in a shell)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `qorgau demo`: the servers it runs. Removed when the demo stops."]
    lines += [f"{key}={shlex.quote(value)}" for key, value in settings.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def export_lines(settings: Mapping[str, str]) -> list[str]:
    """``export`` lines to paste into another shell."""
    return [f"export {key}={shlex.quote(value)}" for key, value in settings.items()]
