"""A throwaway RabbitMQ cluster on loopback, from Debian's ``rabbitmq-server`` package.

The tests and ``bench/cluster.py`` use it as ``qorgau.localservices`` gives them PostgreSQL
and Mosquitto: every node is a separate Erlang VM with its own node name, AMQP, MQTT and
distribution ports, data folder and log folder, all nodes share one Erlang cookie, and the
cluster has its own ``epmd`` port, so it never meets the system's RabbitMQ service (or another
test run's cluster) on the same machine. Nodes 2..n join node 1 with ``rabbitmqctl
join_cluster``. The MQTT plugin is enabled on every node; it publishes to ``amq.topic``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from qorgau.localservices import (
    ServiceStartError,
    _chown_tree,
    _service_user,
    _wait_for_port,
    free_port,
    spawn_logged,
)

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


def rabbitmq_installed() -> bool:
    """Whether Debian's ``rabbitmq-server`` package (server and ``rabbitmqctl``) is here."""
    return (RABBITMQ_BIN / "rabbitmq-server").exists() and (RABBITMQ_BIN / "rabbitmqctl").exists()


@dataclass
class RabbitNode:
    """One node of a :class:`LocalRabbitCluster`."""

    name: str  # Erlang node name, e.g. qorgau-1a2b-1@localhost
    folder: Path
    amqp_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def mqtt_url(self) -> str:
        # The MQTT plugin's default user is guest, which RabbitMQ admits from loopback only.
        return f"mqtt://guest:guest@127.0.0.1:{self.mqtt_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class LocalRabbitCluster:
    """``size`` RabbitMQ nodes in ``folder`` forming one cluster on 127.0.0.1."""

    folder: Path
    size: int = 3
    epmd_port: int = field(default_factory=free_port)
    nodes: list[RabbitNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.nodes:
            tag = secrets.token_hex(3)
            self.nodes = [
                RabbitNode(f"qorgau-{tag}-{i}@localhost", self.folder / f"node{i}")
                for i in range(1, self.size + 1)
            ]

    @property
    def amqp_urls(self) -> list[str]:
        return [node.amqp_url for node in self.nodes]

    @property
    def mqtt_urls(self) -> list[str]:
        return [node.mqtt_url for node in self.nodes]

    # ------------------------------------------------------------------ processes

    def _env(self, node: RabbitNode) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(self.folder),  # .erlang.cookie, shared by the nodes and rabbitmqctl
            ERL_EPMD_PORT=str(self.epmd_port),
            RABBITMQ_NODENAME=node.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(node.amqp_port),
            RABBITMQ_DIST_PORT=str(node.dist_port),
            RABBITMQ_CONFIG_FILE=str(node.folder / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(node.folder / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(node.folder / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(node.folder / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(node.folder / "mnesia"),
            RABBITMQ_LOG_BASE=str(node.folder / "log"),
            RABBITMQ_PID_FILE=str(node.folder / "rabbitmq.pid"),
            RABBITMQ_PLUGINS_EXPAND_DIR=str(node.folder / "plugins-expand"),
            RABBITMQ_FEATURE_FLAGS_FILE=str(node.folder / "feature_flags"),
            # The machine is shared: one scheduler thread per core, no busy waiting.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none",
        )
        return env

    def _prepare(self, node: RabbitNode) -> None:
        for sub in ("mnesia", "log", "plugins-expand"):
            (node.folder / sub).mkdir(parents=True, exist_ok=True)
        (node.folder / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    f"listeners.tcp.1 = 127.0.0.1:{node.amqp_port}",
                    f"mqtt.listeners.tcp.1 = 127.0.0.1:{node.mqtt_port}",
                    "mqtt.allow_anonymous = false",
                    "mqtt.vhost = /",
                    "mqtt.exchange = amq.topic",
                    "log.console = false",
                    "log.file.level = warning",
                    "disk_free_limit.absolute = 50MB",
                    # Several nodes share one machine's memory.
                    "vm_memory_high_watermark.relative = 0.2",
                    "",
                ]
            )
        )
        (node.folder / "advanced.config").write_text("[].\n")
        (node.folder / "rabbitmq-env.conf").write_text("")
        (node.folder / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")

    def start(self, timeout_s: float = 120.0) -> None:
        """Start every node, then join nodes 2..n to node 1; returns once the cluster has
        ``size`` running nodes."""
        if not rabbitmq_installed():
            raise ServiceStartError(
                "RabbitMQ not found: install it (apt-get install rabbitmq-server) or point "
                "QORGAU_AMQP_URL at an existing cluster"
            )
        user = _service_user("rabbitmq")
        self.folder.mkdir(parents=True, exist_ok=True)
        cookie = self.folder / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        for node in self.nodes:
            self._prepare(node)
        _chown_tree(self.folder, user)
        cookie.chmod(0o400)
        for node in self.nodes:
            self.start_node(node, timeout_s=timeout_s, wait=False)
        for node in self.nodes:
            self._wait_booted(node, timeout_s)
        first = self.nodes[0]
        # One join at a time: two nodes joining at once race in mnesia's schema merge (3.10
        # then fails start_app with {mnesia_app, start}).
        for node in self.nodes[1:]:
            self._join(node, first)
        self._wait_members(timeout_s)

    def start_node(self, node: RabbitNode, *, timeout_s: float = 120.0, wait: bool = True) -> None:
        node.process = spawn_logged(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            node.folder / "stdout.log",
            user=_service_user("rabbitmq"),
            env=self._env(node),
            cwd=self.folder,
        )
        if wait:
            self._wait_booted(node, timeout_s)

    def _wait_booted(self, node: RabbitNode, timeout_s: float) -> None:
        assert node.process is not None
        _wait_for_port(node.amqp_port, node.process, f"RabbitMQ node {node.name}", timeout_s)
        _wait_for_port(node.mqtt_port, node.process, f"RabbitMQ MQTT of {node.name}", timeout_s)

    def _join(self, node: RabbitNode, first: RabbitNode, attempts: int = 3) -> None:
        for attempt in range(1, attempts + 1):
            self.ctl(node, "stop_app")
            try:
                self.ctl(node, "join_cluster", first.name)
                self.ctl(node, "start_app")
                break
            except ServiceStartError:
                if attempt == attempts:
                    raise
                # A half-made join: forget it and try again from a clean node.
                with contextlib.suppress(ServiceStartError):
                    self.ctl(node, "stop_app")
                self.ctl(node, "force_reset")
                time.sleep(1.0)
        _wait_for_port(node.amqp_port, node.process, f"RabbitMQ node {node.name}", 60)  # type: ignore[arg-type]
        _wait_for_port(node.mqtt_port, node.process, f"RabbitMQ MQTT of {node.name}", 60)  # type: ignore[arg-type]

    def _wait_members(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            running = self.running_nodes()
            if len(running) == len(self.nodes):
                return
            if time.monotonic() > deadline:
                raise ServiceStartError(
                    f"RabbitMQ cluster has {len(running)} of {len(self.nodes)} nodes running"
                )
            time.sleep(0.5)

    def ctl(self, node: RabbitNode, *args: str, timeout_s: float = 60.0) -> str:
        """Run ``rabbitmqctl`` against ``node``; its standard output."""
        user = _service_user("rabbitmq")
        result = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", node.name, "-q", *args],
            cwd=self.folder,
            env=self._env(node),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceStartError(
                f"rabbitmqctl {' '.join(args)} on {node.name} failed: "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result.stdout

    def any_running(self) -> RabbitNode:
        for node in self.nodes:
            if node.running:
                return node
        raise ServiceStartError("no RabbitMQ node of the cluster is running")

    def running_nodes(self) -> list[str]:
        status = json.loads(
            self.ctl(self.any_running(), "cluster_status", "--formatter", "json") or "{}"
        )
        return list(status.get("running_nodes", []))

    def queue_leader(self, queue: str, vhost: str = "/") -> RabbitNode | None:
        """The node that leads quorum queue ``queue`` now, or None if it has none."""
        out = self.ctl(
            self.any_running(), "list_queues", "-p", vhost, "name", "leader", "--formatter", "json"
        )
        for row in json.loads(out or "[]"):
            if row.get("name") == queue:
                return next((n for n in self.nodes if n.name == row.get("leader")), None)
        return None

    def kill(self, node: RabbitNode) -> None:
        """SIGKILL the node's VM and everything it started: a crash, not a shutdown."""
        if node.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.process.wait(timeout=10)
        node.process = None

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGTERM)
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill(node)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)  # erl_child_setup and friends
            node.process = None
        # The cluster's own epmd daemonized itself; ask it to go.
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [epmd, "-port", str(self.epmd_port), "-kill"],
                capture_output=True,
                timeout=10,
                check=False,
            )

    def log_tail(self, node: RabbitNode, lines: int = 40) -> str:
        logs = sorted((node.folder / "log").glob("*.log"))
        text = "\n".join(p.read_text(errors="replace") for p in logs)
        return "\n".join(text.splitlines()[-lines:])
