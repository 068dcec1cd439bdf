"""/prefer and the /settings panel, driven as a member would through SimCord."""

from __future__ import annotations

import re

import numpy as np
import pytest
from discord import ButtonStyle

from engine import profiles
from tests.bot.conftest import acknowledge_user_errors, custom_id, run_until
from tests.bot.test_imagine import finished, job_message

NO_WORKERS = {"TASTEMAKER_WORKERS": "0"}


async def job_rows(bot) -> list[tuple[str, str, dict]]:
    import json

    async with bot.db.execute("SELECT kind, prompt, request FROM jobs ORDER BY created_at") as cur:
        return [(kind, prompt, json.loads(request)) for kind, prompt, request in await cur.fetchall()]


def button(message, label: str):
    for row in message.components:
        for child in row.children:
            if child.label == label:
                return child
    raise AssertionError(f"no {label!r} button on {message.content!r}")


def text_input_id(modal: dict) -> str:
    """The custom_id of the (only) text input in a modal payload."""

    def walk(components):
        for component in components:
            if component.get("type") == 4:
                yield component["custom_id"]
            yield from walk(component.get("components") or [])
            if component.get("component"):
                yield from walk([component["component"]])

    [found] = list(walk(modal["components"]))
    return found


async def vote(bot, user_id: int, n: int) -> None:
    """Answer n /rank pairs for a member straight through the taste service."""
    rng = np.random.default_rng(user_id)
    for _ in range(n):
        pair = await profiles.next_pair(bot.db, user_id, rng)
        assert pair is not None
        assert await profiles.answer_pair(bot.db, user_id, pair.id, "left")


# -- /prefer option and suffix ------------------------------------------------------


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_options_and_suffix_shape_the_next_prompt(simcord_env, world, simcord_bot):
    _, channel, alice, bob = world
    saved = await alice.slash(channel, "prefer option set", name="mine", value="watercolor  --ar 3:2")
    assert saved.ephemeral and "`--mine`" in saved.response.content and "`watercolor --ar 3:2`" in saved.response.content
    suffix = await alice.slash(channel, "prefer suffix", value="--s 250")
    assert suffix.ephemeral and "`--s 250`" in suffix.response.content

    await alice.slash(channel, "imagine", prompt="a fox --mine")
    waiting = channel.last_message.content
    assert waiting.startswith("**a fox watercolor --ar 3:2 --s 250** - " + alice.mention)
    assert "(Waiting to start)" in waiting

    # What the member types wins over the suffix.
    await alice.slash(channel, "imagine", prompt="a fox --mine --s 50")
    assert channel.last_message.content.startswith("**a fox watercolor --ar 3:2 --s 50** - ")

    # Options and suffixes are per member.
    await bob.slash(channel, "imagine", prompt="a fox")
    assert channel.last_message.content.startswith("**a fox** - " + bob.mention)

    rows = await job_rows(simcord_bot)
    assert [row[2]["stylize"] for row in rows] == [250, 50, 100]

    listed = await alice.slash(channel, "prefer option list")
    assert listed.ephemeral and "`--mine` → `watercolor --ar 3:2`" in listed.response.content

    # Clearing the suffix and deleting the option: the prompt is plain again.
    cleared = await alice.slash(channel, "prefer suffix")
    assert "cleared" in cleared.response.content
    deleted = await alice.slash(channel, "prefer option delete", name="--mine")
    assert deleted.ephemeral and "deleted" in deleted.response.content
    gone = await alice.slash(channel, "imagine", prompt="a fox --mine")
    assert gone.ephemeral and "`--mine` is not a parameter" in gone.response.content
    acknowledge_user_errors(simcord_env)


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_bad_options_and_suffixes_are_refused_and_nothing_is_stored(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    db = simcord_bot.db

    async def refused(command: str, expected: str, **options) -> None:
        result = await alice.slash(channel, command, **options)
        assert result.ephemeral, command
        assert expected in result.response.content, result.response.content
        assert acknowledge_user_errors(simcord_env)[-1] == result.response.content

    await refused("prefer option set", "`--ar` is a built-in parameter", name="ar", value="--ar 16:9")
    await refused("prefer option set", "`--stylize` is a built-in parameter", name="--stylize", value="--s 50")
    await refused("prefer option set", "is not a valid option name", name="9 lives", value="--s 50")
    await refused("prefer option set", "`--s 5000` is out of range: stylize takes 0–1000", name="loud", value="--s 5000")
    await refused("prefer option set", "`--other` is not a parameter", name="nested", value="--other")
    await refused("prefer suffix", "`--chaos lots` is not a whole number", value="--chaos lots")
    await refused("prefer option delete", "You have no option `--nothing`", name="nothing")
    from engine.db import members

    assert await members.get_options(db, alice.id) == {}
    assert (await members.get_settings(db, alice.id)).suffix == ""

    # Twenty options are allowed; the 21st is refused, changing one still works.
    for n in range(20):
        ok = await alice.slash(channel, "prefer option set", name=f"opt{n}", value=f"--seed {n}")
        assert "saved" in ok.response.content
    await refused("prefer option set", "the most allowed is 20", name="opt20", value="--seed 20")
    changed = await alice.slash(channel, "prefer option set", name="opt3", value="--seed 33")
    assert "changed" in changed.response.content
    options = await members.get_options(db, alice.id)
    assert len(options) == 20 and "opt20" not in options and options["opt3"] == "--seed 33"
    assert await job_rows(simcord_bot) == []


# -- /settings -------------------------------------------------------------------------


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_settings_panel_sets_the_default_stylize(simcord_env, world, simcord_bot, restart_bot):
    _, channel, alice, _ = world
    panel = await alice.slash(channel, "settings")
    assert panel.ephemeral
    message = panel.response.message
    assert [b.label for row in message.components for b in row.children] == [
        "Personalization", "Stylize low", "Stylize med", "Stylize high", "Stylize very high", "Remix mode", "Auto DM",
        "Learn from use",
    ]
    assert button(message, "Stylize med").style == ButtonStyle.primary  # the default, --s 100
    assert button(message, "Stylize high").style == ButtonStyle.secondary

    await restart_bot()  # the panel's buttons work after a restart
    clicked = await alice.click(message, label="Stylize high")
    message = clicked.response.message
    assert "Stylize: **high (`--s 250`)**" in message.content
    assert button(message, "Stylize high").style == ButtonStyle.primary
    assert button(message, "Stylize med").style == ButtonStyle.secondary

    await alice.slash(channel, "imagine", prompt="a cat")
    await alice.slash(channel, "imagine", prompt="a cat --s 20")  # a typed --s still wins
    [(_, prompt, request), (_, _, typed)] = await job_rows(simcord_env.bot)
    assert prompt == "a cat" and request["stylize"] == 250
    assert typed["stylize"] == 20

    # Toggles: auto DM on, then off again.
    on = await alice.click(message, label="Auto DM")
    assert "Auto DM: **on**" in on.response.content
    assert button(on.response.message, "Auto DM").style == ButtonStyle.success
    off = await alice.click(on.response.message, label="Auto DM")
    assert "Auto DM: **off**" in off.response.content
    assert button(off.response.message, "Auto DM").style == ButtonStyle.secondary


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_personalization_needs_a_rank_pool(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    refused = await alice.slash(channel, "prefer personalize", value="on")
    assert refused.ephemeral and "no rank pool yet" in refused.response.content
    assert "python -m engine.rankpool build" in refused.response.content
    panel = await alice.slash(channel, "settings")
    clicked = await alice.click(panel.response.message, label="Personalization")
    assert clicked.ephemeral and "no rank pool yet" in clicked.response.content
    acknowledge_user_errors(simcord_env)
    from engine.db import members

    assert not (await members.get_settings(simcord_bot.db, alice.id)).personalize


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [{**NO_WORKERS, "TASTEMAKER_UNLOCK_VOTES": "3"}])
async def test_personalize_on_needs_an_unlocked_profile_then_adds_p(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    locked = await alice.slash(channel, "prefer personalize", value="on")
    assert locked.ephemeral and "rank 3 more pairs" in locked.response.content
    acknowledge_user_errors(simcord_env)

    await vote(simcord_bot, alice.id, 3)
    on = await alice.slash(channel, "prefer personalize", value="on")
    assert on.ephemeral and "Personalization is on" in on.response.content
    code = re.search(r"current code is `([a-z2-7]{7})`", on.response.content).group(1)

    await alice.slash(channel, "imagine", prompt="a cat")
    assert channel.last_message.content.startswith(f"**a cat --p {code}** - ")
    # A prompt that names its own codes or turns it down keeps that.
    await alice.slash(channel, "imagine", prompt="a dog --s 0")
    assert f"--p {code} --s 0" in channel.last_message.content

    off = await alice.slash(channel, "prefer personalize", value="off")
    assert "off" in off.response.content
    await alice.slash(channel, "imagine", prompt="a bird")
    assert channel.last_message.content.startswith("**a bird** - ")


# -- Remix ---------------------------------------------------------------------------


async def test_remix_mode_opens_the_prompt_for_editing(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    await alice.slash(channel, "imagine", prompt="a lighthouse --seed 3")
    await run_until(simcord_env, lambda: finished(channel, "a lighthouse --seed 3"))
    grid = job_message(channel, "a lighthouse --seed 3")

    panel = await alice.slash(channel, "settings")
    on = await alice.click(panel.response.message, label="Remix mode")
    assert "Remix mode: **on**" in on.response.content

    # V1 opens a modal holding the prompt; the edit is what runs.
    shown = await alice.click(grid, label="V1")
    assert shown.modal is not None and shown.modal["title"] == "Remix prompt"
    field = text_input_id(shown.modal)
    await alice.submit_modal(shown, {field: "a lighthouse in a storm, oil painting --seed 3"})
    waiting = channel.last_message.content
    assert waiting.startswith("**a lighthouse in a storm, oil painting --seed 3** - Variations (Strong)")

    # 🔄 too; a bad edit is refused like any prompt and queues nothing.
    shown = await alice.click(grid, custom_id=custom_id(grid, "🔄"))
    assert shown.modal is not None
    bad = await alice.submit_modal(shown, {text_input_id(shown.modal): "a lighthouse --s 5000"})
    assert bad.ephemeral and "`--s 5000` is out of range" in bad.response.content
    acknowledge_user_errors(simcord_env)

    rows = await job_rows(simcord_bot)
    assert [(kind, prompt) for kind, prompt, _ in rows] == [
        ("imagine", "a lighthouse --seed 3"),
        ("variation", "a lighthouse in a storm, oil painting --seed 3"),
    ]
    await run_until(simcord_env, lambda: finished(channel, "Variations (Strong)"))
