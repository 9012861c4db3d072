"""``qorgau ingest`` in a process of its own, as the tests and the ingest benchmark run it: a
SIGKILL is then a real crash, and the worker's CPU is its own to measure."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

# The installed ``qorgau`` script may belong to another environment: run this interpreter's.
_INGEST = ["-c", "import sys; from qorgau.cli import main; sys.exit(main())", "ingest"]


def spawn_ingest_worker(
    *,
    database_url: str,
    schema: str,
    mqtt_url: str,
    prefix: str,
    client_id: str,
    metrics_port: int,
    log_path: Path,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a worker on a schema that is already upgraded, its metrics and health on
    127.0.0.1:``metrics_port``, its output appended to ``log_path``; ``env`` holds further
    settings (``QORGAU_…``), over these."""
    settings = {
        "QORGAU_DATABASE_URL": database_url,
        "QORGAU_DATABASE_SCHEMA": schema,
        "QORGAU_MQTT_URL": mqtt_url,
        "QORGAU_TOPIC_PREFIX": prefix,
        "QORGAU_INGEST_CLIENT_ID": client_id,
        "QORGAU_INGEST_METRICS_PORT": str(metrics_port),
        "QORGAU_INGEST_METRICS_HOST": "127.0.0.1",
        "QORGAU_LOG_LEVEL": "warning",
        **(env or {}),
    }
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, *_INGEST, "--no-upgrade"],
            env={**os.environ, **settings},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
