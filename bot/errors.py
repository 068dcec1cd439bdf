"""One error path: member mistakes become ephemeral messages, bugs get an id.

Slash commands reach it through TastemakerTree.on_error; buttons and modals
call reply_error() from their base classes (bot/views/base.py).
"""

from __future__ import annotations

import logging
import secrets
import time
import weakref

import discord
from discord import app_commands

from bot.ids import role_ids
from engine.db.web import remember_member as _store_member
from engine.params import ParamError
from engine.profiles import TasteError

log = logging.getLogger("bot.errors")


# interaction.extras key: its public answer is a placeholder for a job not yet queued
# (generation.answer_first), removed when the request fails.
PLACEHOLDER = "tastemaker_placeholder"


class UserError(Exception):
    """Something the member can fix. The message is shown to them as is."""


def _member_message(error: BaseException) -> str | None:
    while isinstance(error, (app_commands.CommandInvokeError, app_commands.TransformerError)) and error.__cause__:
        error = error.__cause__
    if isinstance(error, UserError | ParamError | TasteError):
        return str(error)
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.0f}s."
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You can't use this command here."
    return None


async def reply_error(interaction: discord.Interaction, error: BaseException) -> None:
    message = _member_message(error)
    if message is None:
        error_id = secrets.token_hex(4)
        command = interaction.command.qualified_name if interaction.command else interaction.data.get("custom_id")
        log.error(
            "error %s in %s (user %s, guild %s, channel %s)",
            error_id, command, interaction.user.id, interaction.guild_id, interaction.channel_id,
            exc_info=error,
        )
        message = f"Sorry, something went wrong on our side (error `{error_id}`). The server owner can find it in the log."
    try:
        if interaction.extras.pop(PLACEHOLDER, False):  # the public "(Waiting to start)" goes; the reason is private
            try:
                await interaction.delete_original_response()
            except discord.HTTPException:
                log.warning("could not remove the placeholder of user %s's request", interaction.user.id)
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell user %s about an error: %s", interaction.user.id, message)


class TastemakerTree(app_commands.CommandTree):
    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Every slash command passes here: remember which servers each member uses the
        bot in, and their roles there (the bot has no members intent), for the web
        companion's Explore and the role quotas of jobs it queues."""
        if interaction.guild_id is not None:
            try:
                await remember_member(interaction)
            except Exception:  # never in the member's way
                log.exception("could not record membership of user %s in guild %s", interaction.user.id, interaction.guild_id)
        return True

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await reply_error(interaction, error)


# Per database: (user, guild, roles) -> when last written; once an hour is enough, and at once when roles change.
_remembered: weakref.WeakKeyDictionary[object, dict[tuple, float]] = weakref.WeakKeyDictionary()


async def remember_member(interaction: discord.Interaction) -> None:
    db = interaction.client.db
    seen = _remembered.setdefault(db, {})
    roles = role_ids(interaction.user)
    key = (interaction.user.id, interaction.guild_id, roles)
    now = time.monotonic()
    if now - seen.get(key, -3600.0) < 3600:
        return
    guild_name = interaction.guild.name if interaction.guild is not None else ""
    await _store_member(db, interaction.user.id, interaction.guild_id, interaction.user.display_name, guild_name,
                        roles=roles)
    seen[key] = now
