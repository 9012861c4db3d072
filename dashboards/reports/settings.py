"""What ``qorgau report`` reads besides the database and norms settings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dashboards.reports.language import Language


class ReportSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QORGAU_", extra="ignore")

    report_language: Language = Field(
        default="en",
        description="language of reports when --lang does not choose one: kk, ru or en",
    )
