"""Throwaway PostgreSQL and Mosquitto processes on free loopback ports.

``qorgau demo`` uses them when no database or broker is configured, and the test fixtures use
them so that integration tests talk to real servers. Both run from the system's binaries
(Debian's ``postgresql`` and ``mosquitto`` packages); when the caller is root they run as the
packages' service users, because PostgreSQL refuses to run as root.

Where the TimescaleDB extension is installed for that PostgreSQL, the server preloads it
(``shared_preload_libraries``), without which ``CREATE EXTENSION timescaledb`` fails; the schema
then runs on TimescaleDB unless ``QORGAU_DB_TIMESCALE=off`` (``store.migrate``).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qorgau.broker import BrokerConfig, render_mosquitto_conf
from vocabulary.errors import QorgauError

log = logging.getLogger(__name__)


class ServiceStartError(QorgauError):
    """A local PostgreSQL or Mosquitto could not be started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _service_user(name: str) -> pwd.struct_passwd | None:
    """The account to run a server as: ``name`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    for candidate in (name, "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(candidate)
    raise ServiceStartError(f"running as root, but neither user {name!r} nor 'nobody' exists")


def _chown_tree(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, user.pw_uid, user.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)


def _reachable_by(path: Path, user: pwd.struct_passwd | None) -> bool:
    """Whether ``user`` can reach into ``path`` (a home folder is often closed to others)."""
    if user is None:
        return True
    probe = subprocess.run(
        ["test", "-x", str(path)], user=user.pw_uid, group=user.pw_gid, check=False
    )
    return probe.returncode == 0


def _wait_for_port(
    port: int, process: subprocess.Popen[bytes], what: str, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceStartError(f"{what} exited with code {process.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise ServiceStartError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s")


def spawn_logged(
    cmd: list[str],
    log_path: Path,
    *,
    user: pwd.struct_passwd | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server in a session of its own (so that a kill reaches its children), as
    ``user``, its output appended to ``log_path``."""
    with open(log_path, "ab") as log_file:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            cmd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


def postgres_bindir() -> Path:
    """Where the PostgreSQL server binaries are (``QORGAU_PG_BINDIR`` overrides)."""
    explicit = os.environ.get("QORGAU_PG_BINDIR")
    candidates = [explicit] if explicit else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    for candidate in candidates:
        if (
            candidate
            and (Path(candidate) / "initdb").exists()
            and (Path(candidate) / "postgres").exists()
        ):
            return Path(candidate)
    raise ServiceStartError(
        "PostgreSQL server binaries not found: install them (apt-get install postgresql), "
        "set QORGAU_PG_BINDIR, or point QORGAU_DATABASE_URL at an existing server"
    )


def _pg_config_dir(bindir: Path, option: str) -> Path | None:
    """A directory ``pg_config`` reports for the server in ``bindir`` (``--sharedir``,
    ``--pkglibdir``), or None when no ``pg_config`` of that installation is found."""
    for candidate in (bindir / "pg_config", shutil.which("pg_config")):
        if candidate is None or not Path(candidate).exists():
            continue
        result = subprocess.run(
            [str(candidate), "--bindir", option], capture_output=True, text=True, check=False
        )
        lines = result.stdout.splitlines()
        # Another installation's pg_config (a PATH one for another major version) says nothing
        # about this server.
        if result.returncode == 0 and len(lines) == 2 and Path(lines[0]) == bindir:
            return Path(lines[1])
    return None


def timescaledb_installed(bindir: Path | None = None) -> bool:
    """Whether the TimescaleDB extension is installed for the PostgreSQL server in ``bindir``
    (its control file and its loader library). Debian's layout when ``pg_config`` is absent:
    ``/usr/share/postgresql/N`` and ``/usr/lib/postgresql/N/lib``."""
    bindir = bindir or postgres_bindir()
    sharedir = _pg_config_dir(bindir, "--sharedir") or Path("/usr/share/postgresql") / (
        bindir.parent.name
    )
    libdir = _pg_config_dir(bindir, "--pkglibdir") or bindir.parent / "lib"
    return (sharedir / "extension" / "timescaledb.control").exists() and (
        libdir / "timescaledb.so"
    ).exists()


def mosquitto_binary() -> Path:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )
    if not found:
        raise ServiceStartError(
            "Mosquitto not found: install it (apt-get install mosquitto) or point "
            "QORGAU_MQTT_URL at an existing broker"
        )
    return Path(found)


@dataclass
class LocalPostgres:
    """A PostgreSQL server in ``data_dir`` listening on ``127.0.0.1:port``."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    durable: bool = True
    # Preload TimescaleDB: None preloads it whenever it is installed (``timescaledb_installed``).
    timescaledb: bool | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _user(self) -> pwd.struct_passwd | None:
        return _service_user("postgres")

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        user = self._user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        _chown_tree(self.data_dir, user)
        if not _reachable_by(self.data_dir, user):
            raise ServiceStartError(
                f"{self.data_dir} is not reachable by user {user.pw_name if user else '?'}; "
                "choose a data folder outside a closed home folder"
            )
        cmd = [
            str(postgres_bindir() / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
        ]
        if not self.durable:
            cmd.append("--no-sync")
        result = subprocess.run(
            cmd,
            capture_output=True,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceStartError(f"initdb failed: {result.stderr.decode(errors='replace')}")

    def start(self, timeout_s: float = 30.0) -> None:
        self.init()
        user = self._user()
        socket_dir = self.data_dir / "sockets"
        socket_dir.mkdir(exist_ok=True)
        _chown_tree(socket_dir, user)
        cmd = [
            str(postgres_bindir() / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(socket_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=256MB",
            "-c",
            "max_wal_size=2GB",
        ]
        if self.timescaledb if self.timescaledb is not None else timescaledb_installed():
            cmd += [
                "-c",
                "shared_preload_libraries=timescaledb",
                # Nothing of a local server reports to the network.
                "-c",
                "timescaledb.telemetry_level=off",
            ]
        if not self.durable:
            # Throwaway test servers: skip fsync (a crash of the machine is not a test case;
            # a killed server still recovers from its WAL in the page cache).
            cmd += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        self.process = spawn_logged(cmd, self.data_dir / "server.log", user=user)
        _wait_for_port(self.port, self.process, "PostgreSQL", timeout_s)
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        import psycopg

        from store.connection import ping

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                ping(self.url, connect_timeout_s=2)
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise ServiceStartError("PostgreSQL did not accept connections") from None
                time.sleep(0.1)

    def stop(self, *, fast: bool = True, kill: bool = False) -> None:
        """Stop the server: ``kill`` sends SIGKILL (a crash), else a fast shutdown."""
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        sig = signal.SIGKILL if kill else (signal.SIGINT if fast else signal.SIGTERM)
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if kill:
            # Children survive the postmaster's SIGKILL and still hold shared memory.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            time.sleep(0.2)
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        path = self.data_dir / "server.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class LocalMosquitto:
    """A Mosquitto broker with Qorgau's configuration on ``127.0.0.1:port``."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    password_file: Path | None = None
    acl_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    # BrokerConfig fields to change, e.g. {"max_inflight_messages": 20} (broker behaviour tests).
    config_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> None:
        user = _service_user("mosquitto")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = render_mosquitto_conf(
            BrokerConfig(
                listeners=((self.port, "127.0.0.1"),),
                persistence_dir=self.data_dir,
                password_file=self.password_file,
                acl_file=self.acl_file,
                log_file=self.data_dir / "mosquitto.log",
                run_as_user=user.pw_name if user else None,
                **self.config_overrides,
            )
        )
        conf_path = self.data_dir / "mosquitto.conf"
        conf_path.write_text(conf)
        _chown_tree(self.data_dir, user)
        for extra in (self.password_file, self.acl_file):
            if extra is not None and user is not None:
                os.chown(extra, user.pw_uid, user.pw_gid)
        # Started as root, Mosquitto drops to ``run_as_user`` itself after reading its files.
        self.process = spawn_logged(
            [str(mosquitto_binary()), "-c", str(conf_path)], self.data_dir / "stdout.log"
        )
        _wait_for_port(self.port, self.process, "Mosquitto", timeout_s)

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def reload(self) -> None:
        """Re-read the password and ACL files (SIGHUP)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)

    def log_tail(self, lines: int = 40) -> str:
        path = self.data_dir / "mosquitto.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def scratch_dir(prefix: str) -> Path:
    """A new folder in the system temp dir that service users can reach into."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path
