"""/web: a private, signed, single-use link to the web companion (bot/web)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import Tastemaker
from bot.errors import UserError
from bot.web import auth

LINK_MINUTES = auth.LINK_TTL_S // 60


class Web(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot
        self.secret: bytes | None = None

    @app_commands.command(description="Open tastemaker in your browser: rank, explore, likes and your profile")
    async def web(self, interaction: discord.Interaction) -> None:
        settings = self.bot.settings
        if settings.web_port == 0:
            raise UserError("The web companion is turned off on this bot (TASTEMAKER_WEB_PORT=0).")
        if self.secret is None:
            secret = settings.web_secret.get_secret_value() if settings.web_secret else None
            self.secret = await auth.load_secret(self.bot.db, secret)
        token = await auth.create_login_token(self.bot.db, self.secret, interaction.user.id, interaction.user.display_name)
        url = f"{settings.web_base_url}/login?t={token}"
        view = discord.ui.View()
        view.add_item(discord.ui.Button(label="Open tastemaker", url=url, emoji="🌐"))
        await interaction.response.send_message(
            f"Your private link (single use, expires in {LINK_MINUTES} minutes; don't share it):\n{url}",
            view=view, ephemeral=True,
        )


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Web(bot))
