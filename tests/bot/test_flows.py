"""bot/flows.py through SimCord: what a click on a forged button gets."""

from __future__ import annotations

from bot.views.base import persistent_view
from bot.views.image import ImageButton
from bot.views.rank import RankButton

async def test_forged_ids_beyond_the_database_get_the_ordinary_answer(simcord_env, world, simcord_bot):
    """A custom_id is whatever the client sends: an id too big for SQLite must read
    as one that is gone, never as our internal error."""
    _, channel, alice, _ = world
    image_id, pair_id = 2**64, 10**29  # both past SQLite's 64-bit integers
    forged = persistent_view(ImageButton("like", image_id), ImageButton("vary_strong", image_id), RankButton("left", pair_id))
    message = await simcord_bot.get_channel(channel.id).send("forged", view=forged)

    for custom_id in (f"tm:image:like:{image_id}", f"tm:image:vary_strong:{image_id}"):
        result = await alice.click(message, custom_id=custom_id)
        assert result.ephemeral and result.response.content == "That image is no longer stored on this bot."
    voted = await alice.click(message, custom_id=f"tm:rank:left:{pair_id}")
    assert voted.ephemeral and voted.response.content == "That pair is already counted; vote on the newest one."
