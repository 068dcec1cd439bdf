"""/delete: a member deletes one of their jobs. Members leaving a server (with the Server
Members intent) and the bot being removed from one start the retention of their images;
coming back cancels it (bot/retention.py, engine/db/retention.py)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot import render, retention
from bot.app import Tastemaker
from bot.cogs.show import find_own_job
from bot.errors import UserError
from engine.db import members
from engine.db import retention as db_retention


class Retention(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot

    @app_commands.command(name="delete", description="Delete one of your jobs: its images leave Explore, likes and taste")
    @app_commands.describe(job="The job id at the end of its message, like 1a2b3c4d")
    async def delete(self, interaction: discord.Interaction, job: app_commands.Range[str, 1, 64]) -> None:
        record = await find_own_job(self.bot, interaction, job, "/delete")
        if not record.state.terminal:
            raise UserError(f"Job `{render.short_id(record.id)}` is still going: cancel it with ❌ on its message first.")
        images = await retention.delete(self.bot.db, record.id)
        await retention.scrub(self.bot, record)
        days = retention.kept_days(self.bot, await members.get_guild(self.bot.db, interaction.guild_id))
        when = "at the next sweep (within minutes)" if days == 0 else f"after {days} day{'s' if days != 1 else ''}"
        await interaction.response.send_message(
            f"Deleted job `{render.short_id(record.id)}`: its {images} image{'s' if images != 1 else ''} left Explore, "
            f"the likes on them went (the likers' tastes stop counting them), and so did your U, V and 🔄 on it. "
            f"Its files are removed {when}, as this server keeps them.", ephemeral=True,
        )

    @commands.Cog.listener()
    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        await db_retention.record_departure(self.bot.db, payload.guild_id, payload.user.id)

    @commands.Cog.listener()
    async def on_member_join(self, member: discord.Member) -> None:
        await db_retention.cancel_departure(self.bot.db, member.guild.id, member.id)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await db_retention.record_departure(self.bot.db, guild.id, db_retention.WHOLE_SERVER)

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        await db_retention.cancel_departure(self.bot.db, guild.id, db_retention.WHOLE_SERVER)


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Retention(bot))
