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
    unlock_votes: int = Field(20, ge=1, le=1000, validation_alias="TASTEMAKER_UNLOCK_VOTES")
    # Build the /rank pool in the background on first start (through the queue,
    # sharing the workers fairly with members' jobs).
    auto_pool: bool = Field(True, validation_alias="TASTEMAKER_AUTO_POOL")
    log_level: str = Field("INFO", validation_alias="TASTEMAKER_LOG_LEVEL")
    # Days the images of deleted jobs, and of members who left a server, are kept before
    # their files go (/admin retention sets it per server).
    retention_days: int = Field(30, ge=0, le=3650, validation_alias="TASTEMAKER_RETENTION_DAYS")
    # Discord's Server Members intent (privileged: turn it on in the developer portal too):
    # the bot then sees members leave, and their images follow the retention.
    members_intent: bool = Field(False, validation_alias="TASTEMAKER_MEMBERS_INTENT")
    # The web companion (bot/web): rank, explore and like in a browser. Port 0 turns it off.
    web_port: int = Field(8080, ge=0, le=65535, validation_alias="TASTEMAKER_WEB_PORT")
    web_host: str = Field("127.0.0.1", validation_alias="TASTEMAKER_WEB_HOST")
    # The public address for links, behind a reverse proxy (https://taste.example.org);
    # empty: http://HOST:PORT.
    web_url: str = Field("", validation_alias="TASTEMAKER_WEB_URL")
    # Signs /web login links. A secret: no default; when unset, one is generated at
    # first start and kept in the database's meta table.
    web_secret: SecretStr | None = Field(None, validation_alias="TASTEMAKER_WEB_SECRET")
    # Optional "Log in with Discord" (OAuth2, scopes identify + guilds).
    discord_client_id: str = Field("", validation_alias="TASTEMAKER_DISCORD_CLIENT_ID")
    discord_client_secret: SecretStr | None = Field(None, validation_alias="TASTEMAKER_DISCORD_CLIENT_SECRET")

    @property
    def web_base_url(self) -> str:
        if self.web_url:
            return self.web_url.rstrip("/")
        host = "127.0.0.1" if self.web_host in ("0.0.0.0", "::", "") else self.web_host
        return f"http://{host}:{self.web_port}"

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: str) -> str:
        value = value.strip().lower()
        if value != "inline" and not (value.isdigit() and int(value) <= 16):
            raise ValueError("TASTEMAKER_WORKERS is a number of local workers (0-16) or 'inline'")
        return value

    @field_validator("web_secret", "discord_client_secret", mode="before")
    @classmethod
    def _blank_secret(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("dev_guild", mode="before")
    @classmethod
    def _blank_guild(cls, value: object) -> object:
        return None if value == "" else value
