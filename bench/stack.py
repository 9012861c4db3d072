"""Qorgau's services as subprocesses, as the benchmarks that run the whole stack start them.

``qorgau ingest``, ``qorgau alerts`` and ``qorgau api`` are started with ``python -m qorgau.cli``
from the running interpreter, each in its own session (a Ctrl-C at the terminal reaches the
benchmark only, which then stops them in order), logging into a folder of the benchmark's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def spawn(
    command: str, env: dict[str, str], log_dir: Path, name: str, nice: int = 0
) -> subprocess.Popen[bytes]:
    """``qorgau COMMAND`` with ``env`` added to ours; output to ``log_dir/name.log``. Schema
    migrations are the benchmark's job (``--no-upgrade`` where the command has it)."""
    log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
    process = subprocess.Popen(
        [sys.executable, "-m", "qorgau.cli", command, "--no-upgrade"]
        if command != "api"
        else [sys.executable, "-m", "qorgau.cli", command],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        # The log folder as working directory: the benchmark's own folder on the import path
        # would shadow the packages its modules are named like (bench/ingest.py, bench/api.py).
        cwd=log_dir,
        start_new_session=True,
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )
    log.close()
    return process


def wait_ready(
    process: subprocess.Popen[bytes], check: Callable[[], bool], what: str, timeout: float = 60
) -> None:
    """Wait until ``check()`` is true (its exceptions count as not yet), or fail if the process
    exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready within {timeout:.0f} s")


def stop_all(processes: Iterable[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    """SIGTERM to all at once (each flushes and exits), then SIGKILL what is left."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def api_token(url: str, schema: str, name: str = "bench") -> str:
    """An admin bearer token for the API."""
    from store.auth import Role, create_token
    from store.connection import connect_async

    async def mint() -> str:
        conn = await connect_async(url, schema, autocommit=True)
        async with conn:
            token, _ = await create_token(conn, name=name, role=Role.ADMIN)
            return token

    return asyncio.run(mint())


def service_env(pg_url: str, schema: str, mqtt_url: str, prefix: str) -> dict[str, str]:
    """The settings every service of a bench stack shares (quiet logs: the bench prints)."""
    return {
        "QORGAU_DATABASE_URL": pg_url,
        "QORGAU_DATABASE_SCHEMA": schema,
        "QORGAU_MQTT_URL": mqtt_url,
        "QORGAU_TOPIC_PREFIX": prefix,
        "QORGAU_LOG_LEVEL": "warning",
    }


def machine(*, fsync: bool) -> dict[str, Any]:
    """What a figure was measured on, for the JSON every bench prints."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
        "postgresql": _pg_version(),
        "mosquitto": _mosquitto_version(),
        "fsync": fsync,
    }


def _pg_version() -> str:
    from qorgau.localservices import postgres_bindir

    out = subprocess.run([str(postgres_bindir() / "postgres"), "--version"], capture_output=True)
    return out.stdout.decode().split()[2]  # "postgres (PostgreSQL) 15.x (Debian …)"


def _mosquitto_version() -> str:
    from qorgau.localservices import mosquitto_binary

    out = subprocess.run([str(mosquitto_binary()), "-h"], capture_output=True)
    first = (out.stdout or out.stderr).decode().splitlines()[0]
    return first.rsplit(" ", 1)[-1]
