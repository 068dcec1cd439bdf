"""/tune: Midjourney's Style Tuner. The member's prompt in 16 or 32 styles, pairs to pick from, a profile with a code.

1. Checks, each with its own private error and nothing queued: a rank pool
   (the renders are read against its basis), a model that can personalize in
   that basis's space, a plain description the server allows, a free profile
   name, and the member's limits (a tune counts as `styles` images).
2. One POOL job: the prompt in a seeded random choice of distinct styles of
   data/styles.txt, each render embedded by the worker. Its delivery hooks keep
   the renders the server's NSFW policy lets through (PNG under
   <data dir>/tune/<tune id>/, embeddings in tune_images); fewer than
   flows_tune.MIN_IMAGES fails the tune.
3. The finished message has **Start**: the sitting (bot/flows_tune.py).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import discord
import numpy as np
from discord import app_commands
from discord.ext import commands

from bot import flows_tune, generation
from bot.app import Tastemaker
from bot.delivery import Finish
from bot.errors import UserError
from bot.generation import Prepared
from bot.ids import role_ids
from engine import params, profiles, rankpool, safety
from engine.db import jobs as db_jobs
from engine.db import members
from engine.db import tune as db_tune
from engine.jobs import MAX_SEED, Job, JobEvent, JobKind, PoolSpec
from engine.presets import PRESETS, Preset, get_preset

log = logging.getLogger("bot.tune")

KIND = "tune"  # the bot's job kind for delivery hooks
TUNE_DIR = "tune"  # under the data dir: tune/<tune id>/<n>.png


@dataclass
class TunePrepared(Prepared):
    """A POOL job that counts against the daily quota as the images it draws."""

    count: int = 0

    @property
    def images(self) -> int:
        return self.count


async def tune_preset(bot: Tastemaker) -> Preset:
    """The model that draws the tune: the rank pool's (its renders must be embedded in the
    basis's space), or the bot's when that one is gone. UserError otherwise."""
    found = await profiles.current_basis(bot.db)
    if found is None:
        raise UserError(f"A style tune is read against the rank pool, and there is none yet. {profiles.NO_POOL_MESSAGE}")
    basis, name = found
    for candidate in (PRESETS.get(name), PRESETS.get(bot.settings.model)):
        if candidate is not None and candidate.embed_dim == basis.d:
            return get_preset(candidate.name)
    raise UserError(
        "The rank pool was built with an image model this bot no longer runs, so tunes can't be read against it. "
        f"The server owner rebuilds it with `{profiles.POOL_BUILD_COMMAND}`."
    )


async def tune_prompt(bot: Tastemaker, guild_id: int | None, text: str) -> str:
    """The member's description as /imagine reads it, with the server's banned words checked."""
    text = params.normalize(text).strip()
    if not text:
        raise UserError("Give /tune something to draw, e.g. `prompt: a lighthouse at dusk`.")
    request = params.parse(text, presets=PRESETS)
    if not request.text.strip():
        raise UserError("Give /tune something to draw, e.g. `prompt: a lighthouse at dusk`.")
    if request.canonical() != request.text:
        raise UserError(
            "A style tune takes a plain description: leave out parameters and image links (`--ar`, `--p`, `https://…`)."
        )
    await generation.check_guild_rules(bot, guild_id, request.member_text)
    return request.text


def choose_styles(styles: int, seed: int) -> list[str]:
    lines = rankpool.read_lines(rankpool.STYLES_FILE)
    if len(lines) < styles:
        raise UserError(f"This bot knows only {len(lines)} styles, too few for a tune of {styles}.")
    picked = np.random.default_rng(seed).choice(len(lines), size=styles, replace=False)
    return [lines[int(i)] for i in picked]


class Tune(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot

    @app_commands.command(description="Style Tuner: your prompt in 16 or 32 styles; pick from pairs to make a profile")
    @app_commands.describe(
        prompt="What to draw in every style (a plain description)",
        styles="How many styles to draw: 16 (8 pairs to pick from) or 32 (16 pairs)",
        name="A name for the profile it makes (default: tune N)",
    )
    async def tune(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, params.MAX_TEXT],
        styles: Literal[16, 32] = 16,
        name: app_commands.Range[str, 1, profiles.MAX_PROFILE_NAME] | None = None,
    ) -> None:
        bot, user_id, guild_id = self.bot, interaction.user.id, interaction.guild_id
        # 1. Every check before anything is stored or queued.
        preset = await tune_preset(bot)
        text = await tune_prompt(bot, guild_id, prompt)
        name = await profiles.check_new_profile(bot.db, user_id, name)
        await generation.check_limits(
            bot, user_id, guild_id, interaction.channel_id, roles=role_ids(interaction.user), images=styles
        )
        # 2. One POOL job of the prompt in `styles` styles; the tune's row first, so
        #    that its delivery hook finds it however fast the job runs.
        seed = secrets.randbelow(MAX_SEED + 1)
        size = min(rankpool.POOL_SIZE, preset.base_size)
        job = Job(
            kind=JobKind.POOL, preset=preset.name, user_id=user_id, guild_id=guild_id,
            pool=PoolSpec(prompt=text, styles=choose_styles(styles, seed), seed=seed, width=size, height=size),
        )
        tune_id = await db_tune.insert_tune(bot.db, user_id, guild_id, job.id, text, name, styles)
        prepared = TunePrepared(job=job, prompt=f"style tune: {text}", info={"styles": styles}, kind=KIND, count=styles)
        try:
            await generation.start(bot, interaction, prepared)
        except BaseException:
            if await db_jobs.get_job(bot.db, job.id) is None:  # refused before it was recorded
                await db_tune.delete_tune(bot.db, tune_id)
            raise


# -- delivery hooks (bot/delivery.py) ---------------------------------------------


def make_hooks(bot: Tastemaker):
    async def on_done(record: db_jobs.JobRecord, event: JobEvent) -> dict:
        """The POOL job finished: keep the renders the server's policy lets through.
        Never raises (the job pump would retry forever): problems become "error"."""
        tune = await db_tune.tune_for_job(bot.db, record.id)
        if tune is None:
            return {"error": "this tune is no longer known to the bot"}
        if tune.state != db_tune.DRAWING:  # a replayed event: already stored
            return {"tune_id": tune.id}
        rules = await members.get_guild(bot.db, record.guild_id)
        age_restricted = bool(record.request.get("age_restricted"))
        rendered = event.result.images if event.result else []
        folder = Path(bot.settings.data_dir) / TUNE_DIR / str(tune.id)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        kept = []
        for index, image in enumerate(rendered, start=1):
            verdict = safety.verdict(image.nsfw, rules.nsfw_policy, rules.nsfw_threshold, age_restricted)
            if verdict is safety.Verdict.BLOCK:
                log.info("tune %s render %d (%s) dropped: nsfw %s", tune.id, index, image.label, image.nsfw)
                continue
            relative = f"{TUNE_DIR}/{tune.id}/{index}.png"
            await asyncio.to_thread((folder / f"{index}.png").write_bytes, image.png)
            kept.append((image.label, relative, image.embedding, image.nsfw))
        if len(kept) < flows_tune.MIN_IMAGES:
            await db_tune.set_state(bot.db, tune.id, db_tune.FAILED, expect=db_tune.DRAWING)
            await db_jobs.update_job(bot.db, record.id, images=0)  # a failed tune gives its images back
            return {"error": (
                f"only {len(kept)} of {len(rendered)} styles passed this server's content filter, and a tune needs "
                f"at least {flows_tune.MIN_IMAGES}; try another prompt"
            )}
        if await db_tune.add_images(bot.db, tune.id, kept):
            await db_jobs.add_usage(bot.db, record.user_id, len(kept), 0.0)  # delivery stores no image rows for it
        log.info("tune %s: %d of %d renders kept for user %s", tune.id, len(kept), len(rendered), record.user_id)
        return {"tune_id": tune.id}

    async def on_failed(record: db_jobs.JobRecord) -> None:
        """The POOL job failed or was cancelled: so is the tune (its images are given back with the job)."""
        tune = await db_tune.tune_for_job(bot.db, record.id)
        if tune is not None:
            await db_tune.set_state(bot.db, tune.id, db_tune.FAILED, expect=db_tune.DRAWING)

    async def final_message(record: db_jobs.JobRecord, limit: int | None) -> Finish:
        tune = await db_tune.get_tune(bot.db, record.request.get("tune_id", 0))
        if tune is None or record.request.get("error"):
            return Finish(failed=record.request.get("error", "unknown error"))
        return Finish(lines=[await flows_tune.ready_text(bot, tune)], view=bot.views.tune_start(tune.id))

    return on_done, final_message, on_failed


async def setup(bot: Tastemaker) -> None:
    bot.delivery.on_done[KIND], bot.delivery.final_message[KIND], bot.delivery.on_failed[KIND] = make_hooks(bot)
    bot.delivery.keeps_images.add(KIND)
    await bot.add_cog(Tune(bot))
