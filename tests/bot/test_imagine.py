"""/imagine end to end through SimCord: what a member sees."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.bot.conftest import acknowledge_user_errors, custom_id, run_until


def buttons(message) -> list[str]:
    """Labels (or emoji) of a message's buttons, row by row."""
    found = []
    for row in message.components:
        for child in row.children:
            found.append(child.label or str(child.emoji))
    return found


@pytest.mark.parametrize("bot_overrides", [{"TASTEMAKER_WORKERS": "0"}])
async def test_second_member_sees_queue_position(simcord_env, world):
    _, channel, alice, bob = world
    first = await alice.slash(channel, "imagine", prompt="a lighthouse in a storm --ar 3:2 --seed 7")
    await bob.slash(channel, "imagine", prompt="a red fox in snow")

    assert not first.ephemeral
    assert "(Waiting to start) · position 1 in queue" in channel.history()[-2].content
    assert "a red fox in snow" in channel.last_message.content
    assert "(Waiting to start) · position 2 in queue" in channel.last_message.content
    assert bob.mention in channel.last_message.content


def job_message(channel, prompt_fragment: str):
    """The newest bot message about a prompt."""
    for message in reversed(channel.history()):
        if prompt_fragment in message.content:
            return message
    return None


def finished(channel, fragment: str) -> bool:
    message = job_message(channel, fragment)
    return message is not None and bool(message.attachments) and "%" not in message.content and "Waiting" not in message.content


async def test_imagine_ends_in_a_grid_with_nine_buttons(simcord_env, world):
    _, channel, alice, _ = world
    await alice.slash(channel, "imagine", prompt="a lighthouse in a storm --ar 3:2 --seed 7")
    assert "(Waiting to start)" in channel.last_message.content

    await run_until(simcord_env, lambda: finished(channel, "a lighthouse in a storm"))

    message = job_message(channel, "a lighthouse in a storm")
    assert message.content.startswith("**a lighthouse in a storm --ar 3:2 --seed 7** - " + alice.mention)
    assert "seed 7" in message.content
    assert buttons(message) == ["U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4", "🔄"]
    [grid] = message.attachments
    assert grid.filename.endswith(".jpg")  # the posted grid; the PNG originals stay for U and the web
    # tiny preset, 3:2 -> 192x128 per image -> 384x256 grid
    posted = Image.open(io.BytesIO(await grid.read()))
    assert (posted.format, posted.size) == ("JPEG", (384, 256))


async def test_u_v_and_reroll_work_after_a_restart(simcord_env, world, restart_bot):
    _, channel, alice, bob = world
    await alice.slash(channel, "imagine", prompt="a quiet harbor at dawn --seed 11")
    await run_until(simcord_env, lambda: finished(channel, "a quiet harbor at dawn"))
    grid = job_message(channel, "a quiet harbor at dawn")

    await restart_bot()

    # U2: the second image on its own, with its own buttons
    picked = await alice.click(grid, label="U2")
    assert not picked.ephemeral
    single = channel.last_message
    assert "Image #2" in single.content
    assert len(single.attachments) == 1
    assert buttons(single) == [
        "Upscale (Subtle)", "Upscale (Creative)", "Vary (Subtle)", "Vary (Strong)", "Vary (Region)",
        "Zoom Out 2×", "Zoom Out 1.5×", "Custom Zoom", "⬅️", "➡️", "⬆️", "⬇️", "Like",
        "Animate (Low motion)", "Animate (High motion)", "Animate (Manual)",
    ]  # square: no Make Square (tests/bot/test_image_tools.py drives each tool)

    # Someone else's buttons are politely refused
    refused = await bob.click(grid, label="U1")
    assert refused.ephemeral and "Only" in refused.response.content
    acknowledge_user_errors(simcord_env)

    # V3: a new grid of strong variations of image 3
    await alice.click(grid, label="V3")
    assert "(Waiting to start)" in channel.last_message.content
    await run_until(simcord_env, lambda: finished(channel, "Variations (Strong)"))
    variations = job_message(channel, "Variations (Strong)")
    assert buttons(variations)[:4] == ["U1", "U2", "U3", "U4"]

    # 🔄: the same prompt with a new seed
    await alice.click(grid, custom_id=custom_id(grid, "🔄"))
    # the reroll drops the fixed seed, so its prompt ends before "--seed"
    await run_until(simcord_env, lambda: finished(channel, "**a quiet harbor at dawn** - "))
    rerolled = job_message(channel, "**a quiet harbor at dawn** - ")
    assert buttons(rerolled)[-1] == "🔄"
    assert "seed 11" not in rerolled.content
