"""/prefer (custom options, suffix, auto DM, remix, personalization and its mix of profiles, learning from use)
and the /settings panel."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import Tastemaker
from bot.errors import UserError
from bot.flows import (
    MIX_HELP,
    check_can_personalize,
    default_mix,
    describe,
    mix_text,
    parse_mix,
)
from bot.views.settings import settings_view
from engine import params, profiles
from engine.db import members
from engine.params import MAX_OPTION_VALUE, ParamError
from engine.presets import PRESETS

MAX_OPTIONS = 20  # per member, as in Midjourney
MAX_SUFFIX = MAX_OPTION_VALUE
OnOff = Literal["on", "off"]


class Prefer(commands.GroupCog, group_name="prefer", group_description="Your defaults for /imagine"):
    option = app_commands.Group(name="option", description="Your own --options that expand in prompts")

    def __init__(self, bot: Tastemaker):
        self.bot = bot
        super().__init__()

    # -- custom options ------------------------------------------------------------

    @option.command(name="set", description="Create or change an option: --NAME expands to VALUE in your prompts")
    @app_commands.describe(
        name="The option's name, used as --name (letters, digits, _ and -)",
        value="What it expands to, e.g. watercolor --ar 3:2 --s 250",
    )
    async def option_set(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 40],
        value: app_commands.Range[str, 1, MAX_OPTION_VALUE],
    ) -> None:
        user_id = interaction.user.id
        name = params.validate_option_name(name)
        try:
            value = params.validate_option_value(value, PRESETS)
        except ParamError as error:
            raise UserError(f"The value for `--{name}` isn't valid: {error}") from None
        options = await members.get_options(self.bot.db, user_id)
        if name not in options and len(options) >= MAX_OPTIONS:
            raise UserError(
                f"You already have {len(options)} options, the most allowed is {MAX_OPTIONS}. "
                "Delete one with `/prefer option delete` first."
            )
        await members.set_option(self.bot.db, user_id, name, value)
        verb = "changed" if name in options else "saved"
        await interaction.response.send_message(
            f"Option `--{name}` {verb}: it expands to `{value}`. Try `/imagine a fox --{name}`.", ephemeral=True
        )

    @option.command(name="list", description="Show your custom options")
    async def option_list(self, interaction: discord.Interaction) -> None:
        options = await members.get_options(self.bot.db, interaction.user.id)
        if not options:
            text = "You have no custom options yet. Make one with `/prefer option set name:mine value:watercolor --ar 3:2`."
        else:
            lines = [f"**Your options** ({len(options)}/{MAX_OPTIONS})"]
            lines += [f"`--{name}` → `{value}`" for name, value in options.items()]
            text = "\n".join(lines)
        await interaction.response.send_message(text, ephemeral=True)

    @option.command(name="delete", description="Delete one of your custom options")
    @app_commands.describe(name="The option to delete")
    async def option_delete(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 40]) -> None:
        user_id = interaction.user.id
        key = name.strip().removeprefix("--").lower()
        options = await members.get_options(self.bot.db, user_id)
        if key not in options:
            known = ", ".join(f"`--{n}`" for n in options) or "none"
            raise UserError(f"You have no option `--{key}`. Your options: {known}.")
        await members.set_option(self.bot.db, user_id, key, None)
        await interaction.response.send_message(f"Option `--{key}` deleted.", ephemeral=True)

    @option_delete.autocomplete("name")
    async def _option_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        options = await members.get_options(self.bot.db, interaction.user.id)
        typed = current.strip().removeprefix("--").lower()
        return [app_commands.Choice(name=f"--{n}", value=n) for n in options if typed in n][:25]

    # -- suffix and toggles --------------------------------------------------------

    @app_commands.command(description="Text and parameters added to the end of every prompt (leave empty to clear)")
    @app_commands.describe(value="e.g. --s 250 --ar 3:2; leave it out to clear your suffix")
    async def suffix(
        self, interaction: discord.Interaction, value: app_commands.Range[str, 0, MAX_SUFFIX] | None = None
    ) -> None:
        user_id = interaction.user.id
        value = " ".join((value or "").split())
        if not value:
            await members.update_settings(self.bot.db, user_id, suffix="")
            await interaction.response.send_message("Suffix cleared.", ephemeral=True)
            return
        if len(value) > MAX_SUFFIX:
            raise UserError(f"Your suffix is {len(value)} characters long; the limit is {MAX_SUFFIX}.")
        options = await members.get_options(self.bot.db, user_id)
        try:
            params.parse(params.expand("x", options, value), PRESETS)
        except ParamError as error:
            raise UserError(f"That suffix isn't valid: {error}") from None
        await members.update_settings(self.bot.db, user_id, suffix=value)
        await interaction.response.send_message(
            f"Suffix set: `{value}` is added to every prompt. Parameters you type in a prompt win over it.",
            ephemeral=True,
        )

    @app_commands.command(name="auto_dm", description="DM you a link when your images are ready")
    async def auto_dm(self, interaction: discord.Interaction, value: OnOff) -> None:
        await members.update_settings(self.bot.db, interaction.user.id, auto_dm=value == "on")
        text = "Auto DM is on: I'll DM you when your images are ready." if value == "on" else "Auto DM is off."
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(description="Remix mode: V and 🔄 let you edit the prompt before they run")
    async def remix(self, interaction: discord.Interaction, value: OnOff) -> None:
        await members.update_settings(self.bot.db, interaction.user.id, remix=value == "on")
        text = (
            "Remix mode is on: V1–V4 and 🔄 open your prompt for editing first."
            if value == "on"
            else "Remix mode is off."
        )
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(description="Add --p (your taste profiles, mixed) to every prompt; alone, show your mix")
    @app_commands.rename(mix="profiles")
    @app_commands.describe(
        value="on: every prompt gets --p; off: only prompts you add it to. Leave out to see your settings",
        mix="The profiles a bare --p mixes, e.g. main portraits::2 (quote names with spaces); leave out to keep yours",
    )
    async def personalize(
        self,
        interaction: discord.Interaction,
        value: OnOff | None = None,
        mix: app_commands.Range[str, 1, 300] | None = None,
    ) -> None:
        user_id = interaction.user.id
        prefs = await members.get_settings(self.bot.db, user_id)
        if value is None and mix is None:
            await interaction.response.send_message(await self.current(user_id, prefs.personalize), ephemeral=True)
            return
        picks = parse_mix(mix) if mix is not None else None
        turn_on = prefs.personalize if value is None else value == "on"
        codes = await check_can_personalize(self.bot, user_id, picks) if turn_on else {}
        if picks is not None:
            try:
                stored = await profiles.set_defaults(self.bot.db, user_id, picks)
            except profiles.TasteError as error:
                raise UserError(f"{error} {MIX_HELP}") from None
            codes = {stored_name: codes[typed] for (typed, _), (stored_name, _) in zip(picks, stored, strict=True) if typed in codes}
        if value is not None:
            await members.update_settings(self.bot.db, user_id, personalize=turn_on)
        mix_now = await default_mix(self.bot, user_id)
        if not turn_on:
            text = "Personalization is off. You can still add `--p` to a single prompt"
            text += f"; a bare `--p` uses {mix_text(mix_now)}." if picks is not None else "."
        elif mix_now == [(profiles.MAIN_PROFILE, 1.0)] and profiles.MAIN_PROFILE in codes:
            text = (
                f"Personalization is on: every prompt gets `--p` (your current code is `{codes[profiles.MAIN_PROFILE]}`) "
                "unless it names codes itself. `--s` sets how strongly, and `--s 0` turns it off for one prompt."
            )
        else:
            text = (
                f"Personalization is on: every prompt gets `--p`, which mixes {mix_text(mix_now, codes)}, unless it "
                "names codes itself. `--s` sets how strongly, and `--s 0` turns it off for one prompt."
            )
        await interaction.response.send_message(text, ephemeral=True)

    async def current(self, user_id: int, on: bool) -> str:
        mix = mix_text(await default_mix(self.bot, user_id))
        if on:
            return (
                f"Personalization is **on**: every prompt without codes of its own gets `--p`, which uses {mix}. "
                "`/prefer personalize on profiles:main portraits::2` changes the mix."
            )
        return (
            f"Personalization is **off**. A bare `--p` uses {mix}. `/prefer personalize on` adds it to every prompt; "
            "`profiles:main portraits::2` sets the mix."
        )

    @app_commands.command(name="learn_from_use", description="Let U, V and 🔄 on your own grids teach your main profile")
    @app_commands.describe(value="on: your choices while creating teach your taste; off: only /rank votes and likes do")
    async def learn_from_use(self, interaction: discord.Interaction, value: OnOff) -> None:
        await members.update_settings(self.bot.db, interaction.user.id, learn_from_use=value == "on")
        if value == "on":
            text = (
                "Learning from use is on: U, V and 🔄 on your own grids teach your main profile (a U picks that image "
                "over the other three, a V is a weaker pick, a 🔄 a weak \"none of these\"). They count toward "
                "unlocking it too: a U as half a vote, a V or 🔄 as a quarter."
            )
        else:
            text = (
                "Learning from use is off: U, V and 🔄 no longer teach your main profile, and the signals already "
                "recorded are not used (your profile and unlock count go back to /rank votes and likes). "
                "Turn it on again to use them."
            )
        await interaction.response.send_message(text, ephemeral=True)


class Settings(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot

    @app_commands.command(description="Your /imagine settings as buttons: personalization, stylize, remix, auto DM, learning")
    async def settings(self, interaction: discord.Interaction) -> None:
        user_id = interaction.user.id
        prefs = await members.get_settings(self.bot.db, user_id)
        await interaction.response.send_message(
            describe(prefs, await default_mix(self.bot, user_id)), view=settings_view(user_id, prefs), ephemeral=True
        )


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Prefer(bot))
    await bot.add_cog(Settings(bot))
