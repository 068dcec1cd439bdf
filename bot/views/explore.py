"""❤️1–4 and ▶ under a private /explore page."""

from __future__ import annotations

import re

import discord

from bot import flows_explore
from bot.ids import ROW_ID, USER_ID
from bot.views.base import PersistentButton, persistent_view


class ExploreLikeButton(PersistentButton, template=rf"tm:explore:like:(?P<slot>[1-4]):(?P<image>{ROW_ID})"):
    def __init__(self, slot: int, image_id: int):
        super().__init__(discord.ui.Button(
            label=str(slot), emoji="❤️", style=discord.ButtonStyle.secondary, custom_id=f"tm:explore:like:{slot}:{image_id}"
        ))
        self.image_id = image_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(int(match["slot"]), int(match["image"]))

    async def clicked(self, interaction, bot) -> None:
        await flows_explore.like(interaction, bot, self.image_id)


class ExploreNextButton(PersistentButton, template=rf"tm:explore:next:(?P<order>top|foryou):(?P<page>[0-9]{{1,6}}):(?P<user>{USER_ID})"):
    def __init__(self, order: str, page: int, user_id: int):
        super().__init__(discord.ui.Button(
            label="Next", emoji="▶️", style=discord.ButtonStyle.primary, custom_id=f"tm:explore:next:{order}:{page}:{user_id}"
        ))
        self.order, self.page, self.user_id = order, page, user_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["order"], int(match["page"]), int(match["user"]))

    async def clicked(self, interaction, bot) -> None:
        await flows_explore.next_page(interaction, bot, self.order, self.page, self.user_id)


def explore_view(order: str, page: int, user_id: int, slots: list[tuple[int, int]], more: bool) -> discord.ui.View:
    items: list[discord.ui.Item] = [ExploreLikeButton(slot, image_id) for slot, image_id in slots]
    if more:
        items.append(ExploreNextButton(order, page + 1, user_id))
    return persistent_view(*items)
