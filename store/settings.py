"""Database settings shared by every service that talks to PostgreSQL."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from store.policies import StoragePolicies

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QORGAU_", extra="ignore")

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        description="libpq URL of the PostgreSQL/TimescaleDB server",
    )
    database_schema: str = Field(
        default="qorgau", description="schema that holds Qorgau's tables (created if missing)"
    )
    db_timescale: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="use TimescaleDB when the extension is available (auto), require it (on) "
        "or never use it (off)",
    )
    db_chunk_interval: str = Field(
        default="1 day", description="TimescaleDB chunk interval of the readings hypertable"
    )
    db_pool_max: int = Field(default=10, ge=1, description="largest connection pool size")
    db_compress_after: str = Field(
        default="7 days",
        description="TimescaleDB: compress readings chunks older than this (empty: never)",
    )
    db_retention: str = Field(
        default="",
        description="TimescaleDB: drop raw readings older than this (empty: keep forever)",
    )
    db_rollup_retention: str = Field(
        default="",
        description="TimescaleDB: drop 1-minute rollups older than this (empty: keep forever; "
        "hourly rollups are always kept)",
    )
    db_rollup_refresh_lookback: str = Field(
        default="",
        description="TimescaleDB: how far back rollup refreshes look for late data (empty: "
        "unlimited); must be shorter than any retention",
    )

    def storage_policies(self) -> StoragePolicies:
        return StoragePolicies.from_text(
            compress_after=self.db_compress_after,
            retention=self.db_retention,
            rollup_retention=self.db_rollup_retention,
            refresh_lookback=self.db_rollup_refresh_lookback,
        )

    @field_validator("database_schema")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(
                "database schema must be a lower-case SQL identifier (letters, digits, '_')"
            )
        return value
