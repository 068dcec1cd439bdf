"""What crosses the queue: jobs down, events (progress, results, errors) up.

Everything a worker needs travels inside the job, so a worker on another
machine needs no database and no shared disk. Models are pydantic so that a
remote worker validates what it receives; bytes travel as base64 in JSON.
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class JobKind(StrEnum):
    IMAGINE = "imagine"  # a 2x2 grid from a prompt
    VARIATION = "variation"  # img2img from one image, strong or subtle
    UPSCALE = "upscale"  # one image, x2
    EMBED = "embed"  # OpenCLIP embeddings of images and/or texts
    POOL = "pool"  # one rank-pool prompt in several styles, embedded


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class EventType(StrEnum):
    STARTED = "started"  # a worker claimed the job
    PROGRESS = "progress"  # percent and maybe a preview JPEG
    RETRYING = "retrying"  # a try failed or its lease expired; queued again
    DONE = "done"  # carries the result
    FAILED = "failed"  # carries a readable error
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (EventType.DONE, EventType.FAILED, EventType.CANCELLED)


class Wire(BaseModel):
    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64", extra="forbid")

    def to_json(self) -> str:
        return self.model_dump_json(exclude_defaults=True)

    @classmethod
    def from_json(cls, data: str | bytes):
        return cls.model_validate_json(data)


class GenerateSpec(Wire):
    """imagine, variation and upscale."""

    prompt: str
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    seed: int = 0
    count: int = 4  # images returned
    chaos: int = 0  # 0-100: how far the images of one grid may differ
    quality: float = 1.0  # --q: scales the preset's step count
    tile: bool = False  # seamless tiling (circular padding)
    stylize: int = 100  # --s: 0-1000, raises guidance a little as in Midjourney
    init_image: bytes | None = None  # PNG: variation / upscale source
    strength: float = 0.0  # img2img denoise for variations; upscale: 0 = the preset's upscale_strength
    # Personalization: c(s) in OpenCLIP image-embedding space, passed to IP-Adapter.
    conditioning: list[float] | None = None
    ip_adapter_scale: float = 0.0
    # --sref URL: style reference images (PNG); the worker embeds them and
    # conditions on their mean embedding (combined with `conditioning` if set).
    style_images: list[bytes] = Field(default_factory=list)
    # Best-of-N (--q 2 with a profile): make `candidates` images, keep the
    # `count` with the highest dot(embedding / |embedding|, rerank_direction).
    candidates: int | None = None
    rerank_direction: list[float] | None = None


class EmbedSpec(Wire):
    images: list[bytes] = Field(default_factory=list)  # PNG/JPEG bytes
    texts: list[str] = Field(default_factory=list)


class PoolSpec(Wire):
    prompt: str
    styles: list[str]  # one image per style: "<prompt>, <style>"
    seed: int = 0
    width: int = 512
    height: int = 512


class Job(Wire):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: JobKind
    user_id: int = 0
    guild_id: int | None = None
    preset: str
    generate: GenerateSpec | None = None
    embed: EmbedSpec | None = None
    pool: PoolSpec | None = None
    max_tries: int = 3
    created_at: float = Field(default_factory=time.time)


class ImageOut(Wire):
    png: bytes
    embedding: list[float]  # OpenCLIP image embedding, not normalized
    seed: int
    width: int
    height: int
    label: str = ""  # the style, for pool images
    score: float | None = None  # rerank score, when reranked


class JobResult(Wire):
    images: list[ImageOut] = Field(default_factory=list)
    image_embeddings: list[list[float]] = Field(default_factory=list)  # embed jobs
    text_embeddings: list[list[float]] = Field(default_factory=list)  # embed jobs
    timings: dict[str, float] = Field(default_factory=dict)  # seconds: "gpu" is what /info counts
    worker: str = ""


class JobEvent(Wire):
    job_id: str
    type: EventType
    cursor: str = ""  # backend position of this event; hand it back to read_events
    at: float = Field(default_factory=time.time)
    percent: float | None = None
    preview: bytes | None = None  # small JPEG
    result: JobResult | None = None
    error: str | None = None
    worker: str | None = None
    try_number: int | None = None


class JobError(Exception):
    """A job that cannot succeed as asked, with a message fit for the member.
    retryable=False fails it at once instead of trying again."""

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class JobCancelled(Exception):
    """The job was cancelled while running; the queue already knows."""
