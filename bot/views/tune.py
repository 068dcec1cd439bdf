"""/tune's buttons: Start under the finished tune, ◀ Left · Skip · Right ▶ and Finish in the sitting."""

from __future__ import annotations

import re

import discord

from bot import flows_tune
from bot.ids import ROW_ID
from bot.views.base import PersistentButton, persistent_view

PAIR_BUTTONS = {
    "left": ("◀ Left", discord.ButtonStyle.primary),
    "skip": ("Skip", discord.ButtonStyle.secondary),
    "right": ("Right ▶", discord.ButtonStyle.primary),
}
TUNE_BUTTONS = {
    "start": ("Start", discord.ButtonStyle.success),
    "finish": ("Finish", discord.ButtonStyle.secondary),
}


class TuneButton(PersistentButton, template=rf"tm:tune:(?P<action>start|finish):(?P<tune>{ROW_ID})"):
    """Start (on the tune's public message) and Finish (in the sitting); the id is the tune's."""

    def __init__(self, action: str, tune_id: int):
        label, style = TUNE_BUTTONS[action]
        row = 1 if action == "finish" else None
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"tm:tune:{action}:{tune_id}", row=row))
        self.action, self.tune_id = action, tune_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["action"], int(match["tune"]))

    async def clicked(self, interaction, bot) -> None:
        if self.action == "start":
            await flows_tune.start(interaction, bot, self.tune_id)
        else:
            await flows_tune.finish(interaction, bot, self.tune_id)


class TunePairButton(PersistentButton, template=rf"tm:tune:(?P<choice>left|skip|right):(?P<pair>{ROW_ID})"):
    """A pick in the sitting; the id is the tune pair's row."""

    def __init__(self, choice: str, pair_id: int):
        label, style = PAIR_BUTTONS[choice]
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"tm:tune:{choice}:{pair_id}", row=0))
        self.choice, self.pair_id = choice, pair_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["choice"], int(match["pair"]))

    async def clicked(self, interaction, bot) -> None:
        await flows_tune.pick(interaction, bot, self.pair_id, self.choice)


def start_view(tune_id: int) -> discord.ui.View:
    return persistent_view(TuneButton("start", tune_id))


def tune_pair_view(pair_id: int, tune_id: int) -> discord.ui.View:
    return persistent_view(*(TunePairButton(choice, pair_id) for choice in PAIR_BUTTONS), TuneButton("finish", tune_id))
