"""/explore in Discord: a private 2×2 of the server's images with ❤️1–4 and ▶ next."""

from __future__ import annotations

from tests.bot.conftest import acknowledge_user_errors, run_until
from tests.bot.test_flows import post_buttons
from tests.bot.test_imagine import finished


def labels(message) -> list[str]:
    return [f"{child.emoji or ''}{child.label or ''}" for row in message.components for child in row.children]


async def test_explore_shows_the_servers_most_liked_and_likes_count(simcord_env, world, simcord_bot):
    guild, channel, alice, bob = world
    for n in range(2):
        await bob.slash(channel, "imagine", prompt=f"a glass city {n} --seed {n + 1}")
        await run_until(simcord_env, lambda: finished(channel, f"a glass city {n}"))

    # 1. Private, four images at a time, numbered as the ❤️ buttons.
    shown = await alice.slash(channel, "explore")
    assert shown.ephemeral
    message = shown.response.message
    assert "Most liked" in message.content and "page 1" in message.content
    assert len(message.attachments) == 1
    assert labels(message) == ["❤️1", "❤️2", "❤️3", "❤️4", "▶️Next"]

    # 2. ❤️ 2 likes that image for Alice, and /info counts it.
    liked = await alice.click(message, label="2")
    assert liked.ephemeral and "counts toward your taste" in liked.response.content
    info = await alice.slash(channel, "info")
    assert next(f.value for f in info.response.embeds[0].fields if f.name == "Likes") == "1"

    # 3. ▶ shows the next four; now the liked one leads page 1 ("most liked").
    page2 = await alice.click(message, label="Next")
    assert "page 2" in page2.response.message.content
    again = await alice.slash(channel, "explore")
    assert "❤️ 1" in again.response.message.content.splitlines()[1]

    # 4. Someone else's ▶ (here on a message as a forger would post it) is refused.
    forged = await post_buttons(simcord_bot, channel, [f"tm:explore:next:top:1:{alice.id}"])
    other = await bob.click(forged, custom_id=f"tm:explore:next:top:1:{alice.id}")
    assert other.ephemeral and "someone else's" in other.response.content
    acknowledge_user_errors(simcord_env)


async def test_explore_refuses_another_servers_image_by_forged_id(simcord_env, world, simcord_bot):
    guild, channel, alice, bob = world
    await bob.slash(channel, "imagine", prompt="a quiet harbour --seed 4")
    await run_until(simcord_env, lambda: finished(channel, "a quiet harbour"))
    other = simcord_env.create_guild("Elsewhere")
    elsewhere = other.create_text_channel("general")
    carol = other.add_member(simcord_env.create_user("carol"))
    shown = await alice.slash(channel, "explore")
    [(image_id,)] = await simcord_bot.db.execute_fetchall("SELECT MIN(id) FROM images")
    # Carol, in another server, clicks a ❤️ carrying that id (a forged custom_id).
    empty = await carol.slash(elsewhere, "explore")
    assert empty.ephemeral and "no images yet" in empty.response.content
    forged = await post_buttons(simcord_bot, elsewhere, [f"tm:explore:like:1:{image_id}"])
    refused = await carol.click(forged, custom_id=f"tm:explore:like:1:{image_id}")
    assert refused.ephemeral and "not one of this server's" in refused.response.content
    assert (await simcord_bot.db.execute_fetchall("SELECT COUNT(*) FROM likes"))[0][0] == 0
    assert shown.response.message.content
    acknowledge_user_errors(simcord_env)
