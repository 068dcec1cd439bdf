"""/explore in Discord: a private 2×2 of the server's most liked images, or For
you, with ❤️1–4 and ▶ next. The same listing as the web's Explore (bot/web/gallery.py);
likes go through flows.like like any other ❤️."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from bot import flows
from bot.errors import UserError
from bot.web import gallery
from engine import posting
from engine.db import jobs as db_jobs

if TYPE_CHECKING:
    from bot.app import Tastemaker

PER_PAGE = 4
DISCORD_ORDERS = ("top", "foryou")


async def show(interaction: discord.Interaction, bot: Tastemaker, order: str, page: int, *, replace: bool) -> None:
    if interaction.guild_id is None:
        raise UserError("/explore shows a server's images: use it in a server.")
    if order not in DISCORD_ORDERS:
        raise UserError("Explore orders are `top` (most liked) and `foryou`.")
    # 1. The page (one more image tells whether ▶ has somewhere to go); past the end, start over.
    found, personal = await gallery.page(bot.db, interaction.user.id, [interaction.guild_id], order, page * PER_PAGE, PER_PAGE + 1)
    if not found and page > 0:
        page = 0
        found, personal = await gallery.page(bot.db, interaction.user.id, [interaction.guild_id], order, 0, PER_PAGE + 1)
    if not found:
        raise UserError("This server has no images yet: make some with `/imagine`.")
    shown, more = found[:PER_PAGE], len(found) > PER_PAGE or page > 0
    # 2. One 2×2 picture of them, numbered like the ❤️ buttons.
    data_dir = Path(bot.settings.data_dir)
    paths = [data_dir / image.path for image in await asyncio.gather(*(_record(bot, s.id) for s in shown))]
    pngs = await asyncio.gather(*(asyncio.to_thread(path.read_bytes) for path in paths))
    picture = await asyncio.to_thread(posting.make, pngs, [], interaction.filesize_limit)
    # 3. What each one is.
    title = gallery.ORDERS[order] + ("" if personal else " (no rank pool yet: newest first)")
    lines = [f"**{title}** in this server · page {page + 1}"]
    for n, image in enumerate(shown, start=1):
        prompt = image.prompt if len(image.prompt) <= 90 else image.prompt[:89] + "…"
        lines.append(f"**{n}.** {prompt} · <@{image.user_id}> · ❤️ {image.likes}")
    file = discord.File(io.BytesIO(picture.data), filename=f"explore_{order}_{page}_{picture.filename}")
    view = bot.views.explore(order, page, interaction.user.id, [(n, s.id) for n, s in enumerate(shown, start=1)], more)
    if replace:
        await interaction.response.edit_message(content="\n".join(lines), attachments=[file], view=view)
    else:
        await interaction.response.send_message("\n".join(lines), file=file, view=view, ephemeral=True)


async def _record(bot: Tastemaker, image_id: int) -> db_jobs.ImageRecord:
    return await db_jobs.get_image(bot.db, image_id)


async def next_page(interaction: discord.Interaction, bot: Tastemaker, order: str, page: int, owner_id: int) -> None:
    if interaction.user.id != owner_id:
        raise UserError("This is someone else's /explore. Run `/explore` to browse yourself.")
    await show(interaction, bot, order, page, replace=True)


async def like(interaction: discord.Interaction, bot: Tastemaker, image_id: int) -> None:
    """❤️ n: only an image of this server (a forged id for another's is refused)."""
    if interaction.guild_id is None or await gallery.get_visible(bot.db, interaction.user.id, [interaction.guild_id], image_id) is None:
        raise UserError("That image is not one of this server's.")
    await flows.like(interaction, bot, image_id)
