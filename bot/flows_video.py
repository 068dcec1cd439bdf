"""Animate's buttons: Animate (Low motion) / (High motion) / (Manual) under one image, and under
each clip of a video Extend (Auto) / (Manual) and Loop (❤️ is flows.like). A view parses its
custom_id and calls one of these; everything else comes from the database, so they work after a
restart."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from bot import flows, generation
from bot.errors import UserError
from engine import params
from engine.db import jobs as db_jobs
from engine.jobs import JobKind, JobState
from engine.presets import PRESETS

if TYPE_CHECKING:
    from bot.app import Tastemaker


def description(job: db_jobs.JobRecord | None) -> str:
    """The motion prompt a button starts from: the image's prompt without its parameters."""
    if job is None:
        return ""
    text = flows.prompt_of(job)
    try:
        return params.parse(text, presets=PRESETS).text
    except params.ParamError:
        return text


async def _read(bot: Tastemaker, relative: str, what: str) -> bytes:
    try:
        return await asyncio.to_thread((Path(bot.settings.data_dir) / relative).read_bytes)
    except OSError:
        raise UserError(f"{what} is gone from the bot's disk, so it can't be animated.") from None


async def motion_text(bot: Tastemaker, guild_id: int | None, text: str) -> params.Request:
    """A Manual prompt as typed: the server's banned words apply, and `--motion high` or `--raw` work."""
    text = params.expand(text, {}, "")
    request = params.parse(text if re.search(r"(^|\s)--video(\s|$)", text) else f"{text} --video", presets=PRESETS)
    await generation.check_guild_rules(bot, guild_id, request.member_text)
    return request


# -- under one image -----------------------------------------------------------------


async def animate(interaction: discord.Interaction, bot: Tastemaker, image_id: int, motion: str) -> None:
    """Animate (Low motion) / (High motion): clips from the image, with its prompt."""
    image, job = await flows._own_image(interaction, bot, image_id)
    await _animate(interaction, bot, image, job, generation.Animation(prompt=description(job), motion=motion))


async def animate_manual(interaction: discord.Interaction, bot: Tastemaker, image_id: int) -> None:
    """Animate (Manual): a modal with the motion prompt, the image's prompt to start from."""
    image, job = await flows._own_image(interaction, bot, image_id)

    async def submit(interaction: discord.Interaction, text: str) -> None:
        request = await motion_text(bot, interaction.guild_id, text)
        animation = generation.Animation(prompt=request.text, motion=request.motion or "low", raw=request.raw,
                                         label="Animate (Manual)")
        await _animate(interaction, bot, image, job, animation)

    await interaction.response.send_modal(bot.views.motion("Animate (Manual)", description(job), submit))


async def _animate(interaction: discord.Interaction, bot: Tastemaker, image: db_jobs.ImageRecord,
                   job: db_jobs.JobRecord | None, animation: generation.Animation) -> None:
    if image.video is not None:  # a clip is continued with Extend, not animated again
        raise UserError(flows.STALE_BUTTON)
    prepared = await prepare_animation(bot, interaction.user.id, interaction.guild_id, image, job, animation)
    await generation.start(bot, interaction, prepared)


async def prepare_animation(
    bot: Tastemaker, user_id: int, guild_id: int | None, image: db_jobs.ImageRecord,
    job: db_jobs.JobRecord | None, animation: generation.Animation,
) -> generation.Prepared:
    """The video job animating a stored image (not a clip), with its job's model: Discord's Animate
    buttons and the web's Animate queue the same one."""
    start = await _read(bot, image.path, "That image's file")
    animation = dataclasses.replace(animation, start=start, start_image_id=image.id)
    return await generation.prepare_video(
        bot, user_id, guild_id, animation, preset_name=job.request.get("preset") if job else None,
        parent_image_id=image.id,
    )


# -- under a clip ----------------------------------------------------------------------


async def _own_clip(interaction: discord.Interaction, bot: Tastemaker, image_id: int) -> tuple[db_jobs.ImageRecord, db_jobs.JobRecord]:
    clip = await db_jobs.get_image(bot.db, image_id)
    job = await db_jobs.get_job(bot.db, clip.job_id) if clip is not None else None
    if clip is None or clip.video is None or job is None or job.kind != JobKind.VIDEO or job.state is not JobState.DONE:
        raise UserError(flows.STALE_BUTTON)
    flows.require_owner(interaction, clip.user_id)
    return clip, job


async def extend(interaction: discord.Interaction, bot: Tastemaker, image_id: int, *, manual: bool = False,
                 loop: bool = False) -> None:
    """Extend (Auto) / (Manual): the clip continued from its last frame, about 4 s more, up to four times.
    Loop: the same, ending on the clip's first frame, so it plays round seamlessly."""
    clip, job = await _own_clip(interaction, bot, image_id)
    label = "Loop" if loop else "Extend (Manual)" if manual else "Extend"

    async def go(interaction: discord.Interaction, prompt: str, motion: str, raw: bool) -> None:
        animation = generation.Animation(
            prompt=prompt, motion=motion, raw=raw, previous=await _read(bot, clip.video, "That clip"), loop=loop,
            label=label, extensions=int(job.request.get("extensions", 0)) + 1,
            start_image_id=job.request.get("start_image_id"),
        )
        prepared = await generation.prepare_video(
            bot, interaction.user.id, interaction.guild_id, animation, preset_name=job.request.get("preset"),
            shown=prompt, parent_image_id=clip.id,
        )
        await generation.start(bot, interaction, prepared)

    prompt, motion, raw = description(job), job.request.get("motion", "low"), False
    if not manual:
        await go(interaction, prompt, motion, raw)
        return

    async def submit(interaction: discord.Interaction, text: str) -> None:
        request = await motion_text(bot, interaction.guild_id, text)
        await go(interaction, request.text, request.motion or motion, request.raw)

    await interaction.response.send_modal(bot.views.motion("Extend (Manual)", prompt, submit))
