"""What every button does: one plain async function per action.

A view (bot/views/*) only parses its custom_id and calls one of these with the
ids it found. A flow rebuilds everything else from the database, so a click
works the same after a restart, and answers the interaction itself. The buttons
and the modal a flow puts on its messages come from `bot.views`
(bot/views/builders.py): the views import the flows, never the other way round.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import discord
import numpy as np

from bot import generation, render
from bot.errors import UserError
from engine import canvas, posting, profiles, safety
from engine.db import jobs as db_jobs
from engine.db import members, pending
from engine.db import taste as db_taste
from engine.jobs import JobKind, JobState

if TYPE_CHECKING:
    from bot.app import Tastemaker

Submit = Callable[[discord.Interaction, str], Awaitable[None]]
Queued = Callable[[str], Awaitable[None]]  # called with the id of a job a click queued

log = logging.getLogger("bot.flows")

# The /settings panel. Midjourney's stylize presets: the label on the panel and the --s it sets.
STYLIZE_LEVELS = {"low": 50, "med": 100, "high": 250, "very_high": 750}
STYLIZE_LABELS = {"low": "Stylize low", "med": "Stylize med", "high": "Stylize high", "very_high": "Stylize very high"}
TOGGLES = {"personalize": "Personalization", "remix": "Remix mode", "auto_dm": "Auto DM", "learn_from_use": "Learn from use"}

# The one answer to a button whose custom_id points at nothing it can act on: a
# row that is gone, an id no row can have, a job of another kind, a forged or
# outdated custom_id (bot/views/base.py StaleButton).
STALE_BUTTON = "This button no longer works: what it belonged to is gone from this bot."
GRID_KINDS = (JobKind.IMAGINE, JobKind.BLEND, JobKind.VARIATION, JobKind.OUTPAINT)  # the jobs whose messages carry U/V/🔄


def require_owner(interaction: discord.Interaction, owner_id: int) -> None:
    if interaction.user.id != owner_id:
        raise UserError(f"Only <@{owner_id}> can use these buttons. Run /imagine to make your own.")


def prompt_of(job: db_jobs.JobRecord) -> str:
    """The prompt as the member wrote it (with their options), for a variation or reroll."""
    return job.request.get("text", job.prompt)


# -- a finished grid: U1–U4, V1–V4, 🔄 -------------------------------------------


async def pick(interaction: discord.Interaction, bot: Tastemaker, job_id: str, index: int) -> None:
    """U: the image on its own, with Vary / Upscale / Like (no GPU work, as in Midjourney)."""
    job, image = await _grid_image(interaction, bot, job_id, index)
    path = Path(bot.settings.data_dir) / image.path
    if not path.exists():
        raise UserError("That image's file is gone from the bot's disk.")
    # Shown again under the server's policy now, in this channel (as delivery did).
    rules = await members.get_guild(bot.db, interaction.guild_id)
    is_nsfw = getattr(interaction.channel, "is_nsfw", None)
    verdict = safety.verdict(image.nsfw or 0.0, rules.nsfw_policy, rules.nsfw_threshold, bool(is_nsfw and is_nsfw()))
    if verdict is safety.Verdict.BLOCK:
        raise UserError(f"Image {index} is withheld by this server's content filter.")
    data, ext = await asyncio.to_thread(posting.fitted_file, path, interaction.filesize_limit)
    file = discord.File(io.BytesIO(data), filename=f"tastemaker_{image.id}.{ext}", spoiler=verdict is safety.Verdict.SPOILER)
    view = bot.views.image(
        image.id, upscale=generation.can_upscale(image.width, image.height), square=image.width != image.height
    )
    await interaction.response.send_message(
        render.single(job, image.idx), file=file, view=view, allowed_mentions=render.requester_only(job)
    )
    await _record_use(bot, interaction.user.id, "upscale", job.id, image_id=image.id)


async def vary_pick(interaction: discord.Interaction, bot: Tastemaker, job_id: str, index: int) -> None:
    """V: four strong variations of one image of the grid (a signal from use once they are queued)."""
    job, image = await _grid_image(interaction, bot, job_id, index)
    user_id = interaction.user.id

    async def queued(_: str) -> None:
        await _record_use(bot, user_id, "vary", job.id, image_id=image.id)

    await _vary(interaction, bot, image.id, "strong", prompt_of(job), queued=queued)


async def reroll(interaction: discord.Interaction, bot: Tastemaker, job_id: str) -> None:
    """🔄: the same prompt with a new seed; after a zoom, pan or region, the same tool on the same image.
    Once the new job is queued (after Remix's edit, or the Yes to a prompt that makes several
    jobs: confirm_prompt), the reroll is a signal from use: a weak "none of these"."""
    job = await _finished_grid(interaction, bot, job_id)
    user_id = interaction.user.id

    async def queued(next_job_id: str | None) -> None:  # None: the member is asked first
        if next_job_id is not None:
            await _record_use(bot, user_id, "reroll", job.id, next_job_id=next_job_id)

    tool = job.request.get("tool")
    if tool and job.parent_image_id is not None:
        parent = job.parent_image_id

        async def submit_tool(interaction: discord.Interaction, prompt: str) -> None:
            await queued(await _start_tool(interaction, bot, parent, tool, prompt))

        await with_remix(interaction, bot, prompt_of(job), submit_tool)
        return
    uploads = await generation.inputs_of(bot, job)  # a blend's images, an /imagine attachment
    if job.kind == JobKind.BLEND:
        prepared = await generation.prepare_blend(bot, interaction.user.id, interaction.guild_id, uploads, job.request["shape"])
        await generation.start(bot, interaction, prepared)
        await queued(prepared.job.id)
        return

    async def submit(interaction: discord.Interaction, prompt: str) -> None:  # a Remix edit may add {a, b}
        await queued(await generation.imagine(bot, interaction, prompt, reroll=True, images=uploads, reroll_of=job.id))

    await with_remix(interaction, bot, prompt_of(job), submit)


async def _record_use(
    bot: Tastemaker, user_id: int, kind: str, grid_job_id: str, *, image_id: int | None = None,
    next_job_id: str | None = None,
) -> None:
    """A signal from use on a grid (profiles.record_use checks that it is the member's own,
    that they learn from use, and that it isn't counted yet). One small write, no fit; it
    never fails the click: a failure is logged, not shown."""
    try:
        await profiles.record_use(bot.db, user_id, kind, grid_job_id, image_id=image_id, next_job_id=next_job_id)
    except Exception:
        log.exception("could not record a %s signal from use on job %s for user %s", kind, grid_job_id, user_id)


async def _finished_grid(interaction: discord.Interaction, bot: Tastemaker, job_id: str) -> db_jobs.JobRecord:
    job = await db_jobs.get_job(bot.db, job_id)
    if job is None or job.state != JobState.DONE or job.kind not in GRID_KINDS or job.deleted_at is not None:
        raise UserError(STALE_BUTTON)
    require_owner(interaction, job.user_id)
    return job


async def _grid_image(
    interaction: discord.Interaction, bot: Tastemaker, job_id: str, index: int
) -> tuple[db_jobs.JobRecord, db_jobs.ImageRecord]:
    job = await _finished_grid(interaction, bot, job_id)
    images = {image.idx: image for image in await db_jobs.images_of(bot.db, job.id)}
    if index in job.request.get("nsfw", {}).get("withheld", ()):
        raise UserError(f"Image {index} was withheld by this server's content filter, so it can't be picked or varied.")
    if index not in images:
        raise UserError(f"This grid has no image {index}.")
    return job, images[index]


# -- one image: Vary (Strong), Vary (Subtle), Upscale ×2, ❤️ Like ------------------


async def vary(interaction: discord.Interaction, bot: Tastemaker, image_id: int, strength: str) -> None:
    """Vary (Strong) / (Subtle): four variations of the image, with its grid's prompt."""
    image = await _stored_image(bot, image_id)
    require_owner(interaction, image.user_id)
    job = await db_jobs.get_job(bot.db, image.job_id)
    await _vary(interaction, bot, image.id, strength, prompt_of(job) if job else "")


async def upscale(interaction: discord.Interaction, bot: Tastemaker, image_id: int, mode: str = "subtle") -> None:
    """Upscale (Subtle) / (Creative): one image at ×2 (generation.CREATIVE_UPSCALE)."""
    image = await _stored_image(bot, image_id)
    require_owner(interaction, image.user_id)
    job = await db_jobs.get_job(bot.db, image.job_id)
    if job is not None and job.kind == JobKind.UPSCALE:  # an upscale has no Upscale button
        raise UserError(STALE_BUTTON)
    prepared = await generation.prepare_from_image(
        bot, interaction.user.id, interaction.guild_id, image.id, JobKind.UPSCALE, mode
    )
    await generation.start(bot, interaction, prepared)


# -- one image: Zoom Out, Pan, Make Square, Vary (Region) ---------------------------


async def outpaint(interaction: discord.Interaction, bot: Tastemaker, image_id: int, tool: dict) -> None:
    """Zoom Out 2× / 1.5×, Pan ⬅➡⬆⬇, Make Square: a new grid drawn around the image."""
    image, job = await _own_image(interaction, bot, image_id)
    await _image_tool(interaction, bot, image.id, tool, prompt_of(job) if job else "")


async def custom_zoom(interaction: discord.Interaction, bot: Tastemaker, image_id: int) -> None:
    """Custom Zoom: a modal with the prompt and the factor (above 1, up to 2)."""
    image, job = await _own_image(interaction, bot, image_id)

    async def submit(interaction: discord.Interaction, prompt: str, factor: str) -> None:
        await _start_tool(interaction, bot, image.id, {"zoom": zoom_factor(factor)}, prompt)

    await interaction.response.send_modal(bot.views.zoom(prompt_of(job) if job else "", submit))


def zoom_factor(text: str) -> float:
    """Custom Zoom's factor as typed ("1.5", "1,5", "1.5x"); UserError when it isn't one."""
    try:
        factor = float(text.strip().rstrip("x×X").strip().replace(",", "."))
    except ValueError:
        factor = math.nan
    if not canvas.ZOOM_MIN < factor <= canvas.ZOOM_MAX:  # NaN fails too
        shown = text.strip()[:20].replace("`", "'") or "(empty)"
        raise UserError(
            f"`{shown}` is not a zoom factor: Custom Zoom takes a number above {canvas.ZOOM_MIN:g} "
            f"and up to {canvas.ZOOM_MAX:g}, such as 1.5."
        )
    return factor


async def vary_region(interaction: discord.Interaction, bot: Tastemaker, image_id: int) -> None:
    """Vary (Region): a private menu of regions; choosing one redraws it (vary_region_chosen)."""
    image, _ = await _own_image(interaction, bot, image_id)
    await interaction.response.send_message(
        "**Vary (Region)**: which part of the image should be redrawn?", view=bot.views.region(image.id), ephemeral=True
    )


async def vary_region_chosen(interaction: discord.Interaction, bot: Tastemaker, image_id: int, region: str) -> None:
    image, job = await _own_image(interaction, bot, image_id)
    if region not in canvas.REGIONS:
        raise UserError(STALE_BUTTON)
    await _image_tool(interaction, bot, image.id, {"region": region}, prompt_of(job) if job else "")


async def _own_image(
    interaction: discord.Interaction, bot: Tastemaker, image_id: int
) -> tuple[db_jobs.ImageRecord, db_jobs.JobRecord | None]:
    image = await _stored_image(bot, image_id)
    require_owner(interaction, image.user_id)
    return image, await db_jobs.get_job(bot.db, image.job_id)


async def _image_tool(interaction: discord.Interaction, bot: Tastemaker, image_id: int, tool: dict, text: str) -> None:
    """An outpaint or a region variation of one image, with Remix's prompt edit first."""

    async def submit(interaction: discord.Interaction, prompt: str) -> None:
        await _start_tool(interaction, bot, image_id, tool, prompt)

    await with_remix(interaction, bot, text, submit)


async def _start_tool(interaction: discord.Interaction, bot: Tastemaker, image_id: int, tool: dict, prompt: str) -> str:
    """Queue an outpaint or region variation; returns its job id."""
    region = "region" in tool
    prepared = await generation.prepare_from_image(
        bot, interaction.user.id, interaction.guild_id, image_id,
        JobKind.VARIATION if region else JobKind.OUTPAINT, "region" if region else "strong", prompt, tool=tool,
    )
    await generation.start(bot, interaction, prepared)
    return prepared.job.id


async def like(interaction: discord.Interaction, bot: Tastemaker, image_id: int) -> None:
    """❤️: anyone may like an image; only others' likes teach their taste."""
    image = await _stored_image(bot, image_id)
    counted = await profiles.record_like(bot.db, interaction.user.id, image.id)
    if image.user_id == interaction.user.id:
        note = "Liked. Likes on your own images don't change your taste profile; /rank does."
    elif counted:
        note = "Liked: it counts toward your taste profile."
    else:
        note = "You already liked this one."
    await interaction.response.send_message(note, ephemeral=True)


async def _stored_image(bot: Tastemaker, image_id: int) -> db_jobs.ImageRecord:
    image = await db_jobs.get_image(bot.db, image_id)
    if image is None:
        raise UserError(STALE_BUTTON)
    return image


async def _vary(
    interaction: discord.Interaction, bot: Tastemaker, image_id: int, strength: str, text: str, *,
    queued: Queued | None = None,
) -> None:
    async def submit(interaction: discord.Interaction, prompt: str) -> None:
        prepared = await generation.prepare_from_image(
            bot, interaction.user.id, interaction.guild_id, image_id, JobKind.VARIATION, strength, prompt
        )
        await generation.start(bot, interaction, prepared)
        if queued is not None:
            await queued(prepared.job.id)

    await with_remix(interaction, bot, text, submit)


async def with_remix(interaction: discord.Interaction, bot: Tastemaker, text: str, submit: Submit) -> None:
    """Remix mode opens the prompt for editing first (the modal calls `submit` with
    the edited prompt); otherwise `submit` runs at once with `text`."""
    if (await members.get_settings(bot.db, interaction.user.id)).remix:
        await interaction.response.send_modal(bot.views.remix(text, submit))
    else:
        await submit(interaction, text)


# -- a /describe result: 1–4 imagine that prompt, 🔄 describes again -------------------


async def imagine_described(interaction: discord.Interaction, bot: Tastemaker, job_id: str, index: int) -> None:
    prompts = generation.described(await _finished_describe(interaction, bot, job_id))
    if index > len(prompts):
        raise UserError(STALE_BUTTON)

    async def submit(interaction: discord.Interaction, prompt: str) -> None:
        await generation.imagine(bot, interaction, prompt)

    await with_remix(interaction, bot, prompts[index - 1], submit)


async def describe_again(interaction: discord.Interaction, bot: Tastemaker, job_id: str) -> None:
    job = await _finished_describe(interaction, bot, job_id)
    [image] = await generation.inputs_of(bot, job)
    await generation.start(bot, interaction, await generation.prepare_describe(bot, interaction.user.id, interaction.guild_id, image))


async def _finished_describe(interaction: discord.Interaction, bot: Tastemaker, job_id: str) -> db_jobs.JobRecord:
    job = await db_jobs.get_job(bot.db, job_id)
    if job is None or job.state != JobState.DONE or job.kind != JobKind.DESCRIBE:
        raise UserError(STALE_BUTTON)
    require_owner(interaction, job.user_id)
    return job


# -- a job in progress: ❌ ----------------------------------------------------------


async def cancel(interaction: discord.Interaction, bot: Tastemaker, job_id: str) -> None:
    record = await db_jobs.get_job(bot.db, job_id)
    if record is None:
        raise UserError(STALE_BUTTON)
    require_owner(interaction, record.user_id)
    if record.state.terminal or not await bot.queue.cancel(record.id):
        await interaction.response.send_message("That job has already finished.", ephemeral=True)
        return
    await interaction.response.send_message("Cancelled. The message updates in a moment.", ephemeral=True)
    await bot.delivery.poke()


# -- a prompt that makes several jobs: Yes / No ------------------------------------

PENDING_GONE = "This question has expired or was already answered: run /imagine again."


async def confirm_prompt(interaction: discord.Interaction, bot: Tastemaker, pending_id: int, yes: bool) -> None:
    """Yes queues every job of the stored prompt (all checked first, so it is all or
    nothing); No forgets it. Either answer is used once."""
    asked = await pending.get(bot.db, pending_id)
    if asked is None:
        raise UserError(PENDING_GONE)
    require_owner(interaction, asked.user_id)
    if asked.guild_id != interaction.guild_id:  # the question was private to where it was asked
        raise UserError(STALE_BUTTON)
    if not yes:
        if not await pending.take(bot.db, asked.id):
            raise UserError(PENDING_GONE)
        await interaction.response.edit_message(content="Cancelled: nothing was queued.", view=None)
        return
    user_id, guild_id = interaction.user.id, interaction.guild_id
    batch = [
        await generation.prepare_imagine(bot, user_id, guild_id, prompt, reroll=asked.reroll)
        for prompt, repeat in asked.prompts
        for _ in range(repeat)
    ]
    extra_room = await generation.batch_room(bot, interaction, len(batch), images=sum(p.images for p in batch))
    if not await pending.take(bot.db, asked.id):  # a second click while the first was preparing
        raise UserError(PENDING_GONE)
    await interaction.response.edit_message(content=f"Queued {len(batch)} jobs.", view=None)
    for n, prepared in enumerate(batch):
        prepared.extra_room = extra_room
        await generation.start(bot, interaction, prepared)
        if n == 0 and asked.reroll_of is not None:  # a 🔄 that asked first: its first job records the reroll
            await _record_use(bot, user_id, "reroll", asked.reroll_of, next_job_id=prepared.job.id)


# -- /rank: ◀ Left · Skip · Right ▶ ----------------------------------------------


async def vote(interaction: discord.Interaction, bot: Tastemaker, pair_id: int, choice: str) -> None:
    """Record the vote, then show the next pair of the same profile in place, with
    what was just compared: one edit per click."""
    user_id = interaction.user.id
    if not await profiles.answer_pair(bot.db, user_id, pair_id, choice):
        pair = await db_taste.get_rank_pair(bot.db, pair_id)
        if pair is None or pair.user_id != user_id:  # /rank pairs are private: a forged id
            raise UserError(STALE_BUTTON)
        await interaction.response.send_message("That pair is already counted; vote on the newest one.", ephemeral=True)
        return
    answered = await profiles.answered(bot.db, user_id, pair_id)
    name = answered.profile if answered is not None else None
    await show_next_pair(interaction, bot, replace=True, profile_name=name, answered=answered)


async def show_next_pair(
    interaction: discord.Interaction,
    bot: Tastemaker,
    *,
    replace: bool,
    profile_name: str | None = None,
    answered: profiles.Answered | None = None,
) -> None:
    """Choose the next pair of the profile (the main one unless named; active
    learning) and show it with its prompt: a fresh ephemeral message for /rank,
    or in place of the answered pair after a vote, saying what was chosen."""
    user_id = interaction.user.id
    pair = await profiles.next_pair(bot.db, user_id, np.random.default_rng(), profile_name=profile_name)
    if pair is None:
        raise UserError(profiles.NO_POOL_MESSAGE)
    data_dir = Path(bot.settings.data_dir)
    left, right = await asyncio.gather(
        asyncio.to_thread((data_dir / pair.left_path).read_bytes),
        asyncio.to_thread((data_dir / pair.right_path).read_bytes),
    )
    composite = await asyncio.to_thread(posting.side_by_side, left, right, interaction.filesize_limit)
    content = await rank_header(bot, user_id, pair, answered)
    file = discord.File(io.BytesIO(composite), filename=f"pair_{pair.id}.jpg")
    view = bot.views.pair(pair.id)
    if replace:
        await interaction.response.edit_message(content=content, attachments=[file], view=view)
    else:
        await interaction.response.send_message(content, file=file, view=view, ephemeral=True)


def _md(text: str) -> str:
    return discord.utils.escape_markdown(text)


def format_progress(value: float) -> str:
    """Vote-equivalents as a member reads them: 3, 3.5, 3.25."""
    return f"{round(value, 2):g}"


def answered_line(answered: profiles.Answered) -> str:
    """What the member just compared: "You chose **watercolor** over **neon noir**."."""
    left, right = _md(answered.left_style), _md(answered.right_style)
    if answered.choice == "skip":
        return f"Skipped: {left} vs {right}."
    won, lost = (left, right) if answered.choice == "left" else (right, left)
    return f"You chose **{won}** over **{lost}**."


async def rank_header(bot: Tastemaker, user_id: int, pair: profiles.Pair, answered: profiles.Answered | None = None) -> str:
    """The pair's message: what was just compared, the profile's progress (the main
    profile's in vote-equivalents: votes, likes and signals from use), the prompt."""
    unlock = bot.settings.unlock_votes
    main = pair.profile == profiles.MAIN_PROFILE
    name = None if main else pair.profile
    progress = await profiles.progress(bot.db, user_id) if main else float(pair.votes)
    voted = answered is not None and answered.choice != "skip"
    lines = [answered_line(answered)] if answered is not None else []
    ranking = "" if main else f"Ranking **{_md(pair.profile)}** · "
    if progress < unlock:
        lines.append(f"{ranking}{format_progress(progress)}/{unlock} to unlock{' your profile' if main else ''}")
    elif voted and progress - 1 < unlock:  # this vote unlocked it
        code = await profiles.current_code(bot.db, user_id, unlock, profile_name=name)
        if main:
            lines.append(f"🎉 **Your profile is unlocked!** Your code is `{code}`: add `--p` to a prompt to use your taste.")
        else:
            lines.append(
                f"🎉 **{_md(pair.profile)}** is unlocked! Its code is `{code}`: add `--p {code}` to a prompt, "
                "or mix it into a bare `--p` with `/profile default`."
            )
        lines.append(f"{ranking}Keep ranking to sharpen it · {pair.votes} votes")
    elif main:
        lines.append(f"{pair.votes} votes · profile unlocked (`--p`)")
    else:
        lines.append(f"{ranking}{pair.votes} votes · unlocked (`/profile list` shows its code)")
    lines.append(f"**Which image do you prefer?** · *{_md(pair.prompt)}*")
    return "\n".join(lines)


# -- /settings: the panel's buttons ------------------------------------------------


async def change_setting(interaction: discord.Interaction, bot: Tastemaker, user_id: int, action: str) -> None:
    """A toggle flips, a stylize level is set; the panel is re-rendered from the database."""
    if interaction.user.id != user_id:
        raise UserError("These are someone else's settings. Run `/settings` to change yours.")
    prefs = await members.get_settings(bot.db, user_id)
    if action.startswith("stylize_"):
        changes = {"stylize": STYLIZE_LEVELS[action.removeprefix("stylize_")]}
    else:
        turn_on = not getattr(prefs, action)
        if action == "personalize" and turn_on:
            await check_can_personalize(bot, user_id)
        changes = {action: turn_on}
    prefs = await members.update_settings(bot.db, user_id, **changes)
    content = describe(prefs, await default_mix(bot, user_id))
    await interaction.response.edit_message(content=content, view=bot.views.settings(user_id, prefs))


MIX_HELP = "Write profiles as `main portraits::2` (weight 1 unless given); put a name with spaces in quotes."


def parse_mix(text: str) -> list[tuple[str, float]]:
    """A mix as a member writes it, `main portraits::2` (commas allowed, a name with
    spaces in quotes), as (name, weight) pairs; UserError when malformed. Names
    and weight ranges are checked against the member's profiles by profiles.set_defaults."""
    try:
        tokens = shlex.split(text.replace(",", " "))
    except ValueError:
        raise UserError(f"`{text[:100]}` has a quote that isn't closed. {MIX_HELP}") from None
    if not tokens:
        raise UserError(f"Name at least one profile. {MIX_HELP}")
    picks = []
    for token in tokens:
        name, sep, weight = token.rpartition("::")
        if not sep:
            name, weight = token, "1"
        name = name.strip()
        if not name:
            raise UserError(f"`{token[:60]}`: a weight needs a profile name before `::`. {MIX_HELP}")
        try:
            picks.append((name, float(weight)))
        except ValueError:
            raise UserError(f"`{token[:60]}`: the weight after `::` must be a number. {MIX_HELP}") from None
    return picks


async def default_mix(bot: Tastemaker, user_id: int) -> list[tuple[str, float]]:
    """What a bare `--p` mixes: the member's default profiles and weights, or their main profile."""
    mix = [(p.name, float(p.default_weight)) for p in await db_taste.list_profiles(bot.db, user_id) if p.default_weight is not None]
    return mix or [(profiles.MAIN_PROFILE, 1.0)]


def mix_text(mix: list[tuple[str, float]], codes: dict[str, str] | None = None) -> str:
    """**main** ×1 + **portraits** ×2 (with each one's code when given)."""
    if len(mix) == 1 and mix[0][0] == profiles.MAIN_PROFILE and mix[0][1] == 1:
        only = f"your **{profiles.MAIN_PROFILE}** profile"
        return only + (f" (`{codes[profiles.MAIN_PROFILE]}`)" if codes and profiles.MAIN_PROFILE in codes else "")
    parts = []
    for name, weight in mix:
        code = f" (`{codes[name]}`)" if codes and name in codes else ""
        parts.append(f"**{_md(name)}** ×{weight:g}{code}")
    return " + ".join(parts)


async def check_can_personalize(
    bot: Tastemaker, user_id: int, mix: list[tuple[str, float]] | None = None
) -> dict[str, str]:
    """Personalization needs a rank pool and every profile of the mix (the member's
    default mix unless given) unlocked, with a code. Returns each one's current
    code by name; UserError otherwise."""
    if await profiles.current_basis(bot.db) is None:
        raise UserError(
            f"Personalization isn't available yet: {profiles.NO_POOL_MESSAGE} "
            "Then rank pairs with `/rank` to unlock your profile."
        )
    codes: dict[str, str] = {}
    for name, _ in mix if mix is not None else await default_mix(bot, user_id):
        named = None if name.strip().lower() == profiles.MAIN_PROFILE else name
        try:
            codes[name] = await profiles.current_code(bot.db, user_id, bot.settings.unlock_votes, profile_name=named)
        except profiles.TasteError as error:
            raise UserError(f"{error} Then turn personalization on.") from None
    return codes


def describe(prefs: members.MemberSettings, mix: list[tuple[str, float]] | None = None) -> str:
    """The panel's text: every setting in one glance (and the default mix, when given)."""
    level = next((name for name, value in STYLIZE_LEVELS.items() if value == prefs.stylize), None)
    stylize = f"`--s {prefs.stylize}`"
    if level:
        stylize = f"{STYLIZE_LABELS[level].removeprefix('Stylize ')} ({stylize})"
    lines = [
        "**Your /imagine settings**",
        f"Personalization: **{'on' if prefs.personalize else 'off'}**"
        + (" (every prompt gets `--p` unless it names codes)" if prefs.personalize else ""),
    ]
    if mix is not None:
        lines.append(f"A bare `--p` uses {mix_text(mix)} (`/prefer personalize on profiles:…` changes it)")
    lines += [
        f"Stylize: **{stylize}** (used when a prompt has no `--s`)",
        f"Remix mode: **{'on' if prefs.remix else 'off'}**" + (" (V and 🔄 let you edit the prompt first)" if prefs.remix else ""),
        f"Auto DM: **{'on' if prefs.auto_dm else 'off'}**",
        f"Learn from use: **{'on' if prefs.learn_from_use else 'off'}**"
        + (" (U, V and 🔄 on your own grids teach your main profile)" if prefs.learn_from_use else ""),
    ]
    if prefs.suffix:
        lines.append(f"Suffix: `{prefs.suffix}` (change it with `/prefer suffix`)")
    return "\n".join(lines)
