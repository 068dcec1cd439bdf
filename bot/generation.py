"""From a member's request to a queued job, and its first message.

Every check happens before anything is queued: bad input gets an ephemeral
UserError/ParamError and nothing is stored.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from bot import fetch, render
from bot.errors import PLACEHOLDER, UserError
from bot.ids import role_ids
from bot.outbox import Target
from engine import canvas, params, rankpool, safety
from engine.db import jobs as db_jobs
from engine.db import members, pending, transaction
from engine.db import taste as db_taste
from engine.images import ImageDecodeError, decode_image
from engine.jobs import (
    MAX_DESCRIBE_WORDS,
    MAX_PIXELS,
    MAX_PROMPT_IMAGES,
    MAX_SEED,
    MAX_SIDE,
    DescribeSpec,
    GenerateSpec,
    Job,
    JobKind,
    JobState,
    VideoSpec,
)
from engine.presets import PRESETS, Preset, UnknownPresetError, get_preset

if TYPE_CHECKING:
    from bot.app import Tastemaker

log = logging.getLogger("bot.generation")

STRENGTHS = {"strong": 0.75, "subtle": 0.4}  # img2img denoise for Vary (Strong) / (Subtle)
REGION_STRENGTH = 0.9  # Vary (Region): the region nearly from noise, keeping a hint of its colours
# Upscale (Subtle) is the preset's own upscale_strength; Creative doubles it (at most 0.75), so the
# prompt and the taste redraw more of the picture while it is enlarged.
CREATIVE_UPSCALE, MAX_CREATIVE_STRENGTH = 2.0, 0.75


@dataclass
class Prepared:
    job: Job
    prompt: str  # shown in the message
    info: dict[str, Any] = field(default_factory=dict)  # stored as jobs.request
    parent_image_id: int | None = None
    kind: str | None = None  # the bot's name for it when not the queue job's kind (e.g. "moodboard")
    inputs: list[bytes] = field(default_factory=list)  # the member's uploads (PNG), kept for 🔄 (save_inputs)
    extra_room: int = 0  # jobs past the member's limit it may go: part of a confirmed batch (batch_room)
    counted: int | None = None  # what it counts against the daily quota when not its images (a video's clips)

    @property
    def images(self) -> int:
        """What it counts against the daily quota: the images it returns (a grid 4, an upscale 1)."""
        if self.counted is not None:
            return self.counted
        return self.job.generate.count if self.job.generate else 0


async def prepare_imagine(
    bot: Tastemaker, user_id: int, guild_id: int | None, text: str, *, reroll: bool = False,
    images: Sequence[bytes] = (),
) -> Prepared:
    """One job of a prompt (braces already expanded: plan_imagine); its --repeat is dropped,
    so the job's own prompt (and its 🔄) makes one grid."""
    db = bot.db
    # 1. Expand the member's options and suffix, then parse (ParamError on bad input).
    prefs = await members.get_settings(db, user_id)
    request = (await parse_prompt(bot, user_id, guild_id, text)).with_(repeat=1)
    # 2. Member defaults: --s from /settings, --p when personalization is on (not with --style raw).
    stylize = request.stylize if request.stylize is not None else prefs.stylize
    if request.personalize is None and prefs.personalize and not request.raw:
        request = request.with_(personalize=(params.CodeWeight(code=None, weight=1.0),))
    # 3. A reroll keeps everything but the seed.
    seed = request.seed if request.seed is not None and not reroll else secrets.randbelow(MAX_SEED + 1)
    request = request.with_(seed=None if reroll else request.seed)
    preset = await choose_preset(bot, guild_id, request.preset)
    if request.tile and not preset.can_tile:
        raise UserError(f"`--tile` needs a UNet model, and `{preset.name}` ({preset.kind}) is a transformer: "
                        "it can't draw seamless tiles. Pick another model with `--v`.")
    width, height = params.dimensions(request.aspect, preset.base_size)
    # 4. Personalization: codes and this server's house taste -> a conditioning vector and
    #    adapter scale. A bare --p shows the codes of the default mix it stood for, as in Midjourney.
    taste = await personalization(bot, user_id, request, stylize, preset.name, guild_id=guild_id)
    if taste.request is not None:
        request = taste.request
    # 5. Image prompts: `images` (an attachment, re-encoded) and the links before the text
    #    (refused before fetching on a model that can't read them).
    if (images or request.image_links) and not preset.reads_images:
        raise UserError(cannot_read_images(preset.name))
    prompt_images = [*images, *await fetch_links(request.image_links)]
    if request.video:  # --video: the image (or, without one, an image drawn first) is animated
        return await prepare_video_prompt(bot, user_id, guild_id, request, prompt_images, preset, taste, stylize, seed,
                                          inputs=list(images))
    image_fields = image_prompt_fields(request, prompt_images, preset.name, taste.spec_fields)
    spec = GenerateSpec(
        prompt=request.text,
        negative_prompt=", ".join(request.negative),
        width=width,
        height=height,
        seed=seed,
        chaos=request.chaos,
        quality=request.quality,
        tile=request.tile,
        stylize=stylize,
        raw=request.raw,
        stop=request.stop,
        **{**taste.spec_fields, **image_fields},
    )
    job = Job(kind=JobKind.IMAGINE, user_id=user_id, guild_id=guild_id, preset=preset.name, generate=spec)
    info = {"text": request.canonical(), "seed": seed, "stylize": stylize, "codes": taste.codes, "sref": request.sref}
    if taste.note:  # --p and --sref were not applied
        info["sref"] = None
    info.update(taste.info())
    if images:
        info["inputs"] = len(images)
    return Prepared(job=job, prompt=request.canonical(), info=info, inputs=list(images))


# -- Animate: video jobs ---------------------------------------------------------------

MOTION_LABELS = {"low": "Animate (Low motion)", "high": "Animate (High motion)"}
MAX_EXTENSIONS = 4  # an Extend adds about 4 s to a 5 s clip: four of them make about 21 s


@dataclass(frozen=True)
class Animation:
    """What a video job animates and how, as the bot decides it before building the job."""

    prompt: str  # the motion prompt
    motion: str = "low"
    raw: bool = False
    clips: int | None = None  # --bs; None: the server's number
    start: bytes | None = None  # PNG; None with `draw`: drawn first
    draw: GenerateSpec | None = None  # a text prompt's start frame
    end: bytes | None = None
    loop: bool = False
    previous: bytes | None = None  # Extend: the clip's MP4
    label: str = ""  # the headline: "Animate (High motion)", "Extend", "Loop"
    extensions: int = 0  # Extends that made this clip (at most MAX_EXTENSIONS)
    start_image_id: int | None = None  # the stored image it animates: likes on its clips count on its grid


async def prepare_video(
    bot: Tastemaker, user_id: int, guild_id: int | None, animation: Animation, *, preset_name: str | None = None,
    shown: str | None = None, parent_image_id: int | None = None, info: dict[str, Any] | None = None,
) -> Prepared:
    """A video job (Animate, --video, Extend, Loop): the server's number of clips (--bs within it),
    each counting as the server says against the daily quota; UserError for what can't run."""
    rules = await members.get_guild(bot.db, guild_id)
    preset = await choose_preset(bot, guild_id, preset_name)
    if preset.video is None:
        raise UserError(f"The model `{preset.name}` can't animate images; pick another with `--v`.")
    if animation.clips is not None and animation.clips > rules.video_clips:
        raise UserError(f"`--bs {animation.clips}` asks for more clips than this server makes: at most "
                        f"{rules.video_clips} (`/admin video`).")
    if animation.extensions > MAX_EXTENSIONS:
        raise UserError(f"This clip was extended {MAX_EXTENSIONS} times already (about "
                        f"{_seconds(preset.video, MAX_EXTENSIONS):.0f} s), the most a clip can be.")
    clips = animation.clips or rules.video_clips
    seed = secrets.randbelow(MAX_SEED + 1 - clips)
    spec = VideoSpec(
        prompt=animation.prompt, seed=seed, clips=clips, motion=animation.motion, raw=animation.raw,
        start_image=animation.start, start=animation.draw if animation.start is None else None,
        end_image=animation.end, loop=animation.loop, previous=animation.previous,
    )
    job = Job(kind=JobKind.VIDEO, user_id=user_id, guild_id=guild_id, preset=preset.name, video=spec)
    info = {
        "text": shown if shown is not None else animation.prompt, "seed": seed, "clips": clips, "motion": animation.motion,
        "label": animation.label or MOTION_LABELS[animation.motion], "extensions": animation.extensions,
        "start_image_id": animation.start_image_id, "loop": animation.loop, **(info or {}),
    }
    return Prepared(job=job, prompt=info["text"], info=info, parent_image_id=parent_image_id,
                    counted=clips * rules.video_clip_images)


def _seconds(model, extensions: int) -> float:
    return (model.frames + extensions * (model.extend_frames - 1)) / model.fps


async def prepare_video_prompt(
    bot: Tastemaker, user_id: int, guild_id: int | None, request: params.Request, prompt_images: list[bytes],
    preset: Preset, taste: Taste, stylize: int, seed: int, *, inputs: list[bytes],
) -> Prepared:
    """/imagine … --video: the attachment or leading image link is the start frame; without one, the
    prompt is drawn first (one image, with the member's --p/--s taste), then animated."""
    if len(prompt_images) > 1:
        raise UserError(f"`--video` animates one image, and this prompt has {len(prompt_images)}: attach one image, "
                        "or start the prompt with one image link.")
    draw = None
    if not prompt_images:
        width, height = params.dimensions(request.aspect, preset.base_size)
        draw = GenerateSpec(prompt=request.text, negative_prompt=", ".join(request.negative), width=width, height=height,
                            seed=seed, count=1, quality=request.quality, stylize=stylize, raw=request.raw,
                            **{k: v for k, v in taste.spec_fields.items() if k not in ("candidates", "rerank_direction")})
    end = (await fetch_links([request.end]))[0] if request.end else None
    animation = Animation(
        prompt=request.text, motion=request.motion or "low", raw=request.raw, clips=request.clips,
        start=prompt_images[0] if prompt_images else None, draw=draw, end=end, loop=request.loop,
    )
    info = {"codes": taste.codes if draw is not None else [], "stylize": stylize, **taste.info()}
    if prompt_images and (request.personalize or taste.codes):
        info["note"] = "your own start frame: --p steers a start frame the bot draws, so it had nothing to steer here"
    prepared = await prepare_video(bot, user_id, guild_id, animation, preset_name=preset.name, shown=request.canonical(),
                                   info=info)
    if inputs:
        prepared.info["inputs"] = len(inputs)
        prepared.inputs = inputs
    return prepared


# -- image prompts, /blend, /describe ------------------------------------------------

IMAGE_LINK = "image link"  # how bot/fetch.py names an image prompt's link in its messages
BLEND_SHAPES = {"portrait": (2, 3), "square": (1, 1), "landscape": (3, 2)}  # /blend dimensions
INPUTS = "inputs"  # under the data dir: a job's uploads, inputs/<job id>/<n>.png


async def fetch_links(links: Sequence[str]) -> list[bytes]:
    """Image prompts' links, fetched at once through bot/fetch.py's guard."""
    return list(await asyncio.gather(*(fetch.fetch_image(url, IMAGE_LINK) for url in links)))


def image_scale(preset: str, image_weight: float) -> float:
    """λ_img(iw) = λ_max·2·iw/(iw + 1): the adapter scale image prompts ask for (engine/generate.py):
    0 at --iw 0, the preset's maximum taste scale at the default 1, 1.5 times it at 3."""
    from engine import profiles

    return profiles.calibration_for(preset).scale_max * 2 * image_weight / (image_weight + 1)


def image_prompt_fields(
    request: params.Request, prompt_images: list[bytes], preset: str, taste_fields: dict[str, Any]
) -> dict[str, Any]:
    """The spec fields of a prompt's image prompts; UserError for what can't work."""
    if not prompt_images:
        if request.image_weight != params.Request.model_fields["image_weight"].default:
            raise UserError("`--iw` weights image prompts, and this prompt has none: start it with an image link, "
                            "or attach an image.")
        return {}
    if not request.text and len(prompt_images) < 2:
        raise UserError("An image prompt needs a description too, or a second image to blend with: "
                        "`https://… a cat in the rain`, or `/blend`.")
    if not get_preset(preset).reads_images:  # no IP-Adapter reads the taste space (OpenCLIP ViT-H)
        raise UserError(cannot_read_images(preset))
    scale = max(taste_fields.get("ip_adapter_scale", 0.0), image_scale(preset, request.image_weight))
    return {"prompt_images": prompt_images, "image_weight": request.image_weight, "ip_adapter_scale": scale}


def cannot_read_images(preset: str) -> str:
    return (f"The model `{preset}` can't read images (image prompts, /blend): it has no IP-Adapter for them. "
            "Pick another with `--v`.")


def check_blend_count(n: int) -> None:
    if not 2 <= n <= MAX_PROMPT_IMAGES:
        raise UserError(f"/blend takes 2 to {MAX_PROMPT_IMAGES} images, and you gave {n}: "
                        f"{'add another' if n < 2 else 'leave some out'}.")


async def prepare_blend(
    bot: Tastemaker, user_id: int, guild_id: int | None, pngs: Sequence[bytes], shape: str = "square"
) -> Prepared:
    """/blend: a grid from 2-5 images' combined embeddings, with the member's /settings
    (personalization and stylize) as for a prompt without parameters."""
    n = len(pngs)
    check_blend_count(n)
    prefs = await members.get_settings(bot.db, user_id)
    preset = await choose_preset(bot, guild_id, None)
    request = params.Request(text="", image_links=(), personalize=(params.CodeWeight(),) if prefs.personalize else None)
    taste = await personalization(bot, user_id, request, prefs.stylize, preset.name, guild_id=guild_id)
    image_fields = image_prompt_fields(request, list(pngs), preset.name, taste.spec_fields)
    width, height = params.dimensions(BLEND_SHAPES[shape], preset.base_size)
    seed = secrets.randbelow(MAX_SEED + 1)
    spec = GenerateSpec(prompt="", width=width, height=height, seed=seed, stylize=prefs.stylize,
                        **{**taste.spec_fields, **image_fields})
    job = Job(kind=JobKind.BLEND, user_id=user_id, guild_id=guild_id, preset=preset.name, generate=spec)
    prompt = blend_prompt(n, shape)
    info = {"text": "", "seed": seed, "stylize": prefs.stylize, "codes": taste.codes, "shape": shape, "inputs": n}
    info.update(taste.info())
    return Prepared(job=job, prompt=prompt, info=info, inputs=list(pngs))


def blend_prompt(n: int, shape: str) -> str:
    """How a /blend's message names it."""
    ratio = BLEND_SHAPES[shape]
    return f"blend of {n} images" + (f" --ar {ratio[0]}:{ratio[1]}" if shape != "square" else "")


DESCRIBE_PROMPT = "describe an image"  # how a /describe's message names it


async def prepare_describe(bot: Tastemaker, user_id: int, guild_id: int | None, png: bytes) -> Prepared:
    """/describe: one image (re-encoded PNG) -> four prompts, each ending in the image's --ar."""
    preset = await choose_preset(bot, guild_id, None)
    words, _ = await db_taste.style_words(bot.db, preset.name)  # the rank pool's, else the default list
    styles = list(words) or rankpool.read_lines(rankpool.STYLES_FILE)
    width, height = await asyncio.to_thread(lambda: decode_image(png).size)
    spec = DescribeSpec(image=png, styles=styles[:MAX_DESCRIBE_WORDS], seed=secrets.randbelow(MAX_SEED + 1))
    job = Job(kind=JobKind.DESCRIBE, user_id=user_id, guild_id=guild_id, preset=preset.name, describe=spec)
    info = {"inputs": 1, "ar": aspect_text(width, height)}
    return Prepared(job=job, prompt=DESCRIBE_PROMPT, info=info, inputs=[png])


def aspect_text(width: int, height: int) -> str:
    """The nearest simple ratio within --ar's 1:4 to 4:1 ("3:2"); "" for square."""
    candidates = [(a, b) for a in range(1, 17) for b in range(1, 17) if math.gcd(a, b) == 1 and a <= 4 * b and b <= 4 * a]
    a, b = min(candidates, key=lambda ab: (round(abs(math.log(ab[0] / ab[1] * height / width)), 2), ab[0] + ab[1]))
    return "" if a == b else f"{a}:{b}"


def described(record: db_jobs.JobRecord) -> list[str]:
    """A finished /describe's prompts, each with the image's --ar."""
    ar = record.request.get("ar")
    return [f"{prompt} --ar {ar}" if ar else prompt for prompt in record.request.get("prompts", [])]


def input_path(bot: Tastemaker, job_id: str, n: int) -> Path:
    return Path(bot.settings.data_dir) / INPUTS / job_id / f"{n}.png"


async def save_inputs(bot: Tastemaker, job_id: str, pngs: Sequence[bytes]) -> None:
    await asyncio.to_thread(input_path(bot, job_id, 1).parent.mkdir, parents=True, exist_ok=True)
    for n, png in enumerate(pngs, 1):
        await asyncio.to_thread(input_path(bot, job_id, n).write_bytes, png)


async def inputs_of(bot: Tastemaker, record: db_jobs.JobRecord) -> list[bytes]:
    """The uploads a job was made from (save_inputs); UserError when they are gone."""
    try:
        return [await asyncio.to_thread(input_path(bot, record.id, n).read_bytes)
                for n in range(1, record.request.get("inputs", 0) + 1)]
    except OSError:
        raise UserError("The images this was made from are gone from the bot's disk, so it can't run again.") from None


async def parse_prompt(bot: Tastemaker, user_id: int, guild_id: int | None, text: str) -> params.Request:
    """A member's prompt with their options and suffix, parsed and checked against the server's rules."""
    prefs = await members.get_settings(bot.db, user_id)
    options = await members.get_options(bot.db, user_id)
    request = params.parse(params.expand(text, options, prefs.suffix), presets=PRESETS)
    await check_guild_rules(bot, guild_id, request.member_text)
    return request


@dataclass(frozen=True)
class Plan:
    """The jobs one prompt makes: each prompt of its `{…}` choices, with its --repeat."""

    prompts: list[tuple[str, int]]
    links: bool = False  # some prompt has image links to fetch (image prompts, --sref)

    @property
    def jobs(self) -> int:
        return sum(repeat for _, repeat in self.prompts)


async def plan_imagine(bot: Tastemaker, user_id: int, guild_id: int | None, text: str) -> Plan:
    """Expand `{a, b}` and check every prompt it makes (ParamError / UserError), within
    the server's cap on jobs from one prompt (/admin permutations)."""
    limit = (await members.get_guild(bot.db, guild_id)).max_permutations
    variants = params.permutations(text, limit)
    prompts, links = [], False
    for variant in variants:
        try:
            request = await parse_prompt(bot, user_id, guild_id, variant)
        except (params.ParamError, UserError) as e:
            if len(variants) == 1:
                raise
            shown = (variant if len(variant) <= 80 else variant[:79] + "…").replace("`", "'")
            raise type(e)(f"In `{shown}`: {e}") from None
        prompts.append((variant, request.repeat))
        links = links or bool(request.links)
    plan = Plan(prompts, links)
    if plan.jobs > limit:
        made = f"{len(variants)} prompts × --repeat" if len(variants) > 1 else "--repeat"
        raise UserError(f"This prompt makes {plan.jobs} jobs ({made}); this server allows at most {limit} from one prompt.")
    return plan


async def imagine(
    bot: Tastemaker, interaction: discord.Interaction, text: str, *, reroll: bool = False, images: Sequence[bytes] = (),
    reroll_of: str | None = None,
) -> str | None:
    """/imagine and 🔄: a prompt that makes one job is queued at once (its id is returned); one
    that makes several (`{a, b}`, --repeat) is stored and the member is asked first
    (flows.confirm_prompt; None is returned). `reroll_of`: the grid a 🔄 rerolls, kept with
    the question so that its Yes can record the reroll."""
    user_id, guild_id = interaction.user.id, interaction.guild_id
    plan = await plan_imagine(bot, user_id, guild_id, text)
    if plan.jobs == 1:
        if plan.links:  # fetched in prepare_imagine: the answer can't wait for them
            await answer_first(interaction, plan.prompts[0][0])
        prepared = await prepare_imagine(bot, user_id, guild_id, plan.prompts[0][0], reroll=reroll, images=images)
        await start(bot, interaction, prepared)
        return prepared.job.id
    if images:
        raise UserError("An attached image goes with a prompt that makes one job: for `{…}` or `--repeat`, "
                        "start the prompt with the image's link instead.")
    await batch_room(bot, interaction, plan.jobs, images=4 * plan.jobs)
    pending_id = await pending.add(bot.db, user_id, guild_id, plan.prompts, reroll=reroll, reroll_of=reroll_of)
    await interaction.response.send_message(
        render.confirm_jobs(plan.prompts), view=bot.views.confirm(pending_id), ephemeral=True
    )
    return None


async def batch_room(bot: Tastemaker, interaction: discord.Interaction, jobs: int, images: int) -> int:
    """Check that all `jobs` of a batch may be queued (limits, server cap, quota), before any is.
    A member with nothing queued or running may start a whole batch (up to the server's cap on
    jobs from one prompt) even past their limit of jobs at once: returns how far past it each goes."""
    rules = await members.get_guild(bot.db, interaction.guild_id)
    limit = rules.max_jobs_per_user or bot.settings.max_jobs_per_user
    extra = max(0, jobs - limit) if not await db_jobs.active_jobs(bot.db, interaction.user.id) else 0
    await check_limits(
        bot, interaction.user.id, interaction.guild_id, interaction.channel_id,
        roles=role_ids(interaction.user), images=images, jobs=jobs, extra_room=extra,
    )
    return extra


async def prepare_from_image(
    bot: Tastemaker, user_id: int, guild_id: int | None, image_id: int, kind: JobKind, strength_name: str = "strong",
    prompt: str | None = None, *, tool: dict[str, Any] | None = None, mask: bytes | None = None,
) -> Prepared:
    """Variation (img2img), upscale (strength_name subtle or creative) or outpaint of one stored image.

    `tool` (stored with the job, so 🔄 can run it again): outpaint {"zoom": factor},
    {"pan": direction} or {"square": True}; a variation {"region": name} redraws that region.
    `mask` (a PNG at the image's size, white = redraw): a variation redraws what a member
    drew (the web companion's Vary (Region)) instead of a named region."""
    image = await db_jobs.get_image(bot.db, image_id)
    if image is None:
        raise UserError("That image is no longer stored on this bot.")
    source = await db_jobs.get_job(bot.db, image.job_id)
    path = Path(bot.settings.data_dir) / image.path
    if not path.exists():
        raise UserError("That image's file is gone from the bot's disk, so it can't be reused.")
    base = source.request if source else {}
    text = prompt if prompt is not None else base.get("text", source.prompt if source else "")
    request = params.parse(params.expand(text, {}, ""), presets=PRESETS) if text else None
    if request is not None:
        await check_guild_rules(bot, guild_id, request.member_text)
    preset = await choose_preset(bot, guild_id, (request.preset if request else None) or base.get("preset"))
    seed = secrets.randbelow(MAX_SEED + 1)
    width, height = image.width, image.height
    source = await asyncio.to_thread(path.read_bytes)
    tool_fields: dict[str, Any] = {}
    if kind is JobKind.UPSCALE:
        if not can_upscale(width, height):
            raise UserError(
                f"This image is {width}×{height}: ×2 would pass this bot's size limit "
                f"({MAX_SIDE} px a side, {MAX_PIXELS / 1e6:g} MP)."
            )
        count = 1
        # 0: the preset's own upscale_strength (engine/presets.py)
        strength = 0.0 if strength_name == "subtle" else min(MAX_CREATIVE_STRENGTH, CREATIVE_UPSCALE * preset.upscale_strength)
    elif kind is JobKind.OUTPAINT:
        count, strength = 4, 0.0
        out = outpaint_canvas(width, height, tool or {}, preset.base_size)
        width, height, tool_fields["source_box"] = out.width, out.height, out.box
    elif mask is not None or (tool and "region" in tool):
        count, strength = 4, REGION_STRENGTH
        tool_fields["mask"] = mask if mask is not None else await asyncio.to_thread(region_mask_png, source, tool["region"])
    else:
        count, strength = 4, STRENGTHS[strength_name]
    stylize = base.get("stylize", 100)
    taste = (
        await personalization(bot, user_id, request, stylize, preset.name, guild_id=guild_id)
        if request is not None
        else Taste()
    )
    if taste.request is not None:  # a bare --p (a Remix edit), filled in with the member's default mix
        request = taste.request
    spec = GenerateSpec(
        prompt=request.text if request else "",
        negative_prompt=", ".join(request.negative) if request else "",
        width=width,
        height=height,
        seed=seed,
        count=count,
        init_image=source,
        strength=strength,
        stylize=stylize,
        raw=bool(request and request.raw),
        stop=request.stop if request is not None and kind is JobKind.VARIATION else 100,
        **tool_fields,
        **taste.spec_fields,
    )
    job = Job(kind=kind, user_id=user_id, guild_id=guild_id, preset=preset.name, generate=spec)
    info = {
        "text": request.canonical() if request else text,
        "seed": seed,
        "stylize": stylize,
        "codes": taste.codes,
        "sref": request.sref if request else None,
        "strength_name": strength_name.capitalize(),
        "source_index": image.idx,
        **taste.info(),
    }
    if tool:
        info["tool"] = tool
    if kind is JobKind.UPSCALE:
        info["upscale"] = strength_name.capitalize()
    return Prepared(job=job, prompt=info["text"], info=info, parent_image_id=image_id)


def can_upscale(width: int, height: int) -> bool:
    return 2 * max(width, height) <= MAX_SIDE and 4 * width * height <= MAX_PIXELS


def outpaint_canvas(width: int, height: int, tool: dict[str, Any], base: int) -> canvas.Outpaint:
    """Zoom Out / Pan / Make Square: the new canvas and where the image goes on it (engine/canvas.py)."""
    try:
        if "zoom" in tool:
            return canvas.zoom(width, height, float(tool["zoom"]), base)
        if "pan" in tool:
            return canvas.pan(width, height, tool["pan"], base)
        if tool.get("square"):
            return canvas.square(width, height, base)
    except canvas.CanvasError as error:
        raise UserError(f"This image can't be outpainted that way: {error}.") from None
    raise UserError("That outpaint tool is unknown to this bot.")


def region_mask_png(source: bytes, region: str) -> bytes:
    """Vary (Region): the mask (white = redraw) for a named region of the image."""
    try:
        image = decode_image(source)
        mask = canvas.region_mask(image, region)
    except (ImageDecodeError, canvas.CanvasError) as error:
        raise UserError(f"That region can't be varied: {error}.") from None
    return render.to_png(mask)


async def choose_preset(bot: Tastemaker, guild_id: int | None, named: str | None) -> Preset:
    """The preset a job runs on: the one named (--v, or the source image's), else the
    server's default (/admin model default), else the bot's TASTEMAKER_MODEL."""
    if named:
        try:
            return get_preset(named)
        except UnknownPresetError:
            raise UserError(f"The model `{named}` is no longer on this bot; add `--v NAME` to pick another.") from None
    default = (await members.get_guild(bot.db, guild_id)).default_model
    if default:
        try:
            return get_preset(default)
        except UnknownPresetError:  # the owner's file dropped it: the bot's default, and say so in the log
            log.warning("guild %s: default model %r is gone from the presets; using %s", guild_id, default, bot.settings.model)
    return get_preset(bot.settings.model)


@dataclass
class Taste:
    codes: list[tuple[str, float]] = field(default_factory=list)  # the --p codes as shown: (code, weight)
    spec_fields: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # shown with the result: why --p and --sref were not applied
    request: params.Request | None = None  # the request with a bare --p filled in with the default mix
    house: tuple[str, float] | None = None  # this server's house taste as used: (code, its share of the taste)
    house_note: str = ""  # shown with the result: the house taste used, or why it was left out

    def info(self) -> dict[str, Any]:
        """What the job stores for its finished message (bot/render.py shows `note`)."""
        notes = [text for text in (self.note, self.house_note) if text]
        return {**({"note": " · ".join(notes)} if notes else {}), **({"house": list(self.house)} if self.house else {})}


async def house_taste(bot: Tastemaker, guild_id: int | None) -> tuple[str, float, int | None] | None:
    """This server's house taste (/admin house_taste) as profiles.resolve takes it: (code, weight, who set it)."""
    if guild_id is None:
        return None
    rules = await members.get_guild(bot.db, guild_id)
    if not rules.house_taste:
        return None
    return rules.house_taste, rules.house_taste_weight, rules.house_taste_owner


async def personalization(
    bot: Tastemaker, user_id: int, request: params.Request, stylize: int, preset: str, *, guild_id: int | None = None
) -> Taste:
    """--p codes, --sref and the server's house taste -> conditioning fields for the job.

    A bare --p is the member's default mix (profiles.default_picks: the main
    profile's current code, or the profiles `/prefer personalize` mixes); the
    returned `request` has it filled in, so the message shows the codes used.
    `--sref CODE` joins the --p mix with weight 1 (its taste steers like --p).
    `--sref URL` is fetched here, before anything is queued (bot/fetch.py); the
    worker embeds it and conditions on it, combined with any --p taste. Both
    use the preset's adapter scale lambda(s); --s 0 turns them off and fetches
    nothing. `codes` lists the --p codes only (the message shows --sref apart).
    A preset whose IP-Adapter can't read the taste space (FLUX, SD 3.5:
    Preset.steering "words") gets the taste's nearest style words instead
    (profiles.taste_words), and refuses `--sref URL`.

    The server's house taste (/admin house_taste) joins every prompt's taste at
    its weight, and steers alone (at the member's --s) when the prompt has no
    --p; not with `--style raw` or `--s 0`.
    It is the owner's setting, so it never fails a member's prompt: when it
    can't be used (its code went private, the rank pool changed model) the job
    runs without it and the finished message says so.
    """
    from engine import profiles

    shown = [(pick.code, pick.weight) for pick in request.personalize or ()]
    sref_code = request.sref if request.sref and params.is_code(request.sref) else None
    sref_url = request.sref if request.sref and not sref_code else None
    house = await house_taste(bot, guild_id) if stylize != 0 and not request.raw else None
    if not shown and not sref_code and not sref_url and house is None:
        return Taste()
    steering = get_preset(preset).steering
    if sref_url and steering != "adapter" and stylize != 0:
        raise UserError(f"The model `{preset}` can't read a style image (`--sref` link): it has no IP-Adapter for "
                        "images. Use `--sref CODE`, or pick another model with `--v`.")
    filled = None
    if request.uses_current_code:  # TasteError when the member's profile is locked
        filled = request.with_default_mix(await profiles.default_picks(bot.db, user_id, bot.settings.unlock_votes))
        shown = [(pick.code, pick.weight) for pick in filled.personalize or ()]
    picks = shown + ([(sref_code, 1.0)] if sref_code else [])
    taste, used, house_note = None, None, ""
    if picks or house is not None:
        try:
            taste = await profiles.resolve(bot.db, user_id, picks, bot.settings.unlock_votes, house=house)
        except profiles.TasteError as error:
            if house is None:
                raise
            # The member's own picks alone: raises their error if the problem was theirs.
            taste = await profiles.resolve(bot.db, user_id, picks, bot.settings.unlock_votes) if picks else None
            log.warning("guild %s: house taste %r not applied for user %s: %s", guild_id, house[0], user_id, error)
            house_note = f"house taste `{house[0]}` not applied: {str(error).rstrip('.')}"
        else:
            if house is not None:
                used = taste.codes[-1]
                house_note = f"house taste `{used[0]}`" + (f" at {used[1]:.0%}" if picks else "")
    codes = list(shown)
    if stylize == 0:  # --s 0 turns personalization off and costs nothing
        return Taste(codes=codes, request=filled)
    fields: dict[str, Any] = {}
    if taste is not None and steering == "adapter":
        conditioning = profiles.conditioning(taste.w, taste.basis, stylize, preset)
        fields.update(conditioning=conditioning.vector, ip_adapter_scale=conditioning.scale)
    elif taste is not None:
        words, weight = await profiles.taste_words(bot.db, taste, stylize, preset)
        if words:
            fields.update(taste_words=words, taste_words_weight=weight)
    if taste is not None:
        direction = profiles.rerank_direction(taste.basis, taste.w)
        if request.quality >= 2 and any(direction):  # best-of-N under the member's taste
            fields["candidates"] = 8
            fields["rerank_direction"] = direction
    if sref_url:
        fields["style_images"] = [await fetch.fetch_image(sref_url)]
        fields["ip_adapter_scale"] = profiles.calibration_for(preset).scale(stylize)
    return Taste(codes=codes, spec_fields=fields, request=filled, house=used, house_note=house_note)


async def check_guild_rules(bot: Tastemaker, guild_id: int | None, text: str) -> None:
    """Banned words, matched on all the member's words (Request.member_text: the
    description, the `--no` list, a link), both sides folded alike (params.matching_key): case,
    full-width forms, invisible characters, accents and `b.a.d` spellings don't hide a word.
    Whole words, unless the owner's `*` asks for more (params.banned_in); the text is folded once."""
    rules = await members.get_guild(bot.db, guild_id)
    if (word := params.first_banned(rules.banned_words, text)) is not None:
        raise UserError(f"This server doesn't allow the word `{word}` in prompts.")


@dataclass(frozen=True)
class Quota:
    """A member's daily images on one server (UTC days)."""

    limit: int | None  # None: unlimited
    used: int  # made today, or queued or running (they will be)
    resets_at: float  # the next 00:00 UTC

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)

    def resets_text(self, now: float) -> str:
        minutes = max(1, math.ceil((self.resets_at - now) / 60))
        hours, minutes = divmod(minutes, 60)
        return f"00:00 UTC (in {f'{hours} h ' if hours else ''}{minutes} min)"


async def daily_quota(
    bot: Tastemaker, user_id: int, guild_id: int | None, roles: Iterable[int], now: float | None = None
) -> Quota:
    now = time.time() if now is None else now
    day = math.floor(now / 86400) * 86400  # POSIX time has no leap seconds: UTC days are 86400 s
    limit = await members.daily_image_quota(bot.db, guild_id, roles)
    used = await db_jobs.images_since(bot.db, user_id, guild_id, day) if limit is not None else 0
    return Quota(limit=limit, used=used, resets_at=day + 86400)


async def check_limits(
    bot: Tastemaker, user_id: int, guild_id: int | None, channel_id: int | None, *,
    roles: Iterable[int] = (), images: int = 0, jobs: int = 1, extra_room: int = 0,
) -> None:
    """Everything that can refuse a job (or a batch of `jobs`) before it is queued; `images` is what
    it would make. Only reads this database: start() runs it in the transaction that records the job."""
    rules = await members.get_guild(bot.db, guild_id)
    if rules.allowed_channels and channel_id not in rules.allowed_channels:
        where = ", ".join(f"<#{c}>" for c in rules.allowed_channels)
        raise UserError(f"Image commands work only in {where} on this server.")
    limit = (rules.max_jobs_per_user or bot.settings.max_jobs_per_user) + extra_room
    active = await db_jobs.active_jobs(bot.db, user_id)
    if jobs > 1 and len(active) + jobs > limit:
        raise UserError(
            f"This prompt makes {jobs} jobs; you have {len(active)} queued or running, and the limit is {limit} at once. "
            "Wait for them to finish, or cancel some with their ❌ buttons."
        )
    if len(active) >= limit:
        raise UserError(
            f"You already have {len(active)} jobs queued or running, and the limit is {limit}. "
            "Wait for one to finish, or cancel one with its ❌ button."
        )
    if rules.max_jobs is not None and len(await db_jobs.active_jobs(bot.db, guild_id=guild_id)) + jobs > rules.max_jobs:
        raise UserError(
            f"This server already has {rules.max_jobs} jobs queued or running, its limit. Try again in a minute."
        )
    if images:
        now = time.time()
        quota = await daily_quota(bot, user_id, guild_id, roles, now)
        if quota.left is not None and quota.left < images:
            resets = f"the quota resets at {quota.resets_text(now)}."
            if quota.left == 0:
                raise UserError(f"You've used {quota.used} of your {quota.limit} images today; {resets}")
            raise UserError(
                f"This needs {images} images, and you have {quota.left} of your {quota.limit} images left today; {resets}"
            )


async def start(bot: Tastemaker, interaction: discord.Interaction, prepared: Prepared) -> None:
    """Queue the job and post its '(Waiting to start)' message (the one the pump edits)."""
    user_id = interaction.user.id
    # The server's NSFW policy: the worker refuses flagged input images where it blocks;
    # delivery applies it to the results ('allow' needs an age-restricted channel).
    rules = await members.get_guild(bot.db, interaction.guild_id)
    is_nsfw = getattr(interaction.channel, "is_nsfw", None)  # DMs have none: no server policy, so block
    age_restricted = bool(is_nsfw and is_nsfw())
    threshold = safety.input_threshold(rules.nsfw_policy, rules.nsfw_threshold, age_restricted)
    # Discord's upload limit where the result goes: the worker fits the grid it posts to it (engine/posting.py).
    limit = interaction.filesize_limit
    prepared.job = prepared.job.model_copy(update={"nsfw_threshold": threshold, "upload_limit": limit})
    # The limits are checked in the transaction that records the job, so that
    # commands sent at once can't all pass a limit or quota with room for one.
    async with transaction(bot.db):
        await check_limits(
            bot, user_id, interaction.guild_id, interaction.channel_id,
            roles=role_ids(interaction.user), images=prepared.images, extra_room=prepared.extra_room,
        )
        await members.ensure_user(bot.db, user_id)
        await db_jobs.insert_job(
            bot.db,
            id=prepared.job.id,
            kind=prepared.kind or prepared.job.kind,
            user_id=user_id,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            prompt=prepared.prompt,
            request={**prepared.info, "preset": prepared.job.preset, "age_restricted": age_restricted, "upload_limit": limit},
            parent_image_id=prepared.parent_image_id,
            images=prepared.images,
        )
    try:
        if prepared.inputs:  # outside the transaction: disk writes never hold it
            await save_inputs(bot, prepared.job.id, prepared.inputs)
        await bot.queue.submit(prepared.job)
        record = await db_jobs.get_job(bot.db, prepared.job.id)
        position = await bot.queue.position(prepared.job.id)
        waiting = render.waiting(record, position)
        target = await post_job_message(bot, interaction, record, waiting)
        await db_jobs.update_job(bot.db, record.id, message_id=target.message_id, channel_id=target.channel_id)
        bot.delivery.follow(record.id, shown=waiting, target=target)  # its events reach the message from now on
    except Exception:
        await bot.queue.cancel(prepared.job.id)
        await db_jobs.update_job(bot.db, prepared.job.id, state=JobState.CANCELLED, delivered_at=0)
        raise
    log.info("job %s queued for user %s at position %s: %s", record.id, user_id, position, record.kind)


async def post_job_message(
    bot: Tastemaker, interaction: discord.Interaction, record: db_jobs.JobRecord, text: str
) -> Target:
    """A job's message, posted the cheapest way: the interaction's own answer when it has none yet
    (one request, outside every rate limit), else the placeholder it answered with first, else a
    followup. While the interaction's token lives its webhook edits the message (bot/outbox.py)."""
    fields: dict[str, Any] = {"view": bot.views.cancel(record.id), "allowed_mentions": render.requester_only(record)}
    if not interaction.response.is_done():
        answer = await interaction.response.send_message(text, **fields)
        return Target.posted_by(interaction, answer.message_id, original=True)
    await bot.delivery.outbox.spend(interaction)
    if interaction.extras.pop(PLACEHOLDER, False):  # the placeholder becomes the job's message
        message = await interaction.edit_original_response(content=text, **fields)
        return Target.posted_by(interaction, message.id, original=True)
    message = await interaction.followup.send(text, wait=True, **fields)
    return Target.posted_by(interaction, message.id, original=False)


async def answer_first(interaction: discord.Interaction, prompt: str) -> None:
    """Answer before fetching or checking a member's images, which can take longer than the 3 s
    Discord waits for an answer: a public "(Waiting to start)" placeholder, as Midjourney posts.
    It becomes the job's message (post_job_message); if the input is bad, the one error path
    removes it and says why privately (bot/errors.py)."""
    if interaction.response.is_done():
        return
    await interaction.response.send_message(
        render.placeholder(prompt, interaction.user.id),
        allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=[interaction.user]),
    )
    interaction.extras[PLACEHOLDER] = True
