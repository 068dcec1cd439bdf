"""A hostile member's run through SimCord: prompt tricks, banned-word bypasses,
private and IPv4-in-IPv6 links, pings smuggled in a prompt, forged buttons.

Each trick gets a clear private answer and queues nothing, or (for pings) is
posted harmlessly; none reaches the internal-error apology.
"""

from __future__ import annotations

import pytest

from bot.flows import STALE_BUTTON
from tests.bot.conftest import acknowledge_user_errors, private_reply, custom_id, run_until
from tests.bot.test_flows import post_buttons
from tests.bot.test_imagine import finished, job_message
from tests.bot.test_prefer import job_rows, text_input_id

NO_WORKERS = {"TASTEMAKER_WORKERS": "0"}
BANNED = "This server doesn't allow the word `gore` in prompts."


async def refused(env, member, channel, expected: str, command: str = "imagine", **options) -> str:
    reply = private_reply(await member.slash(channel, command, **options))
    assert expected in reply, (options, reply)
    assert acknowledge_user_errors(env)[-1] == reply
    return reply


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_banned_words_cannot_be_dodged(simcord_env, world, simcord_bot, mod):
    _, channel, alice, _ = world
    await mod.slash(channel, "admin banned_word", word="Gore", banned=True)
    for prompt in [
        "a ｇｏｒｅ fest",  # full-width
        "a g\u200bo\u00adr\u2060e fest",  # zero-width space, soft hyphen, word joiner
        "a \u202ag\u202bo\u2066r\u2069e\u202c fest",  # bidi embeddings and isolates inside the word
        "a G.O.R.E fest", "a g o r e fest", "a g-o-r-e fest",  # spelled out
        "a GÖRÉ fest", "a g\u0336o\u0336r\u0336e\u0336 fest",  # accents, strike-through marks
        "a calm lake --no ｇore",  # in the negative prompt, which is shown too
        "a calm lake --sref https://example.com/gore.png",  # in a link, shown too
    ]:
        await refused(simcord_env, alice, channel, BANNED, prompt=prompt)

    # An option or a suffix can't smuggle it in either.
    await alice.slash(channel, "prefer option set", name="dark", value="g\u200bore")
    await refused(simcord_env, alice, channel, BANNED, prompt="a calm lake --dark")
    await alice.slash(channel, "prefer option delete", name="dark")
    await alice.slash(channel, "prefer suffix", value="ＧＯＲＥ")
    await refused(simcord_env, alice, channel, BANNED, prompt="a calm lake")
    await alice.slash(channel, "prefer suffix")

    assert await job_rows(simcord_bot) == []
    assert channel.last_message is None or "gore" not in channel.last_message.content.lower()
    await alice.slash(channel, "imagine", prompt="a calm lake")  # plain prompts still pass
    assert channel.last_message.content.startswith(f"**a calm lake** - {alice.mention}")


async def test_remix_v_and_reroll_are_checked_like_a_new_prompt(simcord_env, world, simcord_bot, mod):
    _, channel, alice, _ = world
    await alice.slash(channel, "imagine", prompt="a harbor --seed 3")
    await run_until(simcord_env, lambda: finished(channel, "a harbor --seed 3"))
    grid = job_message(channel, "a harbor --seed 3")
    await mod.slash(channel, "admin banned_word", word="gore", banned=True)

    panel = await alice.slash(channel, "settings")
    await alice.click(panel.response.message, label="Remix mode")
    for button in ("V1", "🔄"):
        shown = await alice.click(grid, custom_id=custom_id(grid, "🔄")) if button == "🔄" else await alice.click(grid, label=button)
        assert shown.modal is not None, button
        edited = await alice.submit_modal(shown, {text_input_id(shown.modal): "a harbor, ｇ\u200bore --seed 3"})
        assert edited.ephemeral and edited.response.content == BANNED, button
    acknowledge_user_errors(simcord_env)

    # A word banned after the grid was made holds for its V and 🔄 too.
    await alice.click(panel.response.message, label="Remix mode")  # off: V and 🔄 reuse the stored prompt
    await mod.slash(channel, "admin banned_word", word="harbor", banned=True)
    for button in ("V2", "🔄"):
        clicked = await alice.click(grid, custom_id=custom_id(grid, "🔄")) if button == "🔄" else await alice.click(grid, label=button)
        assert clicked.ephemeral and "`harbor`" in clicked.response.content, button
    assert [kind for kind, _, _ in await job_rows(simcord_bot)] == ["imagine"]


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_prompt_tricks_read_as_what_they_look_like(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    empty = await refused(simcord_env, alice, channel, "has no description", prompt=" --ar 3:2")
    for invisible in ["\u200b", "\u200b\u2060\ufeff\u00ad", "\u3164\u2800", "\u202e\u202c \u200d", "\U000e0041\U000e0042"]:
        assert await refused(simcord_env, alice, channel, "", prompt=invisible + " --ar 3:2") == empty
    await refused(simcord_env, alice, channel, "`--s 5000` is out of range", prompt="a fox －－ｓ　５０００")
    await refused(simcord_env, alice, channel, "`--s 5000` is out of range", prompt="a fox --\u200bs 5000")
    assert await job_rows(simcord_bot) == []

    await alice.slash(channel, "imagine", prompt="ａ ｆｏｘ\u200b －－ａｒ ３：２")
    assert channel.last_message.content.startswith(f"**a fox --ar 3:2** - {alice.mention}")


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_private_and_wrapped_links_are_refused(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    for link, expected in [
        ("http://[::ffff:169.254.169.254]/latest/meta-data", "which carries 169.254.169.254"),
        ("http://[64:ff9b::7f00:1]/x.png", "which carries 127.0.0.1"),
        ("http://[64:ff9b:1::a00:1]/x.png", "points to a private address"),
        ("http://[2002:a9fe:a9fe::]/x.png", "which carries 169.254.169.254"),
        ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x.png", "which carries 127.0.0.1"),  # Teredo client, inverted
        ("http://2852039166/latest/meta-data", "unusual form"),  # 169.254.169.254 as one number
        ("http://0251.0376.0251.0376/x.png", "unusual form"),  # octal
        ("http://0xa9.0xfe.0xa9.0xfe/x.png", "unusual form"),  # hex
        ("http://169.254.43518/x.png", "unusual form"),  # short
        ("http://ｌｏｃａｌｈｏｓｔ/x.png", "points to a private address"),  # full-width name
        ("https://example.com/" + "x" * 2100, "is too long"),
    ]:
        await refused(simcord_env, alice, channel, expected, prompt=f"a cat --sref {link}")
    assert await job_rows(simcord_bot) == []


def pinged(env, message) -> tuple[list[int], list[int], bool]:
    """Whom Discord notifies for this message as it stands (SimCord applies the
    message's allowed_mentions to its content on every send and edit)."""
    stored = env.backend.messages[message.channel.id][message.id]
    return stored.ping_user_ids, stored.ping_role_ids, stored.mention_everyone


async def test_a_prompt_mentioning_others_pings_only_the_requester(simcord_env, world, simcord_bot):
    guild, channel, alice, bob = world
    role = guild.create_role("Everyone who draws", mentionable=True)
    prompt = f"a portrait of <@{bob.id}> with <@&{role.id}> @everyone @here --seed 5"
    await alice.slash(channel, "imagine", prompt=prompt)
    waiting = channel.last_message
    assert f"<@{bob.id}>" in waiting.content and "(Waiting to start)" in waiting.content
    assert pinged(simcord_env, waiting) == ([alice.id], [], False)

    await run_until(simcord_env, lambda: finished(channel, "a portrait of"))
    grid = job_message(channel, "a portrait of")
    assert grid.id == waiting.id and grid.attachments  # the final grid edit
    assert pinged(simcord_env, grid) == ([alice.id], [], False)

    await alice.click(grid, label="U1")
    single = channel.last_message
    assert "Image #1" in single.content and f"<@{bob.id}>" in single.content
    assert pinged(simcord_env, single) == ([alice.id], [], False)

    await alice.click(grid, label="V1")
    variations = channel.last_message
    assert "Variations (Strong)" in variations.content
    assert pinged(simcord_env, variations) == ([alice.id], [], False)
    await run_until(simcord_env, lambda: finished(channel, "Variations (Strong)"))
    assert pinged(simcord_env, job_message(channel, "Variations (Strong)")) == ([alice.id], [], False)

    # Bob can't press Alice's buttons, and forged ones get the stale answer.
    for label in ("U2", "V2"):
        refused_click = await bob.click(grid, label=label)
        assert refused_click.ephemeral and refused_click.response.content.startswith(f"Only <@{alice.id}>")
    forged = [f"tm:image:vary_strong:{10**19}", "tm:grid:u1:" + "0" * 32, "tm:image:like:99999"]
    message = await post_buttons(simcord_bot, channel, forged)
    for custom in forged:
        result = await bob.click(message, custom_id=custom)
        assert result.ephemeral and result.response.content == STALE_BUTTON, custom
    acknowledge_user_errors(simcord_env)
