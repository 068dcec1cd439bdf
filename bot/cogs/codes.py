"""/codes: your profile codes, and making them private or public.

Privacy is the member's choice per kind (taste: main, named profiles and tunes;
moodboards): new codes of every profile of that kind start as chosen.
`visibility` alone sets every code and every new one; with `code` it sets that
code, and making one private also makes the new codes of its kind private (so
neither a vote nor a new profile makes a private taste public again).
"""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import Tastemaker
from bot.errors import UserError
from engine import profiles

MAX_LISTED = 20  # newest first; Discord messages stop at 2000 characters


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def code_line(info: profiles.CodeInfo, current: set[str] | str | None) -> str:
    """One code: its version, what it was made from, its privacy, whether a bare `--p` (or its profile) uses it now."""
    current = {current} if isinstance(current, str) else (current or set())
    if info.kind == "moodboard":
        what = f"moodboard v{info.version} · {_plural(info.images, 'image')}"
    elif info.profile_kind == "tune":
        what = f"tune v{info.version} · {_plural(info.votes, 'pick')}"
    else:
        likes = f" + {_plural(info.likes, 'like')}" if info.likes else ""
        signals = f" + {info.signals} signal{'s' if info.signals != 1 else ''} from use" if info.signals else ""
        what = f"v{info.version} · {_plural(info.votes, 'vote')}{likes}{signals}"
    flags = ["public" if info.public else "🔒 private"]
    if info.code in current:
        flags.append("**current**")
    return f"`{info.code}` · {what} · {' · '.join(flags)} · <t:{int(info.created_at)}:R>"


PROFILE_KINDS = {"votes": "taste", "moodboard": "moodboard", "tune": "tune"}


def profile_header(name: str, kind: str, live: bool) -> str:
    """The line above a profile's codes: its name and kind (and whether it was deleted)."""
    gone = " (deleted: its codes still work)" if not live else ""
    return f"**{discord.utils.escape_markdown(name)}** · {PROFILE_KINDS.get(kind, kind)}{gone}"


def grouped_lines(found: list[profiles.CodeInfo], current: set[str], live: list[str]) -> list[str]:
    """Codes under their profile: the member's live profiles in their order (main
    first), then deleted ones; newest first within each."""
    groups: dict[tuple[str, str], list[profiles.CodeInfo]] = {}
    for info in found:
        groups.setdefault((info.profile, info.profile_kind), []).append(info)
    order = {name.lower(): i for i, name in enumerate(live)}
    keys = sorted(groups, key=lambda key: order.get(key[0].lower(), len(order)))
    lines = []
    for name, kind in keys:
        lines.append(profile_header(name, kind, name.lower() in order))
        lines += [code_line(info, current) for info in groups[(name, kind)]]
    return lines


KIND_NAMES = {"votes": "taste codes", "moodboard": "moodboards"}


def privacy_line(privacy: dict[str, bool]) -> str:
    if len(set(privacy.values())) == 1:
        return "New codes start public." if privacy["votes"] else "New codes start 🔒 private."
    return "; ".join(
        f"new {KIND_NAMES[kind]} start {'public' if public else '🔒 private'}" for kind, public in privacy.items()
    ).capitalize() + "."


class Codes(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot

    @app_commands.command(description="List your taste codes, or make them private or public")
    @app_commands.describe(
        code="One of your codes (leave out to list them all, or to change all of them)",
        visibility="private: only you can use it; public: anyone can use it with --p",
    )
    async def codes(
        self,
        interaction: discord.Interaction,
        code: app_commands.Range[str, 1, 20] | None = None,
        visibility: Literal["private", "public"] | None = None,
    ) -> None:
        user_id = interaction.user.id
        if visibility is not None and code is None:
            await self.set_all(interaction, visibility == "public")
            return
        if visibility is not None:
            await self.set_visibility(interaction, code, visibility == "public")
            return
        await self.show(interaction, user_id, code)

    async def set_visibility(self, interaction: discord.Interaction, code: str, public: bool) -> None:
        info = await profiles.set_public(self.bot.db, interaction.user.id, code, public)  # TasteError: unknown / not yours
        code, kind = info.code, KIND_NAMES[info.kind]
        if public:
            text = f"`{code}` is now public: anyone can use it with `--p {code}`."
            if not (await profiles.privacy(self.bot.db, interaction.user.id))[info.kind]:
                text += f" Your new {kind} still start private; `/codes visibility:public` makes all your codes public."
        else:
            text = (
                f"`{code}` is now private: only you can use it (`--p {code}`); others get an error. "
                f"Your new {kind} start private too; `/codes visibility:public` makes all your codes public again."
            )
        await interaction.response.send_message(text, ephemeral=True)

    async def set_all(self, interaction: discord.Interaction, public: bool) -> None:
        changed = await profiles.set_all_public(self.bot.db, interaction.user.id, public)
        if public:
            text = "All your codes are now public, and new ones will start public: anyone can use them with `--p CODE`."
        else:
            text = "All your codes are now 🔒 private, and new ones will start private: only you can use them."
        await interaction.response.send_message(f"{text} ({changed} changed.)", ephemeral=True)

    async def show(self, interaction: discord.Interaction, user_id: int, only: str | None) -> None:
        current, live = await self.current(user_id)
        found = await profiles.list_codes(self.bot.db, user_id)
        if only is not None:
            wanted = profiles.normalize_code(only)
            found = [info for info in found if info.code == wanted]
            if not found:
                raise UserError(f"`{wanted}` is not one of your codes. `/codes` lists them.")
        if not found:
            await interaction.response.send_message(await self.no_codes_text(user_id), ephemeral=True)
            return
        privacy = await profiles.privacy(self.bot.db, user_id)
        lines = [f"**Your codes** ({len(found)}, by profile, newest first) · {privacy_line(privacy)}"]
        lines += grouped_lines(found[:MAX_LISTED], current, live)
        if len(found) > MAX_LISTED:
            lines.append(f"… and {len(found) - MAX_LISTED} older codes (they all still work).")
        lines.append(
            "Use one with `--p CODE`; mix them with `--p a::2 b`. "
            "`/codes visibility:private` hides all of them from others, new ones too; "
            "`/codes code:CODE visibility:…` changes one."
        )
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    async def current(self, user_id: int) -> tuple[set[str], list[str]]:
        """Each live profile's current code (a ranked one snapshotted if it changed,
        as --p would), and the live profiles' names, main first."""
        live = await profiles.list_profiles(self.bot.db, user_id)
        current = set()
        for summary in live:
            if summary.kind != "votes":
                if summary.code:
                    current.add(summary.code)
                continue
            name = None if summary.name == profiles.MAIN_PROFILE else summary.name
            try:
                current.add(await profiles.current_code(self.bot.db, user_id, self.bot.settings.unlock_votes, name))
            except profiles.TasteError:  # locked, or no rank pool
                pass
        return current, [summary.name for summary in live]

    async def no_codes_text(self, user_id: int) -> str:
        if await profiles.current_basis(self.bot.db) is None:
            return f"You have no codes yet. {profiles.NO_POOL_MESSAGE}"
        status = await profiles.status(self.bot.db, user_id, self.bot.settings.unlock_votes)
        return (
            f"You have no codes yet: rank {status.remaining} more pairs with `/rank` to unlock your profile, "
            "or make a moodboard from images with `/moodboard create`."
        )

    @codes.autocomplete("code")
    async def _my_codes(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        typed = current.strip().lower()
        found = await profiles.list_codes(self.bot.db, interaction.user.id)
        return [
            app_commands.Choice(
                name=f"{info.code} ({info.profile} v{info.version}, {'public' if info.public else 'private'})"[:100],
                value=info.code,
            )
            for info in found
            if typed in info.code
        ][:25]


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Codes(bot))
