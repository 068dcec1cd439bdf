"""◀ Left · Skip · Right ▶ under a /rank pair."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import discord
import numpy as np

from bot import render
from bot.errors import UserError
from bot.views.base import PersistentButton, persistent_view
from engine import profiles

BUTTONS = {
    "left": ("◀ Left", discord.ButtonStyle.primary),
    "skip": ("Skip", discord.ButtonStyle.secondary),
    "right": ("Right ▶", discord.ButtonStyle.primary),
}


class RankButton(PersistentButton, template=r"tm:rank:(?P<choice>left|skip|right):(?P<pair>\d+)"):
    def __init__(self, choice: str, pair_id: int):
        label, style = BUTTONS[choice]
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"tm:rank:{choice}:{pair_id}"))
        self.choice, self.pair_id = choice, pair_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["choice"], int(match["pair"]))

    async def clicked(self, interaction, bot) -> None:
        if not await profiles.answer_pair(bot.db, interaction.user.id, self.pair_id, self.choice):
            await interaction.response.send_message(
                "That pair is already counted; vote on the newest one.", ephemeral=True
            )
            return
        await show_next_pair(interaction, bot, replace=True)


async def show_next_pair(interaction: discord.Interaction, bot, *, replace: bool) -> None:
    """Choose the next pair (active learning) and show it: a fresh ephemeral
    message for /rank, or in place of the answered pair after a click."""
    user_id = interaction.user.id
    pair = await profiles.next_pair(bot.db, user_id, np.random.default_rng())
    if pair is None:
        raise UserError(profiles.NO_POOL_MESSAGE)
    data_dir = Path(bot.settings.data_dir)
    left, right = await asyncio.gather(
        asyncio.to_thread((data_dir / pair.left_path).read_bytes),
        asyncio.to_thread((data_dir / pair.right_path).read_bytes),
    )
    composite = await asyncio.to_thread(render.side_by_side, left, right)
    content = await rank_header(bot, user_id, pair.votes)
    file = discord.File(io.BytesIO(composite), filename=f"pair_{pair.id}.png")
    view = persistent_view(*(RankButton(choice, pair.id) for choice in BUTTONS))
    if replace:
        await interaction.response.edit_message(content=content, attachments=[file], view=view)
    else:
        await interaction.response.send_message(content, file=file, view=view, ephemeral=True)


async def rank_header(bot, user_id: int, votes: int) -> str:
    unlock = bot.settings.unlock_votes
    if votes < unlock:
        return f"**Which image do you prefer?** · {votes}/{unlock} to unlock your profile"
    if votes == unlock:
        code = await profiles.current_code(bot.db, user_id, unlock)
        return (
            f"🎉 **Your profile is unlocked!** Your code is `{code}`: add `--p` to a prompt to use your taste.\n"
            f"Keep ranking to sharpen it. **Which image do you prefer?** · {votes} votes"
        )
    return f"**Which image do you prefer?** · {votes} votes · profile unlocked (`--p`)"
