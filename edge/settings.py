"""Settings of ``qorgau edge`` and ``qorgau sim`` (environment variables ``QORGAU_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.outbox import DEFAULT_MAX_BYTES


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QORGAU_", extra="ignore")

    mqtt_url: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="broker URL (mqtts:// for TLS; user:password@ for credentials); several, "
        "comma-separated, for the nodes of a broker cluster: tried in turn when one is away",
    )
    mqtt_username: str | None = Field(
        default=None,
        description="broker user when the URL names none (default: the device code, if a "
        "password is given)",
    )
    mqtt_password_file: Path | None = Field(
        default=None,
        description="file holding the broker password, out of the URL and environment; "
        "'{device}' in the path stands for the device code",
    )
    mqtt_ca_file: Path | None = Field(
        default=None,
        description="CA certificate(s) to verify the broker with mqtts:// "
        "(default: the system's trust store)",
    )
    topic_prefix: str = Field(default="qorgau", description="first topic segment(s)")
    enterprise: str = Field(default="demo", description="enterprise code in the topic")
    edge_batch_interval_s: float = Field(
        default=1.0, gt=0, description="how often samples are packed into a message"
    )
    edge_max_values_per_message: int = Field(
        default=600,
        ge=1,
        le=3600,
        description="values per channel in one message; a longer backlog is split",
    )
    edge_outbox_dir: Path = Field(
        default=Path(".qorgau/edge"), description="folder of the on-disk outbox"
    )
    edge_outbox_max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        ge=64 * 1024,
        description="disk cap of one device's outbox; past it the oldest messages are dropped "
        "(and counted)",
    )
    edge_outbox_sync: Literal["full", "normal"] = Field(
        default="full",
        description="full: every message is on disk before it is sent (survives power loss); "
        "normal: survives a killed process only, writes faster",
    )
    edge_max_inflight: int = Field(
        default=100,
        ge=1,
        le=65535,
        description="messages published but not yet acknowledged (also capped by the "
        "broker's Receive Maximum)",
    )
    edge_keepalive_s: int = Field(default=30, ge=5, description="MQTT keepalive")
    edge_mqtt_protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT version: 3.1.1 for a broker without MQTT 5 (RabbitMQ before 3.13); "
        "the same outbox and resending, without the broker's Receive Maximum and PUBACK reasons",
    )
    edge_reconnect_max_s: float = Field(
        default=30.0, gt=0, description="longest wait between reconnect attempts"
    )
    edge_status_interval_s: float = Field(
        default=60.0, gt=0, description="how often the retained device status is refreshed"
    )
    edge_flush_timeout_s: float = Field(
        default=10.0, ge=0, description="on shutdown, how long to keep publishing the backlog"
    )
