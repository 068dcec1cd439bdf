"""/tune's sitting: Start, ◀ Left · Skip · Right ▶, Finish (bot/views/tune.py calls these).

Everything is rebuilt from the database (engine/db/tune.py) on each click, so a
sitting survives a restart. The next pair is chosen actively, as /rank's: the
unshown pairs of the tune's renders, whitened with the current basis, scored
by engine.taste.choose_pair under the posterior of the picks so far (fitted
under the community prior). After `pairs_needed` picks (skips don't count, but
a skipped pair is never shown again) or an early Finish after MIN_PICKS, the
picks become a 'tune' profile (profiles.create_tuned_profile) and its code.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import TYPE_CHECKING

import discord
import numpy as np

from bot import render
from bot.errors import UserError
from bot.flows import STALE_BUTTON
from engine import posting, profiles, safety
from engine import taste as tm
from engine.db import members
from engine.db import taste as db_taste
from engine.db import tune as db_tune

if TYPE_CHECKING:
    from bot.app import Tastemaker

MIN_IMAGES = 4  # a tune with fewer renders kept fails
MIN_PICKS = 4  # Finish works from this many picks on


def pairs_needed(styles: int, images: int) -> int:
    """M: half the styles asked for, as Midjourney's tuner (8 for 16, 16 for 32), at most the pairs there are."""
    return max(1, min(styles // 2, images * (images - 1) // 2))


def escaped(prompt: str) -> str:
    return discord.utils.escape_markdown(prompt[: render.MAX_PROMPT_SHOWN])


async def ready_text(bot: Tastemaker, tune: db_tune.Tune) -> str:
    n = await db_tune.image_count(bot.db, tune.id)
    m = pairs_needed(tune.styles, n)
    return (
        f"Your style tune for *{escaped(tune.prompt)}* is ready: {n} styles. "
        f"Pick the one you prefer in each of {m} pairs."
    )


async def _own_tune(interaction: discord.Interaction, bot: Tastemaker, tune_id: int) -> db_tune.Tune:
    tune = await db_tune.get_tune(bot.db, tune_id)
    if tune is None:
        raise UserError(STALE_BUTTON)
    if interaction.user.id != tune.user_id:
        raise UserError(f"This is <@{tune.user_id}>'s tune. Run `/tune` to make your own.")
    if tune.state == db_tune.MADE:
        raise UserError(f"This tune is finished: its code is `{tune.code}`. Use it with `/imagine … --p {tune.code}`.")
    if tune.state == db_tune.FINISHING:
        raise UserError("This tune is being turned into a profile right now; its code appears in a moment.")
    if tune.state != db_tune.PICKING:
        raise UserError("This tune has no renders to pick from.")
    return tune


async def start(interaction: discord.Interaction, bot: Tastemaker, tune_id: int) -> None:
    """Start (or pick up again): the open pair, else the next one, in a private message."""
    tune = await _own_tune(interaction, bot, tune_id)
    pair = await db_tune.open_pair(bot.db, tune.id) or await _next_pair(bot, tune)
    if pair is None:
        raise UserError("Every pair of this tune was shown already. Press **Finish** to make your profile.")
    await _show(interaction, bot, tune, pair, replace=False)


async def pick(interaction: discord.Interaction, bot: Tastemaker, pair_id: int, choice: str) -> None:
    """◀ Left, Skip, Right ▶: record it and show the next pair in place, or make the profile after the M-th pick."""
    pair = await db_tune.get_pair(bot.db, pair_id)
    if pair is None:
        raise UserError(STALE_BUTTON)
    tune = await _own_tune(interaction, bot, pair.tune_id)
    if not await db_tune.answer_pair(bot.db, pair.id, choice):
        raise UserError("You already answered this pair; the sitting goes on in its newest message.")
    picks = await db_tune.pick_count(bot.db, tune.id)
    if picks >= pairs_needed(tune.styles, await db_tune.image_count(bot.db, tune.id)):
        await _finish(interaction, bot, tune)
        return
    following = await _next_pair(bot, tune)
    if following is None:  # every pair shown: what was picked is the tune
        if picks == 0:
            raise UserError("You skipped every pair of this tune, so there is nothing to make a profile from.")
        await _finish(interaction, bot, tune)
        return
    await _show(interaction, bot, tune, following, replace=True)


async def finish(interaction: discord.Interaction, bot: Tastemaker, tune_id: int) -> None:
    """Finish early, from MIN_PICKS picks on."""
    tune = await _own_tune(interaction, bot, tune_id)
    picks = await db_tune.pick_count(bot.db, tune.id)
    if picks < MIN_PICKS:
        raise UserError(f"Pick in at least {MIN_PICKS} pairs before finishing: you have picked {picks}.")
    await _finish(interaction, bot, tune)


async def _next_pair(bot: Tastemaker, tune: db_tune.Tune) -> db_tune.TunePair | None:
    """Choose and record the next pair: the most informative unshown one under the picks so far."""
    basis, images, z = await _renders(bot, tune)
    index = {image.id: i for i, image in enumerate(images)}
    pairs = await db_tune.pairs_of(bot.db, tune.id)
    shown = {frozenset((p.left_id, p.right_id)) for p in pairs}
    candidates = np.array(
        [(i, j) for i in range(len(images)) for j in range(i + 1, len(images))
         if frozenset((images[i].id, images[j].id)) not in shown],
        dtype=np.int64,
    ).reshape(-1, 2)
    if len(candidates) == 0:
        return None
    winners, losers = _picks(pairs, index)
    prior = await profiles.community_prior(bot.db, basis)
    posterior = tm.fit(z[winners] - z[losers], prior=prior)
    rng = np.random.default_rng()
    i, j = candidates[tm.choose_pair(posterior, z[candidates[:, 0]] - z[candidates[:, 1]], rng)]
    if rng.random() < 0.5:  # no side bias
        i, j = j, i
    pair_id = await db_tune.insert_pair(bot.db, tune.id, images[int(i)].id, images[int(j)].id)
    return await db_tune.get_pair(bot.db, pair_id)


async def _renders(bot: Tastemaker, tune: db_tune.Tune) -> tuple[tm.Basis, list[db_tune.TuneImage], np.ndarray]:
    """The current basis, the tune's renders and their whitened embeddings."""
    found = await profiles.current_basis(bot.db)
    if found is None:
        raise UserError(profiles.NO_POOL_MESSAGE)
    basis, _ = found
    images = await db_tune.images_of(bot.db, tune.id)
    return basis, images, _whitened(basis, images)


def _whitened(basis: tm.Basis, images: list[db_tune.TuneImage]) -> np.ndarray:
    if not images or any(image.embedding.shape != (basis.d,) for image in images):
        raise UserError(
            "The rank pool was rebuilt with another image model since this tune was drawn, so its renders can't be "
            "read against it. Run `/tune` again."
        )
    return basis.whiten(np.stack([image.embedding for image in images]))


def _picks(pairs: list[db_tune.TunePair], index: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the winners and losers of the tune's answered pairs (skips left out)."""
    winners, losers = [], []
    for p in pairs:
        if p.choice in ("left", "right"):
            won, lost = (p.left_id, p.right_id) if p.choice == "left" else (p.right_id, p.left_id)
            winners.append(index[won])
            losers.append(index[lost])
    return np.array(winners, dtype=np.int64), np.array(losers, dtype=np.int64)


async def _show(
    interaction: discord.Interaction, bot: Tastemaker, tune: db_tune.Tune, pair: db_tune.TunePair, *, replace: bool
) -> None:
    by_id = {image.id: image for image in await db_tune.images_of(bot.db, tune.id)}
    left, right = by_id[pair.left_id], by_id[pair.right_id]
    data_dir = Path(bot.settings.data_dir)
    try:
        pngs = await asyncio.gather(*(asyncio.to_thread((data_dir / im.path).read_bytes) for im in (left, right)))
    except OSError:
        raise UserError("This tune's renders are gone from the bot's disk. Run `/tune` again.") from None
    composite = await asyncio.to_thread(posting.side_by_side, *pngs, interaction.filesize_limit)
    # Shown again under the server's policy now, in this channel (as a result is).
    rules = await members.get_guild(bot.db, interaction.guild_id)
    is_nsfw = getattr(interaction.channel, "is_nsfw", None)
    verdicts = {safety.verdict(im.nsfw, rules.nsfw_policy, rules.nsfw_threshold, bool(is_nsfw and is_nsfw()))
                for im in (left, right)}
    if safety.Verdict.BLOCK in verdicts:
        raise UserError("This pair is withheld by this server's content filter here. Press **Skip** or try another channel.")
    n = len(by_id)
    k = await db_tune.pick_count(bot.db, tune.id) + 1
    content = (
        f"**Which style do you prefer?** · {k} / {pairs_needed(tune.styles, n)}\n"
        f"*{escaped(tune.prompt)}* · **Finish** makes your profile now, after {MIN_PICKS} picks."
    )
    file = discord.File(io.BytesIO(composite), filename=f"tune_pair_{pair.id}.jpg",
                        spoiler=safety.Verdict.SPOILER in verdicts)
    view = bot.views.tune_pair(pair.id, tune.id)
    if replace:
        await interaction.response.edit_message(content=content, attachments=[file], view=view)
    else:
        await interaction.response.send_message(content, file=file, view=view, ephemeral=True)


async def _finish(interaction: discord.Interaction, bot: Tastemaker, tune: db_tune.Tune) -> None:
    """The picks -> a 'tune' profile and its code, once (a second click finds it claimed)."""
    if not await db_tune.set_state(bot.db, tune.id, db_tune.FINISHING, expect=db_tune.PICKING):
        raise UserError("This tune is already finished or being finished.")
    try:
        _, images, z = await _renders(bot, tune)
        winners, losers = _picks(await db_tune.pairs_of(bot.db, tune.id), {im.id: i for i, im in enumerate(images)})
        name = tune.name
        if name is not None and await db_taste.find_profile(bot.db, tune.user_id, name) is not None:
            name = None  # taken since /tune (a profile made meanwhile): "tune N" rather than a tune that can't finish
        code = await profiles.create_tuned_profile(bot.db, tune.user_id, name, z[winners], z[losers])
    except BaseException:
        await db_tune.set_state(bot.db, tune.id, db_tune.PICKING, expect=db_tune.FINISHING)
        raise
    await db_tune.set_state(bot.db, tune.id, db_tune.MADE, code=code)
    info = await profiles.get_code(bot.db, code)
    name = info.profile if info else tune.name or "tune"
    await interaction.response.edit_message(
        content=(
            f"Your tune **{discord.utils.escape_markdown(name)}** is ready: code `{code}`. "
            f"Use it with `/imagine … --p {code}`; it is listed in `/profile list`."
        ),
        attachments=[],
        view=None,
    )
