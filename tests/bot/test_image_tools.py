"""Midjourney's tools on one image, through SimCord on the tiny preset: Zoom Out,
Custom Zoom, Pan, Make Square, Vary (Region), Upscale (Subtle) and (Creative).

The tiny preset draws 128 px a side natively and its outpaints grow up to 192 px
a side (engine/canvas.py), so a member sees the canvas grow.
"""

from __future__ import annotations

import io

import discord
from PIL import Image

from tests.bot.conftest import acknowledge_user_errors, custom_id, run_until
from tests.bot.test_flows import post_buttons
from tests.bot.test_imagine import buttons, finished, job_message

ONE_IMAGE = [
    "Upscale (Subtle)", "Upscale (Creative)", "Vary (Subtle)", "Vary (Strong)", "Vary (Region)",
    "Zoom Out 2×", "Zoom Out 1.5×", "Custom Zoom", "Make Square", "⬅️", "➡️", "⬆️", "⬇️", "Like",
    "Animate (Low motion)", "Animate (High motion)", "Animate (Manual)",
]
GRID = ["U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4", "🔄"]


async def picture_size(message) -> tuple[int, int]:
    [attachment] = message.attachments
    return Image.open(io.BytesIO(await attachment.read())).size


async def first_image(env, channel, alice, prompt: str):
    """/imagine, then U1: the single image message with its tools."""
    await alice.slash(channel, "imagine", prompt=prompt)
    await run_until(env, lambda: finished(channel, prompt))
    await alice.click(job_message(channel, prompt), label="U1")
    single = channel.last_message
    assert "Image #1" in single.content
    return single


async def job_count(bot) -> int:
    async with bot.db.execute("SELECT COUNT(*) FROM jobs") as cursor:
        return (await cursor.fetchone())[0]


async def test_zoom_pan_and_square_give_bigger_grids_with_their_buttons(simcord_env, world, simcord_bot):
    _, channel, alice, bob = world
    single = await first_image(simcord_env, channel, alice, "a harbour at dusk --ar 3:2 --seed 4")
    assert buttons(single) == ONE_IMAGE  # 192x128: not square, so Make Square is there

    # Someone else's tools are refused, privately, and queue nothing.
    refused = await bob.click(single, label="Zoom Out 2×")
    assert refused.ephemeral and "Only" in refused.response.content
    acknowledge_user_errors(simcord_env)

    await alice.click(single, label="Zoom Out 2×")
    assert "- Zoom Out 2× -" in channel.last_message.content  # queued (or already running)
    await alice.click(single, custom_id=custom_id(single, "⬅️"))
    await alice.click(single, label="Make Square")
    await run_until(simcord_env, lambda: all(finished(channel, label) for label in ("Zoom Out 2×", "Pan ⬅️", "Make Square")))

    # 192x128 -> 2x is 384x256, over the tiny preset's 192² budget: scaled to 256x128 per image
    zoomed = job_message(channel, "Zoom Out 2×")
    assert zoomed.content.startswith("**a harbour at dusk --ar 3:2 --seed 4** - Zoom Out 2× - " + alice.mention)
    assert buttons(zoomed) == GRID
    assert await picture_size(zoomed) == (512, 256)  # a 2x2 grid of 256x128
    panned = job_message(channel, "Pan ⬅️")
    assert buttons(panned) == GRID
    assert await picture_size(panned) == (640, 256)  # 320x128 each: wider
    squared = job_message(channel, "Make Square")
    assert await picture_size(squared) == (384, 384)  # 192x192 each

    # U on an outpainted grid: the bigger image, with the tools again (now square: no Make Square)
    await alice.click(squared, label="U2")
    picked = channel.last_message
    assert "Image #2" in picked.content and await picture_size(picked) == (192, 192)
    assert "Make Square" not in buttons(picked) and "Zoom Out 1.5×" in buttons(picked)

    # 🔄 on a zoom: the same zoom of the same image, with a new seed
    await alice.click(zoomed, custom_id=custom_id(zoomed, "🔄"))
    assert "- Zoom Out 2× -" in channel.last_message.content
    await run_until(simcord_env, lambda: len([m for m in channel.history() if "Zoom Out 2×" in m.content]) == 2
                    and finished(channel, "Zoom Out 2×"))


async def test_custom_zoom_checks_its_factor_privately(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    single = await first_image(simcord_env, channel, alice, "a quiet lake --seed 2")  # 128x128
    assert "Make Square" not in buttons(single)
    before = await job_count(simcord_bot)

    for bad in ("2.5", "1", "lots", "nan"):
        shown = await alice.click(single, label="Custom Zoom")
        assert shown.modal is not None and shown.modal["title"] == "Custom Zoom"
        refused = await alice.submit_modal(shown, {"prompt": "a quiet lake --seed 2", "factor": bad})
        assert refused.ephemeral
        assert f"`{bad}` is not a zoom factor: Custom Zoom takes a number above 1 and up to 2" in refused.response.content
    acknowledge_user_errors(simcord_env)
    assert await job_count(simcord_bot) == before  # nothing queued

    shown = await alice.click(single, label="Custom Zoom")
    await alice.submit_modal(shown, {"prompt": "a quiet lake at night --seed 2", "factor": "1.5"})
    assert channel.last_message.content.startswith("**a quiet lake at night --seed 2** - Zoom Out 1.5×")
    await run_until(simcord_env, lambda: finished(channel, "Zoom Out 1.5×"))
    zoomed = job_message(channel, "Zoom Out 1.5×")
    assert buttons(zoomed) == GRID and await picture_size(zoomed) == (384, 384)

    # Make Square on a square image (a forged or old button) is refused the same way
    square = f"tm:image:square:{custom_id(single, '🔍').rsplit(':', 1)[1]}"
    forged = await post_buttons(simcord_bot, channel, [square])
    refused = await alice.click(forged, custom_id=square)
    assert refused.ephemeral and "already square" in refused.response.content
    acknowledge_user_errors(simcord_env)


async def test_vary_region_offers_the_regions_and_redraws_one(simcord_env, world, simcord_bot):
    _, channel, alice, bob = world
    single = await first_image(simcord_env, channel, alice, "a red kite in the sky --seed 6")

    menu = await alice.click(single, label="Vary (Region)")
    assert menu.ephemeral and "which part of the image" in menu.response.content
    [row] = menu.response.message.components
    [select] = row.children
    assert [option.label for option in select.options] == [
        "Left half", "Right half", "Top half", "Bottom half", "Centre", "Subject's centre",
    ]
    # the menu is private, but its id can be forged: someone else is refused
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Select(custom_id=select.custom_id, options=[discord.SelectOption(label="L", value="left")]))
    posted = await simcord_bot.get_channel(channel.id).send("forged", view=view)
    view.stop()  # only the persistent handlers answer
    forged = await bob.select(posted, ["left"], custom_id=select.custom_id)
    assert forged.ephemeral and "Only" in forged.response.content
    acknowledge_user_errors(simcord_env)

    await alice.select(menu.response.message, ["subject"], custom_id=select.custom_id)
    await run_until(simcord_env, lambda: finished(channel, "Vary (Region: Subject's centre)"))
    varied = job_message(channel, "Vary (Region: Subject's centre)")
    assert varied.content.startswith("**a red kite in the sky --seed 6** - Vary (Region: Subject's centre) - ")
    assert buttons(varied) == GRID and await picture_size(varied) == (256, 256)  # four 128x128, same size


async def test_upscale_subtle_and_creative_give_one_image_at_twice_the_size(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    single = await first_image(simcord_env, channel, alice, "a brass compass --seed 9")
    await alice.click(single, label="Upscale (Subtle)")
    await alice.click(single, label="Upscale (Creative)")
    await run_until(simcord_env, lambda: finished(channel, "Upscaled (Subtle)") and finished(channel, "Upscaled (Creative)"))
    for mode in ("Subtle", "Creative"):
        upscaled = job_message(channel, f"Upscaled ({mode})")
        assert upscaled.content.startswith(f"**a brass compass --seed 9** - Upscaled ({mode}) - ")
        assert await picture_size(upscaled) == (256, 256)
        shown = buttons(upscaled)
        assert not any(label.startswith("Upscale") for label in shown)  # an upscale has no Upscale buttons
        assert "Vary (Region)" in shown and "Zoom Out 2×" in shown
    async with simcord_bot.db.execute("SELECT request FROM jobs WHERE kind = 'upscale' ORDER BY created_at") as cursor:
        requests = [row[0] for row in await cursor.fetchall()]
    assert '"upscale": "Subtle"' in requests[0] and '"upscale": "Creative"' in requests[1]
