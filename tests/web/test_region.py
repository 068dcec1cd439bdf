"""Vary (Region) from the web companion's image page, over real HTTP against the web
server of a bot that SimCord runs: the owner's drawn mask becomes the same VARIATION
job as Discord's Vary (Region), and the inline worker on the tiny preset redraws only
what the mask covers."""

from __future__ import annotations

import asyncio
import io
import time

import aiohttp
import numpy as np
from PIL import Image

from engine.db import members
from engine.jobs import Job, JobKind
from tests.bot.conftest import run_until
from tests.bot.test_imagine import finished, job_message
from tests.web.conftest import signed_in

SIDE = 128  # the tiny preset's images


def png(array: np.ndarray, mode: str = "L") -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, "PNG")
    return out.getvalue()


def left_third(width: int = SIDE, height: int = SIDE) -> np.ndarray:
    """A mask drawn as a browser sends it: opaque, white strokes (here the left third) on black,
    with anti-aliased grey at the edge."""
    mask = np.zeros((height, width), np.uint8)
    mask[:, : width // 3] = 255
    mask[:, width // 3] = 100  # grey: binarised to black
    return mask


async def alices_image(simcord_env, world, simcord_bot, prompt: str = "a quiet harbour --seed 3") -> int:
    _, channel, alice, _ = world
    await alice.slash(channel, "imagine", prompt=prompt)
    await run_until(simcord_env, lambda: finished(channel, prompt.split(" --")[0]))
    [(image_id,)] = await simcord_bot.db.execute_fetchall("SELECT MIN(id) FROM images WHERE user_id = ?", (alice.id,))
    return image_id


async def job_rows(bot) -> list[tuple]:
    return [tuple(r) for r in await bot.db.execute_fetchall("SELECT id, kind FROM jobs ORDER BY created_at")]


def form(mask: bytes | None, prompt: str | None = None, content_type: str = "image/png") -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    if mask is not None:
        data.add_field("mask", mask, filename="mask.png", content_type=content_type)
    if prompt is not None:
        data.add_field("prompt", prompt)
    return data


async def wait_for_job(simcord_env, client, base_url, job_id: str) -> dict:
    for _ in range(600):
        async with client.get(f"{base_url}/api/jobs/{job_id}") as answer:
            job = await answer.json()
        if job["state"] not in ("queued", "running"):
            return job
        await asyncio.to_thread(time.sleep, 0.1)  # the worker, in real time
        await simcord_env.advance_time(0.5)  # the bot's job pump, in virtual time
    raise AssertionError(f"the job did not finish: {job}")


async def test_the_owners_drawn_mask_queues_a_region_variation_that_redraws_only_there(
    simcord_env, world, simcord_bot, base_url
):
    _, channel, alice, _ = world
    image_id = await alices_image(simcord_env, world, simcord_bot)
    source = np.asarray(Image.open(simcord_bot.settings.data_dir / (await simcord_bot.db.execute_fetchall(
        "SELECT path FROM images WHERE id = ?", (image_id,)))[0][0]).convert("RGB")).astype(int)
    client = await signed_in(alice, channel)
    async with client:
        # 1. The owner's page has the tool, with the image's prompt to edit.
        async with client.get(f"{base_url}/image/{image_id}") as answer:
            page = await answer.text()
        assert 'id="region-tool"' in page and 'id="region-canvas" width="128" height="128"' in page
        assert "/static/region.js" in page and ">a quiet harbour --seed 3</textarea>" in page
        # 2. The mask and a Remix edit of the prompt: one VARIATION job, marked as the web's.
        async with client.post(f"{base_url}/api/image/{image_id}/vary-region", data=form(png(left_third()), "a stormy harbour"),
                               headers={"X-CSRF-Token": client.csrf}) as answer:
            assert answer.status == 200, await answer.text()
            queued = await answer.json()
        assert queued["state"] in ("queued", "running") and queued["images"] == []
        [record] = await simcord_bot.db.execute_fetchall(
            "SELECT kind, prompt, parent_image_id, json_extract(request, '$.web'), guild_id, message_id FROM jobs WHERE id = ?",
            (queued["id"],))
        assert tuple(record) == ("variation", "a stormy harbour", image_id, 1, world[0].id, 0)
        [(payload,)] = await simcord_bot.db.execute_fetchall("SELECT job FROM queue_jobs WHERE id = ?", (queued["id"],))
        job = Job.from_json(payload)
        assert job.kind is JobKind.VARIATION and job.generate.prompt == "a stormy harbour" and job.generate.count == 4
        carried = np.asarray(Image.open(io.BytesIO(job.generate.mask)))
        expected = np.zeros((SIDE, SIDE), np.uint8)
        expected[:, : SIDE // 3] = 255  # binarised: the grey edge is kept
        assert np.array_equal(carried, expected)
        # 3. The worker redraws the left third; the right, far from the seam, is the source's own.
        done = await wait_for_job(simcord_env, client, base_url, queued["id"])
        assert done["state"] == "done", done
        assert len(done["images"]) == 4
        for made in done["images"]:
            async with client.get(base_url + made["full"]) as answer:  # the original (src is its thumbnail)
                result = np.asarray(Image.open(io.BytesIO(await answer.read())).convert("RGB")).astype(int)
            assert result.shape == (SIDE, SIDE, 3)
            assert np.abs(result[:, SIDE // 2 :] - source[:, SIDE // 2 :]).mean() < 2
            assert np.abs(result[:, : SIDE // 4] - source[:, : SIDE // 4]).mean() > 10
            async with client.get(base_url + made["href"]) as answer:
                assert answer.status == 200 and "a stormy harbour" in await answer.text()
    # Discord got no message for it: the web job is shown on the web only.
    assert job_message(channel, "a stormy harbour") is None


async def test_only_the_owner_may_vary_and_bad_masks_are_refused_with_nothing_queued(
    simcord_env, world, simcord_bot, base_url
):
    guild, channel, alice, bob = world
    image_id = await alices_image(simcord_env, world, simcord_bot)
    before = await job_rows(simcord_bot)
    queued_before = await simcord_bot.db.execute_fetchall("SELECT id FROM queue_jobs")
    url = f"{base_url}/api/image/{image_id}/vary-region"
    other = simcord_env.create_guild("Elsewhere")
    carol = other.add_member(simcord_env.create_user("carol"))
    good = png(left_third())
    owner, member, outsider = (await signed_in(alice, channel), await signed_in(bob, channel),
                               await signed_in(carol, other.create_text_channel("general")))
    async with owner, member, outsider:
        # 1. Bob sees Alice's image, without the tool, and may not vary it; Carol doesn't see it.
        async with member.get(f"{base_url}/image/{image_id}") as answer:
            page = await answer.text()
        assert answer.status == 200 and "region-tool" not in page and "region.js" not in page
        async with member.post(url, data=form(good), headers={"X-CSRF-Token": member.csrf}) as answer:
            assert answer.status == 403
            assert (await answer.json())["error"] == "Only the member who made this image can vary it."
        async with outsider.post(url, data=form(good), headers={"X-CSRF-Token": outsider.csrf}) as answer:
            assert answer.status == 404
        # 2. No CSRF token, or a wrong one: refused before anything is read.
        for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
            async with owner.post(url, data=form(good), headers=headers) as answer:
                assert answer.status == 403 and "CSRF" in (await answer.json())["error"]
        # 3. Bad masks, each with its reason.
        white = np.full((SIDE, SIDE), 255, np.uint8)
        jpeg = io.BytesIO()
        Image.fromarray(left_third()).save(jpeg, "JPEG")
        cases = [
            (form(jpeg.getvalue(), content_type="image/jpeg"), "The mask must be a PNG image"),
            (form(b"\x89PNG\r\n\x1a\nbroken"), "The mask is not a PNG, JPEG, WebP or GIF image (its contents don't match)."),
            (form(png(left_third(SIDE, SIDE // 2))), "The mask is 128×64; it must be the image's size, 128×128."),
            (form(png(np.zeros((SIDE, SIDE), np.uint8))), "The mask covers 0.0% of the image: paint over at least 1%"),
            (form(png(white)), "The mask covers 100% of the image: leave at least 10% unpainted"),
            (form(png(np.dstack([white, white, white, np.zeros_like(white)]), "RGBA")), "covers 100%"),  # transparent: flattened onto white
            (form(None, "a prompt"), "the form had no mask"),
            (aiohttp.FormData({"prompt": "a harbour"}), "Send the mask as a form (multipart/form-data)."),
            (form(good, "a harbour --s 5000"), "`--s 5000` is out of range"),
        ]
        for data, reason in cases:
            async with owner.post(url, data=data, headers={"X-CSRF-Token": owner.csrf}) as answer:
                error = (await answer.json())["error"]
                assert answer.status == 400 and reason in error and error.endswith("Nothing was queued."), error
        await members.update_guild(simcord_bot.db, guild.id, banned_words=("storm",))
        async with owner.post(url, data=form(good, "a STORM over the harbour"), headers={"X-CSRF-Token": owner.csrf}) as answer:
            assert answer.status == 400 and "doesn't allow the word `storm`" in (await answer.json())["error"]
        # 4. An unknown job's state is not there, nor is another member's.
        async with member.get(f"{base_url}/api/jobs/{before[0][0]}") as answer:
            assert answer.status == 404
    assert await job_rows(simcord_bot) == before
    assert await simcord_bot.db.execute_fetchall("SELECT id FROM queue_jobs") == queued_before


async def test_region_jobs_from_the_web_are_rate_limited(simcord_env, world, simcord_bot, base_url):
    _, channel, alice, _ = world
    image_id = await alices_image(simcord_env, world, simcord_bot)
    client = await signed_in(alice, channel)
    statuses = []
    async with client:
        for _ in range(20):  # a script: empty masks, each refused, and each counted
            async with client.post(f"{base_url}/api/image/{image_id}/vary-region",
                                   data=form(png(np.zeros((SIDE, SIDE), np.uint8))),
                                   headers={"X-CSRF-Token": client.csrf}) as answer:
                statuses.append(answer.status)
                if answer.status == 429:
                    assert (await answer.json())["error"].startswith("Slow down")
    assert statuses.count(400) >= 5 and statuses.count(429) >= 8


async def test_role_quotas_apply_to_jobs_queued_from_the_web(simcord_env, world, mod, simcord_bot, base_url):
    """A role's quota replaces the per-member one on the web too, with the roles the bot saw when the
    member last used a command (the bot has no members intent)."""
    guild, channel, *_ = world
    newcomers = guild.create_role("Newcomers")
    carol = guild.add_member(simcord_env.create_user("carol"), roles=[newcomers])
    await mod.slash(channel, "admin quota", member=8)
    await mod.slash(channel, "admin quota", role=newcomers, images=4)  # less generous: it applies all the same
    await carol.slash(channel, "imagine", prompt="a quiet harbour --seed 3")  # 4 of her role's 4
    await run_until(simcord_env, lambda: finished(channel, "a quiet harbour"))
    [(image_id,)] = await simcord_bot.db.execute_fetchall("SELECT MIN(id) FROM images WHERE user_id = ?", (carol.id,))
    before = await job_rows(simcord_bot)
    client = await signed_in(carol, channel)
    async with client:
        async with client.post(f"{base_url}/api/image/{image_id}/vary-region", data=form(png(left_third())),
                               headers={"X-CSRF-Token": client.csrf}) as answer:
            error = (await answer.json())["error"]
    assert answer.status == 400 and error.startswith("You've used 4 of your 4 images today;"), error
    assert error.endswith("Nothing was queued.")
    assert await job_rows(simcord_bot) == before
