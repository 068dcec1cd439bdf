"""Settings shared by the bot and the workers (pydantic-settings, `.env`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.presets import DEFAULT_PRESET, presets_file

DtypeName = Literal["auto", "fp32", "fp16", "bf16"]  # a worker's weights dtype ("auto": see engine.models.resolve_dtype)


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    data_dir: Path = Field(Path("data/runtime"), validation_alias="TASTEMAKER_DATA_DIR")
    model: str = Field(DEFAULT_PRESET, validation_alias="TASTEMAKER_MODEL")
    # The owner's presets file (engine/presets.py); empty: <data_dir>/presets.toml if present.
    presets: Path | None = Field(None, validation_alias="TASTEMAKER_PRESETS")
    device: Literal["auto", "cuda", "cpu"] = Field("auto", validation_alias="TASTEMAKER_DEVICE")
    # Empty: the SQLite queue inside the bot's database. redis://host:6379/0 to scale out.
    queue: str = Field("", validation_alias="TASTEMAKER_QUEUE")
    # Worker tuning: weights dtype on CUDA ("auto": bf16 where supported, else fp16;
    # always fp32 on the CPU) and torch.compile of the UNet (slow first job, faster after).
    dtype: DtypeName = Field("auto", validation_alias="TASTEMAKER_DTYPE")
    compile: bool = Field(False, validation_alias="TASTEMAKER_COMPILE")
    # Worker: the OpenH264 library that encodes video clips (engine/h264.py); empty: the system's libopenh264.
    openh264: str = Field("", validation_alias="TASTEMAKER_OPENH264")

    @field_validator("presets", mode="before")
    @classmethod
    def _blank_presets(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def db_path(self) -> Path:
        return self.data_dir / "tastemaker.db"

    @property
    def presets_path(self) -> Path | None:
        """The presets file in use, or None (PresetFileError when TASTEMAKER_PRESETS names no file)."""
        return presets_file(self.data_dir, self.presets)

    @property
    def queue_url(self) -> str:
        return self.queue or f"sqlite:///{self.db_path.resolve()}"
