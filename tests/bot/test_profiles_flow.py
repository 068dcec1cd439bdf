"""Several profiles in Discord (issue 12): /profile, /rank profile: with context,
/prefer personalize with a mix of profiles, /prefer learn_from_use, /codes by
profile. Driven as members would, through SimCord; what they see is asserted."""

from __future__ import annotations

import re

import numpy as np
import pytest

from engine import profiles
from engine.db import members
from tests.bot.conftest import RANK_PROMPTS, RANK_STYLES, acknowledge_user_errors, run_until
from tests.bot.test_imagine import job_message
from tests.bot.test_prefer import vote

POOLED = {"TASTEMAKER_WORKERS": "0", "TASTEMAKER_UNLOCK_VOTES": "3"}
CODE = r"`([a-z2-7]{7})`"



def pooled(test):
    """A test on a copy of the session's rank pool, 3 votes to unlock, no workers."""
    return pytest.mark.parametrize("with_rank_pool", [True])(pytest.mark.parametrize("bot_overrides", [POOLED])(test))


def refused(env, result, expected: str) -> str:
    """A private error that says exactly this, reported through the one error path."""
    assert result.ephemeral, result.response.content
    assert expected in result.response.content, result.response.content
    assert acknowledge_user_errors(env)[-1] == result.response.content
    return result.response.content


def pair_id(message) -> int:
    ids = [child.custom_id for row in message.components for child in row.children]
    [found] = {int(re.fullmatch(r"tm:rank:\w+:(\d+)", i).group(1)) for i in ids}
    return found


async def pair_styles(bot, pid: int) -> tuple[str, str, str]:
    """What the pair showed, read straight from the tables: (prompt, left style, right style)."""
    ((prompt, left, right),) = await bot.db.execute_fetchall(
        "SELECT l.prompt, l.style, r.style FROM rank_pairs p JOIN pool_images l ON l.id = p.left_id"
        " JOIN pool_images r ON r.id = p.right_id WHERE p.id = ?",
        (pid,),
    )
    return prompt, left, right


def profile_line(listed: str, name: str) -> str | None:
    return next((line for line in listed.splitlines() if line.startswith(f"**{name}** · ")), None)


async def rank_into(bot, user_id: int, n: int, name: str) -> None:
    rng = np.random.default_rng(user_id + 1)
    for _ in range(n):
        pair = await profiles.next_pair(bot.db, user_id, rng, profile_name=name)
        assert await profiles.answer_pair(bot.db, user_id, pair.id, "right")


@pooled
async def test_a_profile_is_made_ranked_unlocked_and_deleted_and_its_code_lives_on(simcord_env, world, simcord_bot):
    _, channel, alice, bob = world
    env, bot = simcord_env, simcord_bot

    made = await alice.slash(channel, "profile create", name="portraits")
    assert made.ephemeral and "Profile **portraits** created" in made.response.content
    assert "`/rank profile:portraits`" in made.response.content
    refused(env, await alice.slash(channel, "profile create", name="Portraits"), "You already have a profile named `Portraits`")
    refused(env, await alice.slash(channel, "profile create", name="no/slashes!"), "`no/slashes!` can't be a profile name")
    refused(env, await alice.slash(channel, "profile create", name="server"), "`server` is reserved")

    listed = (await alice.slash(channel, "profile list")).response.content
    lines = listed.splitlines()
    assert lines[0] == "**Your profiles** (2/25)"
    assert lines[1].startswith("**main** · 0 votes · locked (0/3)")
    assert profile_line(listed, "portraits").startswith("**portraits** · 0 votes · locked (0/3): rank 3 more with `/rank profile:portraits`")
    assert "A bare `--p` uses your **main** profile." in listed

    choices = await alice.autocomplete(channel, "rank", "profile", "port")
    assert [c["value"] for c in choices] == ["portraits"]
    assert await bob.autocomplete(channel, "rank", "profile", "port") == []

    # /rank profile: ranks into it; the header names it, the message shows the prompt.
    shown = await alice.slash(channel, "rank", profile="portraits")
    message = shown.response.message
    assert shown.ephemeral
    assert "Ranking **portraits** · 0/3 to unlock" in message.content
    prompt, left, right = await pair_styles(bot, pair_id(message))
    assert prompt in RANK_PROMPTS and message.content.endswith(f"**Which image do you prefer?** · *{prompt}*")

    # Each vote: the next pair of the same profile, saying what was just compared.
    for n in range(1, 4):
        before = pair_id(message)
        _, left, right = await pair_styles(bot, before)
        message = (await alice.click(message, label="◀ Left")).response.message
        assert message.content.startswith(f"You chose **{left}** over **{right}**.")
        assert left in RANK_STYLES and right in RANK_STYLES and left != right
        assert pair_id(message) != before
        if n < 3:
            assert f"Ranking **portraits** · {n}/3 to unlock" in message.content
    code = re.search(rf"🎉 \*\*portraits\*\* is unlocked! Its code is {CODE}", message.content).group(1)
    assert "Ranking **portraits** · Keep ranking to sharpen it · 3 votes" in message.content

    _, left, right = await pair_styles(bot, pair_id(message))
    message = (await alice.click(message, label="Skip")).response.message
    assert message.content.startswith(f"Skipped: {left} vs {right}.")
    assert "Ranking **portraits** · 3 votes · unlocked" in message.content and "🎉" not in message.content

    # The votes taught portraits, not main.
    listed = (await alice.slash(channel, "profile list")).response.content
    assert profile_line(listed, "main").startswith("**main** · 0 votes · locked (0/3)")
    assert profile_line(listed, "portraits") == f"**portraits** · 3 votes · `{code}` · public"
    codes = (await alice.slash(channel, "codes")).response.content
    assert "**portraits** · taste" in codes and f"`{code}` · v1 · 3 votes · public · **current**" in codes

    # Names are per member: bob has no "portraits" to rank into or delete.
    refused(env, await bob.slash(channel, "rank", profile="portraits"), "You have no profile named `portraits`")
    refused(env, await bob.slash(channel, "profile delete", name="portraits"), "You have no profile named `portraits`")
    refused(env, await alice.slash(channel, "rank", profile="ghosts"), "You have no profile named `ghosts`")
    refused(env, await alice.slash(channel, "profile delete", name="main"), "Your main profile can't be deleted")

    assert [c["value"] for c in await alice.autocomplete(channel, "profile delete", "name", "")] == ["portraits"]
    gone = await alice.slash(channel, "profile delete", name="PORTRAITS")
    assert gone.ephemeral and "Profile **portraits** deleted" in gone.response.content
    assert f"Its code `{code}` keeps working with `--p CODE`" in gone.response.content
    listed = (await alice.slash(channel, "profile list")).response.content
    assert profile_line(listed, "portraits") is None and "(1/25)" in listed
    refused(env, await alice.slash(channel, "rank", profile="portraits"), "You have no profile named `portraits`")
    codes = (await alice.slash(channel, "codes")).response.content
    assert "**portraits** · taste (deleted: its codes still work)" in codes

    # Its code still works, for alice and (public) for bob.
    await alice.slash(channel, "imagine", prompt=f"a cat --p {code}")
    assert channel.last_message.content.startswith(f"**a cat --p {code}** - {alice.mention}")
    await bob.slash(channel, "imagine", prompt=f"a dog --p {code}")
    assert channel.last_message.content.startswith(f"**a dog --p {code}** - {bob.mention}")


@pooled
async def test_main_rank_shows_the_prompt_and_what_was_chosen(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    shown = await alice.slash(channel, "rank")
    message = shown.response.message
    prompt, left, right = await pair_styles(simcord_bot, pair_id(message))
    assert message.content == f"0/3 to unlock your profile\n**Which image do you prefer?** · *{prompt}*"
    message = (await alice.click(message, label="Right ▶")).response.message
    assert message.content.startswith(f"You chose **{right}** over **{left}**.\n1/3 to unlock your profile\n")
    for _ in range(2):
        message = (await alice.click(message, label="◀ Left")).response.message
    code = re.search(rf"Your code is {CODE}", message.content).group(1)
    assert "🎉 **Your profile is unlocked!**" in message.content
    listed = (await alice.slash(channel, "profile list")).response.content
    assert profile_line(listed, "main") == f"**main** · 3 votes · `{code}` · public"


@pooled
async def test_personalize_mixes_several_profiles(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    env, bot = simcord_env, simcord_bot
    await vote(bot, alice.id, 3)
    await alice.slash(channel, "profile create", name="portraits")
    await rank_into(bot, alice.id, 3, "portraits")
    await alice.slash(channel, "profile create", name="sketches")  # locked: no votes

    on = await alice.slash(channel, "prefer personalize", value="on", profiles="main::1 portraits::2")
    assert on.ephemeral, on.response.content
    mixed = re.search(rf"mixes \*\*main\*\* ×1 \({CODE}\) \+ \*\*portraits\*\* ×2 \({CODE}\)", on.response.content)
    assert mixed and "Personalization is on" in on.response.content and mixed.group(1) != mixed.group(2)
    assert (await members.get_settings(bot.db, alice.id)).personalize

    # Shown back: /prefer personalize alone, /profile list, the /settings panel.
    shown = await alice.slash(channel, "prefer personalize")
    assert "Personalization is **on**" in shown.response.content
    assert "uses **main** ×1 + **portraits** ×2" in shown.response.content
    listed = (await alice.slash(channel, "profile list")).response.content
    assert profile_line(listed, "main").endswith("· default ×1")
    assert profile_line(listed, "portraits").endswith("· default ×2")
    assert profile_line(listed, "sketches").endswith("· public")
    panel = (await alice.slash(channel, "settings")).response.content
    assert "A bare `--p` uses **main** ×1 + **portraits** ×2" in panel and "Learn from use: **on**" in panel

    # A mix with a locked or unknown profile, or a malformed one, is refused; the mix stays.
    refused(env, await alice.slash(channel, "prefer personalize", value="on", profiles="main sketches::3"),
            "Your profile **sketches** is locked: rank 3 more pairs with `/rank profile:sketches`")
    refused(env, await alice.slash(channel, "prefer personalize", value="on", profiles="ghost"),
            "You have no profile named `ghost`")
    refused(env, await alice.slash(channel, "prefer personalize", value="on", profiles="main::lots"),
            "`main::lots`: the weight after `::` must be a number")
    refused(env, await alice.slash(channel, "prefer personalize", value="on", profiles="main::0"),
            "a weight is a number above 0 and at most 100")
    refused(env, await alice.slash(channel, "prefer personalize", value="on", profiles="main MAIN::2"),
            "`main` is named twice")
    refused(env, await alice.slash(channel, "profile default", profiles='"main'), "has a quote that isn't closed")
    shown = await alice.slash(channel, "prefer personalize")
    assert "uses **main** ×1 + **portraits** ×2" in shown.response.content

    # /profile default sets the mix too, and says which profiles are still locked.
    default = await alice.slash(channel, "profile default", profiles="portraits, sketches::0.5")
    assert "A bare `--p` now uses **portraits** ×1 + **sketches** ×0.5." in default.response.content
    assert ("Your profile **sketches** is locked: rank 3 more pairs with `/rank profile:sketches` to unlock it "
            "(0/3 votes)" in default.response.content)
    assert "Personalization is on" in default.response.content
    # Turning personalization on (again) checks the mix it would use.
    refused(env, await alice.slash(channel, "prefer personalize", value="on"), "Your profile **sketches** is locked")
    off = await alice.slash(channel, "prefer personalize", value="off", profiles="portraits")
    assert off.response.content == (
        "Personalization is off. You can still add `--p` to a single prompt; a bare `--p` uses **portraits** ×1."
    )
    assert not (await members.get_settings(bot.db, alice.id)).personalize
    on = await alice.slash(channel, "prefer personalize", value="on")
    assert re.search(rf"which mixes \*\*portraits\*\* ×1 \({CODE}\)", on.response.content)


@pooled
async def test_learn_from_use_is_a_setting_the_member_sees(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    off = await alice.slash(channel, "prefer learn_from_use", value="off")
    assert off.ephemeral and "Learning from use is off" in off.response.content
    assert "the signals already recorded are not used" in off.response.content
    assert not (await members.get_settings(simcord_bot.db, alice.id)).learn_from_use
    panel = await alice.slash(channel, "settings")
    assert "Learn from use: **off**" in panel.response.content
    on = await alice.click(panel.response.message, label="Learn from use")
    assert "Learn from use: **on** (U, V and 🔄 on your own grids teach your main profile)" in on.response.content
    assert (await members.get_settings(simcord_bot.db, alice.id)).learn_from_use
    again = await alice.slash(channel, "prefer learn_from_use", value="on")
    assert "U, V and 🔄 on your own grids teach your main profile" in again.response.content


def test_a_code_line_names_its_signals_from_use_and_kind():
    from bot.cogs.codes import code_line

    info = profiles.CodeInfo(code="abcdefg", kind="votes", version=2, votes=5, likes=1, images=0, confidence=0.5,
                             public=True, basis_version=1, created_at=0.0, signals=3)
    assert code_line(info, "abcdefg").startswith("`abcdefg` · v2 · 5 votes + 1 like + 3 signals from use · public · **current**")
    quiet = profiles.CodeInfo(code="abcdefh", kind="votes", version=1, votes=16, likes=0, images=0, confidence=0.5,
                              public=False, basis_version=1, created_at=0.0, profile="ink", profile_kind="tune")
    assert code_line(quiet, None).startswith("`abcdefh` · tune v1 · 16 picks · 🔒 private · <t:0:R>")


@pooled
async def test_a_private_taste_code_makes_every_taste_profile_private_new_ones_too(simcord_env, world, simcord_bot):
    """Privacy is per kind: alice hides her main profile's code, then ranks `portraits` to its
    first code. It is private too, as are a new profile's and a tune's, and bob can't use it."""
    _, channel, alice, bob = world
    env, bot = simcord_env, simcord_bot
    await alice.slash(channel, "profile create", name="portraits")
    await vote(bot, alice.id, 3)
    main_code = re.search(CODE, (await alice.slash(channel, "codes")).response.content).group(1)
    hidden = await alice.slash(channel, "codes", code=main_code, visibility="private")
    assert "Your new taste codes start private too" in hidden.response.content

    message = (await alice.slash(channel, "rank", profile="portraits")).response.message
    for _ in range(3):
        message = (await alice.click(message, label="Right ▶")).response.message
    code = re.search(rf"Its code is {CODE}", message.content).group(1)
    listed = (await alice.slash(channel, "profile list")).response.content
    assert profile_line(listed, "portraits") == f"**portraits** · 3 votes · `{code}` · 🔒 private", listed
    assert "New codes start 🔒 private." in listed
    codes = (await alice.slash(channel, "codes")).response.content
    assert f"`{code}` · v1 · 3 votes · 🔒 private · **current**" in codes
    refused(env, await bob.slash(channel, "imagine", prompt=f"a cat --p {code}"), f"Code `{code}` is private")

    made = await alice.slash(channel, "profile create", name="sketches")
    assert "🔒 private" in made.response.content
    assert profile_line((await alice.slash(channel, "profile list")).response.content, "sketches").endswith("🔒 private")

    # Sharing one code shares that code only; `visibility:public` alone makes the kind public again.
    await alice.slash(channel, "codes", code=code, visibility="public")
    await alice.slash(channel, "imagine", prompt=f"a dog --p {code}")
    assert (await profiles.privacy(bot.db, alice.id))["votes"] is False
    await alice.slash(channel, "codes", visibility="public")
    listed = (await alice.slash(channel, "profile list")).response.content
    assert "New codes start public." in listed and "🔒" not in listed


@pytest.mark.parametrize("with_rank_pool", [True])
async def test_a_private_moodboard_makes_every_moodboard_private_new_ones_too(simcord_env, world, simcord_bot):
    """Alice has two moodboards and hides the first one's code: her third moodboard starts private."""
    from tests.bot.test_moodboard import moodboard_done, png

    _, channel, alice, bob = world
    env = simcord_env

    async def moodboard(color: str) -> str:
        await alice.slash(channel, "moodboard create", image1=(f"{color}.png", png(color)))
        await run_until(env, lambda: moodboard_done(channel))
        done = job_message(channel, "moodboard:").content  # the newest board's message
        return re.search(r"moodboard code `([a-z2-7]{7})`", done).group(1)

    first, second = await moodboard("orange"), await moodboard("navy")
    hidden = await alice.slash(channel, "codes", code=first, visibility="private")
    assert "Your new moodboards start private too" in hidden.response.content
    third = await moodboard("teal")

    codes = (await alice.slash(channel, "codes")).response.content
    assert f"`{third}` · moodboard v1 · 1 image · 🔒 private" in codes
    assert f"`{second}` · moodboard v1 · 1 image · public" in codes  # codes made before keep their own flag
    assert "New taste codes start public; new moodboards start 🔒 private." in codes
    listed = (await alice.slash(channel, "profile list")).response.content
    assert profile_line(listed, "moodboard 3") == f"**moodboard 3** · moodboard · `{third}` · 🔒 private"
    assert profile_line(listed, "main").endswith(" · public")
    refused(env, await bob.slash(channel, "imagine", prompt=f"a cat --p {third}"), f"Code `{third}` is private")
