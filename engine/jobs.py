"""What crosses the queue: jobs down, events (progress, results, errors) up.

Everything a worker needs travels inside the job, so a worker on another
machine needs no database and no shared disk. Models are pydantic so that a
remote worker validates what it receives; bytes travel as base64 in JSON.
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator, model_validator

# Input limits, checked by pydantic wherever a job is built or received. The
# engine checks only what needs the image or the model.
MAX_SEED = 2**32 - 1  # --seed 0-4294967295, as in Midjourney; image i of a job uses seed + i
SIZE_MULTIPLE = 64  # the latents of every preset divide evenly
MIN_SIDE = 64
MAX_SIDE = 4096  # an upscale of a 1:4 image at 1024 px is 1408x2816
MAX_PIXELS = 4_500_000  # what a job may draw at once: an upscale x2 of a 1024 px image at any --ar (at most 4.36 MP)
MAX_COUNT = 16
MAX_CANDIDATES = 64
MAX_STYLE_IMAGES = 4
MAX_POOL_STYLES = 64
MAX_PROMPT_IMAGES = 5  # image prompts (links, an attachment) and /blend's images
MAX_IMAGE_WEIGHT = 3.0  # --iw 0-3
MAX_DESCRIBE_WORDS = 256  # style words a /describe ranks
MAX_CLIPS = 4  # clips one video job makes (/admin video clips, --bs)

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Side = Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=SIZE_MULTIPLE)]
Vector = Annotated[list[FiniteFloat], Field(min_length=1)]


class JobKind(StrEnum):
    IMAGINE = "imagine"  # a 2x2 grid from a prompt
    VARIATION = "variation"  # img2img from one image, strong or subtle
    UPSCALE = "upscale"  # one image, x2 (subtle or creative: the strength)
    OUTPAINT = "outpaint"  # a 2x2 grid around one image on a bigger canvas: Zoom Out, Pan, Make Square
    EMBED = "embed"  # OpenCLIP embeddings of images and/or texts
    POOL = "pool"  # one rank-pool prompt in several styles, embedded
    BLEND = "blend"  # a 2x2 grid from 2-5 images' combined embeddings (/blend)
    DESCRIBE = "describe"  # one image -> four prompts (CoCa captions + CLIP-ranked style words)
    VIDEO = "video"  # clips animated from a start frame (Animate, --video), or a clip continued (Extend, Loop)


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
    """imagine, blend, variation and upscale."""

    prompt: str
    negative_prompt: str = ""
    width: Side = 512
    height: Side = 512
    seed: Seed = 0
    count: int = Field(4, ge=1, le=MAX_COUNT)  # images returned
    chaos: int = Field(0, ge=0, le=100)  # how far the images of one grid may differ
    quality: float = Field(1.0, gt=0, le=4, allow_inf_nan=False)  # --q: scales the preset's step count
    tile: bool = False  # seamless tiling (circular padding)
    stylize: int = Field(100, ge=0, le=1000)  # --s: raises guidance a little as in Midjourney
    raw: bool = False  # --style raw: the preset's own guidance whatever --s is
    stop: int = Field(100, ge=10, le=100)  # --stop: % of the denoising run before decoding (100: all of it)
    init_image: bytes | None = None  # PNG: variation / upscale source
    # img2img denoise for variations (above 0 there); upscale: 0 = the preset's upscale_strength
    strength: float = Field(0.0, ge=0, le=1, allow_inf_nan=False)
    # Personalization: c(s) in OpenCLIP image-embedding space, passed to IP-Adapter.
    conditioning: Vector | None = None
    ip_adapter_scale: float = Field(0.0, ge=0, le=4, allow_inf_nan=False)
    # Personalization on a family whose IP-Adapter can't read the taste (FLUX, SD 3.5): the
    # taste's nearest style words, encoded as one more prompt part at this share of its weight.
    taste_words: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=8)
    taste_words_weight: float = Field(0.0, ge=0, le=4, allow_inf_nan=False)
    # --sref URL: style reference images (PNG); the worker embeds them and
    # conditions on their mean embedding (combined with `conditioning` if set).
    style_images: list[bytes] = Field(default_factory=list, max_length=MAX_STYLE_IMAGES)
    # Image prompts (links at the start of a prompt, an attachment, /blend's images):
    # PNGs the worker embeds and folds into the conditioning with weight image_weight (--iw).
    prompt_images: list[bytes] = Field(default_factory=list, max_length=MAX_PROMPT_IMAGES)
    image_weight: float = Field(1.0, ge=0, le=MAX_IMAGE_WEIGHT, allow_inf_nan=False)
    # Best-of-N (--q 2 with a profile): make `candidates` images, keep the
    # `count` with the highest dot(embedding / |embedding|, rerank_direction).
    candidates: int | None = Field(None, le=MAX_CANDIDATES)
    rerank_direction: Vector | None = None
    # Inpainting. Vary (Region): `mask` (PNG, the init image's size; white = redraw).
    # Outpaint: the init image is scaled into `source_box` (left, top, width, height)
    # on a width x height canvas and everything around it is drawn.
    mask: bytes | None = None
    source_box: tuple[int, int, int, int] | None = None

    @field_validator("rerank_direction")
    @classmethod
    def _not_all_zeros(cls, direction: list[float] | None) -> list[float] | None:
        if direction is not None and not any(direction):
            raise ValueError("must not be all zeros")
        return direction

    @model_validator(mode="after")
    def _within_pixel_budget(self) -> Self:
        if self.width * self.height > MAX_PIXELS:
            raise ValueError(f"{self.width}x{self.height} is more than {MAX_PIXELS:,} pixels")
        return self

    @model_validator(mode="after")
    def _candidates_cover_count(self) -> Self:
        if self.candidates is not None and self.candidates < self.count:
            raise ValueError(f"candidates {self.candidates} is fewer than count {self.count}")
        return self

    @model_validator(mode="after")
    def _source_box_inside(self) -> Self:
        if self.source_box is not None:
            left, top, w, h = self.source_box
            if w < 1 or h < 1 or left < 0 or top < 0 or left + w > self.width or top + h > self.height:
                raise ValueError(f"source_box {self.source_box} is not inside the {self.width}x{self.height} canvas")
            if (w, h) == (self.width, self.height):
                raise ValueError("source_box covers the whole canvas: nothing to outpaint")
        return self


class EmbedSpec(Wire):
    images: list[bytes] = Field(default_factory=list)  # PNG/JPEG bytes
    texts: list[str] = Field(default_factory=list)


class DescribeSpec(Wire):
    image: bytes  # PNG
    styles: list[str] = Field(min_length=1, max_length=MAX_DESCRIBE_WORDS)  # ranked by CLIP similarity to the image
    seed: Seed = 0  # the captions are sampled: a new seed, new prompts
    count: int = Field(4, ge=1, le=8)


class PoolSpec(Wire):
    prompt: str
    styles: list[str] = Field(min_length=1, max_length=MAX_POOL_STYLES)  # one image per style: "<prompt>, <style>"
    seed: Seed = 0
    width: Side = 512
    height: Side = 512


class VideoSpec(Wire):
    """Animate (engine/video.py): `clips` clips from one start frame, each with its own seed."""

    prompt: str = ""  # the motion prompt
    negative_prompt: str = ""
    seed: Seed = 0
    clips: int = Field(MAX_CLIPS, ge=1, le=MAX_CLIPS)
    motion: Literal["low", "high"] = "low"
    raw: bool = False  # the model as it is: no motion words added to the prompt
    start_image: bytes | None = None  # PNG; None: the start frame is drawn first from `start`
    start: GenerateSpec | None = None  # a text prompt's start frame: one image, with the member's taste
    end_image: bytes | None = None  # --end: the clip ends on this frame
    loop: bool = False  # the clip ends on its first frame
    previous: bytes | None = None  # Extend: the clip (MP4) to continue from its last frame

    @model_validator(mode="after")
    def _one_start(self) -> Self:
        if (self.start_image is None) == (self.start is None) and self.previous is None:
            raise ValueError("a video needs either start_image or start")
        if self.loop and self.end_image is not None:
            raise ValueError("loop ends on the start frame: no end_image with it")
        return self


class Job(Wire):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: JobKind
    user_id: int = 0
    guild_id: int | None = None
    preset: str
    generate: GenerateSpec | None = None
    embed: EmbedSpec | None = None
    pool: PoolSpec | None = None
    describe: DescribeSpec | None = None
    video: VideoSpec | None = None
    max_tries: int = 3
    created_at: float = Field(default_factory=time.time)
    # The server's NSFW threshold where its policy blocks: an input image (init,
    # style, embed) scoring at or over it fails the job. None: no input check.
    nsfw_threshold: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    # The upload limit (bytes) of the Discord channel the result goes to: the worker
    # encodes the posted grid to fit it (engine/posting.py). None: nothing is posted.
    upload_limit: int | None = Field(None, ge=1)


class ImageOut(Wire):
    png: bytes
    embedding: list[float]  # OpenCLIP image embedding, not normalized
    seed: int
    width: int
    height: int
    label: str = ""  # the style, for pool images
    score: float | None = None  # rerank score, when reranked
    nsfw: float | None = None  # open_nsfw score 0-1 (engine/safety.py); None: not scored, treated as flagged


class PostImage(Wire):
    """What Discord shows of a result (engine/posting.py): a JPEG grid, or a single image."""

    data: bytes
    format: Literal["png", "jpeg"]
    withheld: list[int] = Field(default_factory=list)  # 1-based: tiles drawn grey (the job's nsfw_threshold)
    limit: int  # the upload limit it fits

    @property
    def filename(self) -> str:
        return f"post.{'png' if self.format == 'png' else 'jpg'}"


class ClipOut(Wire):
    """One clip of a video job: the MP4 kept for the web and Extend, and its first frame."""

    mp4: bytes  # H.264 MP4 (engine/mp4.py)
    poster: bytes  # its first frame, PNG: what galleries show and likes and taste read
    embedding: list[float]  # OpenCLIP embedding of the poster
    seed: int
    width: int
    height: int
    frames: int
    fps: float
    nsfw: float | None = None  # the highest open_nsfw score of its sampled frames; None: not scored (flagged)


class JobResult(Wire):
    images: list[ImageOut] = Field(default_factory=list)
    post: PostImage | None = None  # the grid or image Discord shows, made by the worker
    clips: list[ClipOut] = Field(default_factory=list)  # video jobs
    post_clips: list[bytes] = Field(default_factory=list)  # the MP4s Discord gets, fitted to the upload limit; b"": withheld
    image_embeddings: list[list[float]] = Field(default_factory=list)  # embed jobs
    text_embeddings: list[list[float]] = Field(default_factory=list)  # embed jobs
    prompts: list[str] = Field(default_factory=list)  # describe jobs
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
