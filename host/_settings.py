"""Host layer: settings from environment variables (`PLUGBOX_*`), the defaults of every command.

Contract: `Settings()` reads `PLUGBOX_<FIELD>` (case-insensitive) and validates it; a bad value is
a `pydantic.ValidationError` naming the variable. The CLI's options fall back to the same
variables (`ENV[...]` names them), so `--data-dir` and `PLUGBOX_DATA_DIR` mean one thing; a
command-line option wins over the environment. `docs/operations.md` has the table, and a test
keeps that table and this class in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .sandbox import SandboxPolicy

ENV_PREFIX = "PLUGBOX_"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]


class Settings(BaseSettings):
    """What a deployment configures without a command line."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, case_sensitive=False, extra="ignore", frozen=True
    )

    plugins: Path = Field(Path("plugins"), description="Directory holding one folder per plugin.")
    data_dir: Path = Field(
        Path(".plugbox"), description="Venvs, spec cache, run store, plugin data and logs."
    )
    policy: SandboxPolicy = Field(
        SandboxPolicy.standard, description="Sandbox policy: strict, standard, process-only or off."
    )
    log_level: LogLevel = Field("INFO", description="Level of the host's and plugins' logs.")
    log_format: LogFormat = Field("text", description="`text` for people, `json` for shipping.")
    port: int = Field(8700, ge=0, le=65535, description="`plugbox serve` port on 127.0.0.1.")
    redis_url: str | None = Field(None, description="Redis URL for `plugbox worker`.")
    store_url: str | None = Field(
        None,
        description="Run store URL, `postgresql://...` (default: DATA_DIR/runs.sqlite3).",
    )
    grants: Path | None = Field(
        None, description="The operator's grants file (default: DATA_DIR/grants.toml)."
    )
    api_token: SecretStr | None = Field(
        None,
        min_length=16,
        description="Bearer token `plugbox serve` requires (default: generated, printed once).",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


def env_name(field: str) -> str:
    """The environment variable of a settings field (`data_dir` -> `PLUGBOX_DATA_DIR`)."""
    return ENV_PREFIX + field.upper()


ENV = {name: env_name(name) for name in Settings.model_fields}
