"""Bot settings (pydantic-settings, read from the environment and `.env`)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from engine.config import EngineSettings

TOKEN_HELP = (
    "DISCORD_TOKEN is not set: create an application at https://discord.com/developers/applications, "
    "copy its Bot token into .env as DISCORD_TOKEN=... (see README, 'Create the Discord application')."
)


class Settings(EngineSettings):
    discord_token: SecretStr = Field(validation_alias="DISCORD_TOKEN")  # a secret: no default
    # "1" (default) or N local worker processes, "inline" (a thread in the bot, CPU trials
    # and tests), or "0" (external workers only, e.g. behind Redis).
    workers: str = Field("1", validation_alias="TASTEMAKER_WORKERS")
    dev_guild: int | None = Field(None, validation_alias="TASTEMAKER_DEV_GUILD")
    max_jobs_per_user: int = Field(3, ge=1, le=100, validation_alias="TASTEMAKER_MAX_JOBS_PER_USER")
    unlock_votes: int = Field(40, ge=1, le=1000, validation_alias="TASTEMAKER_UNLOCK_VOTES")
    # Build the /rank pool in the background on first start (through the queue,
    # sharing the workers fairly with members' jobs).
    auto_pool: bool = Field(True, validation_alias="TASTEMAKER_AUTO_POOL")
    log_level: str = Field("INFO", validation_alias="TASTEMAKER_LOG_LEVEL")

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: str) -> str:
        value = value.strip().lower()
        if value != "inline" and not (value.isdigit() and int(value) <= 16):
            raise ValueError("TASTEMAKER_WORKERS is a number of local workers (0-16) or 'inline'")
        return value

    @field_validator("dev_guild", mode="before")
    @classmethod
    def _blank_guild(cls, value: object) -> object:
        return None if value == "" else value
