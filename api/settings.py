"""Settings of ``qorgau api`` (environment variables ``QORGAU_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from application.localisation import DEFAULT_LOCALE, LocaleCode
from store.settings import SampleWindowSettings


class ApiSettings(SampleWindowSettings):
    model_config = SettingsConfigDict(env_prefix="QORGAU_", extra="ignore")

    api_host: str = Field(default="127.0.0.1", description="address to listen on")
    api_port: int = Field(default=8000, ge=0, le=65535, description="port to listen on")
    api_max_points: int = Field(
        default=100_000, ge=1, description="most readings one request returns"
    )
    api_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="largest request body accepted, in bytes (1 MiB); a larger one, declared or "
        "chunked, is answered 413 before it is parsed",
    )
    api_max_validation_errors: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="most field errors one 422 answer lists (the answer says how many there "
        "were): a body of many bad fields cannot make a huge answer",
    )
    norms_profile: str = Field(
        default="default",
        description="norms profile (name shipped with analytics, or a TOML path) for classes, "
        "В, ПР, levels, tariffs, PPE and social guarantees",
    )
    api_history_max_days: int = Field(
        default=92, ge=1, le=400, description="longest date range one history request covers"
    )
    mqtt_url: str = Field(
        default="mqtt://127.0.0.1:1883", description="broker URL (the live alert stream)"
    )
    topic_prefix: str = Field(default="qorgau", description="first topic segment(s)")
    api_alert_stream: bool = Field(
        default=True, description="subscribe to the alert topics for the live stream (SSE)"
    )
    api_sse_keepalive_s: float = Field(
        default=15.0, gt=0, description="comment line sent on an idle alert stream"
    )
    api_live_stream: bool = Field(
        default=True,
        description="subscribe to the readings topics of watched workplaces for the live "
        "dashboard (SSE)",
    )
    api_metrics: bool = Field(
        default=True,
        description="serve Prometheus metrics at /metrics (no token: route counts and "
        "latencies, no data)",
    )
    api_live_exposure_s: float = Field(
        default=10.0, gt=0, description="how often a live stream pushes the running exposure"
    )
    default_locale: LocaleCode = Field(
        default=DEFAULT_LOCALE,
        description="language of the page and of messages for people when neither the token's "
        "choice nor the browser's Accept-Language names kk, ru or en (kk: the state language)",
    )
    map_tiles_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/\s]+/\S*\{z\}\S*\{x\}\S*\{y\}\S*$",
        description="optional background tiles of the dashboard's map, a Web Mercator XYZ URL "
        "template such as https://tiles.example/{z}/{x}/{y}.png (off: the map needs no tile "
        "server and no internet)",
    )
    map_tiles_attribution: str = Field(
        default="", max_length=300, description="attribution shown under the map with tiles"
    )
