"""Settings of the assessment service (environment variables ``QORGAU_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from store.settings import SampleWindowSettings


class AssessmentSettings(SampleWindowSettings):
    model_config = SettingsConfigDict(env_prefix="QORGAU_", extra="ignore")

    norms_profile: str = Field(
        default="default",
        description="norms profile (name shipped with analytics, or a TOML path) the shifts are "
        "assessed with",
    )
    assess_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=50,
        description="how often the service looks for new readings (a running shift is stored "
        "again within this plus the time to assess it)",
    )
    assess_batch_changes: int = Field(
        default=50_000, ge=1, description="change records taken per pass"
    )
    assess_batch_workplaces: int = Field(
        default=200, ge=1, description="workplaces assessed per transaction"
    )
    assess_metrics_port: int = Field(
        default=0, ge=0, le=65535, description="serve /metrics and /health here (0: off)"
    )
    assess_metrics_host: str = Field(default="127.0.0.1", description="address for /metrics")
