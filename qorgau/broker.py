"""Qorgau's Mosquitto configuration: one renderer for the local broker, the tests and the
shipped ``deploy/mosquitto/mosquitto.conf`` (a test checks that the file matches
``render_mosquitto_conf(DEPLOY_BROKER)``; regenerate it with ``python -m qorgau.broker``).

Why these settings (defaults in brackets are Mosquitto's own), as measured on Mosquitto 2.0.11
(tests/ingest/test_broker_semantics.py):
- ``persistence true`` with a short ``autosave_interval``: queued QoS 1 messages of a
  disconnected ingest worker survive a broker restart (saved on SIGTERM). A broker *crash* can
  still lose what arrived since the last autosave, which the edge outbox cannot see (it was
  acknowledged): documented risk.
- ``max_queued_messages`` [1000] is what Mosquitto keeps per offline or slow client beyond the
  in-flight window; past it QoS 1 messages are dropped silently (the publisher still gets its
  PUBACK). Sized for hours of ingest outage (see ``BrokerConfig.max_queued_messages``). The queue
  lives in the broker's memory: size the host for it. 0 (no limit) was measured too and is not
  used: on Mosquitto 2.0.11 an edge agent then no longer sees the 0x87 refusal of a publish the
  ACL denies (tests/edge/test_identity.py fails), and it made no difference to ingest.
- ``max_inflight_messages`` [20]: an MQTT 5 client that announces a Receive Maximum gets exactly
  that window, larger or smaller than this setting; the setting applies to clients that announce
  none (MQTT 3.1.1) and is also the Receive Maximum the broker announces to publishers in
  CONNACK, so 20 would cap every edge agent at 20 unacknowledged publishes and throttle
  acknowledgements sent in batches. 1000: ingest bounds its own window
  (QORGAU_INGEST_RECEIVE_MAXIMUM) and acknowledges only after each commit, edge agents keep
  their own smaller window (QORGAU_EDGE_MAX_INFLIGHT).
- Measured with ``bench/ingest.py`` at 8 readings per message on the shared 2-core build machine
  (docs/ingest.md, "Small messages"), one run each: with ``max_inflight_messages`` /
  ``max_queued_messages`` at 1000 / 0 against the former 0 / 2,000,000 the bare subscriber took
  12,788 against 9,703 messages/s and ingest with 2 workers 2,979 against 2,764 (there the
  database, not the broker, is the limit); with the shipped 1000 / 2,000,000, in a quieter run,
  15,672 and 3,659.
- ``persistent_client_expiration``: a persistent session that never returns is dropped after
  this long instead of holding its queue forever. Its queued messages are lost then, so it is
  longer than ingest's own session expiry (QORGAU_INGEST_SESSION_EXPIRY_S, 7 days).
- Shared subscriptions (``$share/qorgau-ingest/...``): Mosquitto keeps sending a member its round-
  robin share while it is disconnected (queued for its session), and a member's unacknowledged
  messages wait for that same client id: they are not handed to another member. Nothing is lost
  while the worker comes back with its id; a worker retired for good must drain its session
  first (``qorgau ingest --retire``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    listeners: tuple[tuple[int, str], ...] = ((1883, "0.0.0.0"),)
    persistence_dir: Path | str = "/mosquitto/data"
    password_file: Path | str | None = None
    acl_file: Path | str | None = None
    log_file: Path | str | None = None  # None: stdout (containers)
    run_as_user: str | None = None
    # 100 devices each sending one batch every 10 s queue 36,000 messages an hour: two million
    # cover more than two days of ingest outage (about 2 GB at 1 KB a message). 10,000 devices
    # at one message a second fill it in 200 s: size it (and the host) for the fleet.
    max_queued_messages: int = 2_000_000
    max_inflight_messages: int = 1000  # MQTT 3.1.1 clients and publishers; MQTT 5 brings its own
    autosave_interval_s: int = 30
    persistent_client_expiration: str = "14d"
    max_packet_size: int = 1_048_576  # ingest quarantines anything over its own, lower limit


# What deploy/mosquitto/mosquitto.conf is rendered from: the broker container of the compose
# deployment (data volume at /mosquitto/data, logs to stdout, listener on all interfaces).
# Devices and services authenticate (per-device users, `qorgau devices`) and are confined by
# the ACL; both files live beside this one in the container (deploy/mosquitto/acl.example).
DEPLOY_BROKER = BrokerConfig(
    password_file="/mosquitto/config/passwd", acl_file="/mosquitto/config/acl"
)
DEPLOY_CONF_PATH = Path("deploy/mosquitto/mosquitto.conf")


def render_mosquitto_conf(config: BrokerConfig) -> str:
    lines = [
        "# Qorgau broker configuration (rendered by qorgau.broker; see its docstring for why)",
        "per_listener_settings false",
    ]
    for port, address in config.listeners:
        lines.append(f"listener {port} {address}")
    if config.password_file is not None:
        lines += ["allow_anonymous false", f"password_file {config.password_file}"]
    else:
        lines.append("allow_anonymous true")
    if config.acl_file is not None:
        lines.append(f"acl_file {config.acl_file}")
    persistence_dir = str(config.persistence_dir).rstrip("/") + "/"
    lines += [
        "persistence true",
        f"persistence_location {persistence_dir}",
        f"autosave_interval {config.autosave_interval_s}",
        f"persistent_client_expiration {config.persistent_client_expiration}",
        f"max_queued_messages {config.max_queued_messages}",
        "max_queued_bytes 0",
        f"max_inflight_messages {config.max_inflight_messages}",
        f"max_packet_size {config.max_packet_size}",
        "set_tcp_nodelay true",
    ]
    if config.log_file is not None:
        lines.append(f"log_dest file {config.log_file}")
    else:
        lines.append("log_dest stdout")
    lines += ["log_type error", "log_type warning", "log_type notice", "connection_messages true"]
    if config.run_as_user is not None:
        lines.append(f"user {config.run_as_user}")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Write the deployment's configuration file (run from the repository root)."""
    DEPLOY_CONF_PATH.parent.mkdir(parents=True, exist_ok=True)
    DEPLOY_CONF_PATH.write_text(render_mosquitto_conf(DEPLOY_BROKER))
    print(f"wrote {DEPLOY_CONF_PATH}")


if __name__ == "__main__":
    main()
