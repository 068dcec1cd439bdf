"""/profile create|list|default|delete: several taste profiles per member.

A member always has a main profile (what /rank, likes and signals from use
teach). Others are made with `/profile create` and taught with
`/rank profile:NAME`; moodboards and tunes are profiles too. Each profile
unlocks on its own and has its own codes. `/profile default` chooses the mix a
bare `--p` uses (as `/prefer personalize on profiles:` does). Names are per
member: another member's `portraits` is theirs alone. Deleting a profile takes
it off the list; its codes keep working.
"""

from __future__ import annotations

import math


import discord
from discord import app_commands
from discord.ext import commands

from bot.app import Tastemaker
from bot.cogs.codes import privacy_line
from bot.errors import UserError
from bot.flows import MIX_HELP, default_mix, format_progress, mix_text, parse_mix
from engine import profiles
from engine.db import members
from engine.db import taste as db_taste

MAX_MESSAGE = 1900  # Discord stops at 2000 characters


def _md(text: str) -> str:
    return discord.utils.escape_markdown(text)


class Profile(commands.GroupCog, group_name="profile", group_description="Your taste profiles: several tastes, each with its own codes"):
    def __init__(self, bot: Tastemaker):
        self.bot = bot
        super().__init__()

    # -- create ------------------------------------------------------------------------

    @app_commands.command(name="create", description="Make a new taste profile, then teach it with /rank profile:NAME")
    @app_commands.describe(name="Its name: letters, digits, spaces, - or _ (up to 32)")
    async def create(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 100]) -> None:
        try:
            made = await profiles.create_profile(self.bot.db, interaction.user.id, name)
        except profiles.TasteError as error:
            raise UserError(str(error)) from None
        unlock = self.bot.settings.unlock_votes
        privacy = "public" if made.public else "🔒 private"
        await interaction.response.send_message(
            f"Profile **{_md(made.name)}** created. Teach it with `/rank profile:{made.name}`: after {unlock} votes it "
            f"unlocks and gets its own code ({privacy}, like your main profile). Your main profile doesn't learn from "
            "those votes. `/profile default` mixes it into a bare `--p`.",
            ephemeral=True,
        )

    # -- list --------------------------------------------------------------------------

    @app_commands.command(name="list", description="Your profiles: votes, codes, privacy and your default mix")
    async def list_(self, interaction: discord.Interaction) -> None:
        user_id = interaction.user.id
        found = await profiles.list_profiles(self.bot.db, user_id)
        lines = [f"**Your profiles** ({len(found)}/{profiles.MAX_PROFILES})"]
        for summary in found:
            lines.append(await self.profile_line(user_id, summary))
        footer = [
            privacy_line(await profiles.privacy(self.bot.db, user_id)),
            f"A bare `--p` uses {mix_text(await default_mix(self.bot, user_id))}.",
            (
                "`/rank profile:NAME` teaches one; `/profile default` sets the mix; `/profile delete` removes one "
                "(its codes keep working)."
            ),
        ]
        text = _fit(lines, footer)
        await interaction.response.send_message(text, ephemeral=True)

    async def profile_line(self, user_id: int, summary: profiles.ProfileSummary) -> str:
        unlock = self.bot.settings.unlock_votes
        main = summary.name == profiles.MAIN_PROFILE
        parts = [f"**{_md(summary.name)}**"]
        if summary.kind == "votes":
            parts.append(f"{summary.votes} vote{'s' if summary.votes != 1 else ''}")
            code = summary.code
            if code is None:
                progress = await profiles.progress(self.bot.db, user_id, None if main else summary.name)
                if progress < unlock:
                    rank = "/rank" if main else f"/rank profile:{summary.name}"
                    n = math.ceil(unlock - progress)
                    parts.append(f"locked ({format_progress(progress)}/{unlock}): rank {n} more with `{rank}`")
                else:  # unlocked, never used yet: its first code
                    code = await profiles.current_code(self.bot.db, user_id, unlock, None if main else summary.name)
            if code is not None:
                parts.append(f"`{code}`")
        else:  # a moodboard or a tune: made at once, with its code
            parts.append(summary.kind)
            if summary.kind == "tune":
                parts.append(f"{summary.votes} pick{'s' if summary.votes != 1 else ''}")
            parts.append(f"`{summary.code}`" if summary.code else "no code yet")
        parts.append("public" if summary.public else "🔒 private")
        if summary.default_weight is not None:
            parts.append(f"default ×{summary.default_weight:g}")
        return " · ".join(parts)

    # -- default -----------------------------------------------------------------------

    @app_commands.command(name="default", description="The profiles a bare --p mixes, e.g. main portraits::2")
    @app_commands.rename(mix="profiles")
    @app_commands.describe(mix="Profile names, each with an optional ::weight, e.g. main portraits::2 (quote names with spaces)")
    async def default(self, interaction: discord.Interaction, mix: app_commands.Range[str, 1, 300]) -> None:
        user_id = interaction.user.id
        try:
            stored = await profiles.set_defaults(self.bot.db, user_id, parse_mix(mix))
        except profiles.TasteError as error:
            raise UserError(f"{error} {MIX_HELP}") from None
        lines = [f"A bare `--p` now uses {mix_text(stored)}."]
        locked = await self.locked(user_id, [name for name, _ in stored])
        if locked:
            lines += [*locked, "Until then a bare `--p` says so."]
        if (await members.get_settings(self.bot.db, user_id)).personalize:
            lines.append("Personalization is on, so every prompt without codes of its own uses this mix.")
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    async def locked(self, user_id: int, names: list[str]) -> list[str]:
        """Why each locked profile among names is locked, and how to unlock it."""
        unlock = self.bot.settings.unlock_votes
        hints = [await profiles.unlock_hint(self.bot.db, user_id, unlock, name) for name in names]
        return [hint for hint in hints if hint is not None]

    # -- delete ------------------------------------------------------------------------

    @app_commands.command(name="delete", description="Remove a profile from your list; its codes keep working")
    @app_commands.describe(name="The profile to delete (your main profile can't be)")
    async def delete(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 100]) -> None:
        user_id = interaction.user.id
        try:
            gone = await profiles.delete_profile(self.bot.db, user_id, name)
        except profiles.TasteError as error:
            raise UserError(str(error)) from None
        codes = [v.code for v in await db_taste.list_profile_versions(self.bot.db, user_id) if v.profile_id == gone.id]
        if codes:
            shown = ", ".join(f"`{c}`" for c in codes[:10]) + (f" and {len(codes) - 10} more" if len(codes) > 10 else "")
            kept = f"Its code{'s' if len(codes) != 1 else ''} {shown} keep{'s' if len(codes) == 1 else ''} working with `--p CODE`, and `/codes` still lists them."
        else:
            kept = "It had no code yet."
        lines = [f"Profile **{_md(gone.name)}** deleted. {kept}"]
        if gone.default_weight is not None:
            lines.append(f"It is no longer in your default mix: a bare `--p` now uses {mix_text(await default_mix(self.bot, user_id))}.")
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    # -- autocomplete ------------------------------------------------------------------

    @delete.autocomplete("name")
    async def _deletable(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        typed = current.strip().lower()
        found = await db_taste.list_profiles(self.bot.db, interaction.user.id)
        return [
            app_commands.Choice(name=f"{p.name} ({p.kind})" if p.kind != "votes" else p.name, value=p.name)
            for p in found
            if not p.is_main and typed in p.name.lower()
        ][:25]

    @default.autocomplete("mix")
    async def _mix(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """Complete the last name typed: "main por" offers "main portraits"."""
        head, _, last = current.rpartition(" ")
        typed = last.strip().strip('"').lower()
        found = await db_taste.list_profiles(self.bot.db, interaction.user.id)
        choices = []
        for p in found:
            if typed in p.name.lower():
                word = f'"{p.name}"' if " " in p.name else p.name
                value = f"{head} {word}".strip()
                if len(value) <= 100:
                    choices.append(app_commands.Choice(name=value, value=value))
        return choices[:25]


def _fit(lines: list[str], footer: list[str]) -> str:
    """The lines that fit in one message, then the footer."""
    budget = MAX_MESSAGE - sum(len(line) + 1 for line in footer)
    kept: list[str] = []
    for i, line in enumerate(lines):
        if sum(len(k) + 1 for k in kept) + len(line) + 1 > budget - 40:
            kept.append(f"… and {len(lines) - i} more.")
            break
        kept.append(line)
    return "\n".join(kept + footer)


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Profile(bot))
