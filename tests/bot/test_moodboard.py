"""/moodboard create: uploads -> checks -> an EMBED job -> a code anyone can use."""

from __future__ import annotations

import io
import re
import struct
import zlib

import pytest
from PIL import Image

from tests.bot.conftest import acknowledge_user_errors, run_until
from tests.bot.test_imagine import finished, job_message
from tests.bot.test_prefer import job_rows


def png(color: str, size: tuple[int, int] = (48, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's shape)."""
    data = bytearray(png("red", (8, 8)))
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts at byte 16
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def moodboard_done(channel) -> bool:
    message = job_message(channel, "moodboard:")
    return message is not None and ("moodboard code" in message.content or "failed" in message.content)


@pytest.mark.parametrize("with_rank_pool", [True])
async def test_a_moodboard_code_personalizes_another_members_prompt(simcord_env, world, simcord_bot):
    _, channel, alice, bob = world
    jpeg = io.BytesIO()
    Image.new("RGB", (40, 30), "navy").save(jpeg, format="JPEG", exif=Image.Exif())
    result = await alice.slash(
        channel, "moodboard create",
        image1=("sunset.png", png("orange")), image2=("sea.jpg", jpeg.getvalue()), image3=("sky.png", png("skyblue")),
        name="Sunsets",
    )
    # The member's reply is ephemeral; the job's message is public, as for /imagine.
    assert result.ephemeral and "queued" in result.response.content
    waiting = channel.last_message
    assert waiting.content.startswith(f"**moodboard: 3 images** - {alice.mention}")
    assert "(Waiting to start)" in waiting.content

    # The EMBED job carries three re-encoded PNGs.
    from engine.jobs import Job

    async with simcord_bot.db.execute("SELECT job FROM queue_jobs") as cur:
        [(payload,)] = await cur.fetchall()
    sent = Job.from_json(payload).embed.images
    assert len(sent) == 3 and all(data.startswith(b"\x89PNG") for data in sent)
    assert Image.open(io.BytesIO(sent[1])).size == (40, 30)

    await run_until(simcord_env, lambda: moodboard_done(channel))
    done = job_message(channel, "moodboard:").content
    code = re.search(r"moodboard code `([a-z2-7]{7})`", done).group(1)
    assert f"--p {code}" in done and "(profile **Sunsets**)" in done

    # a moodboard is a profile: its name is taken now, and a second board of that name is refused before queueing
    again = await alice.slash(channel, "moodboard create", image1=("a.png", png("red")), name="sunsets")
    assert again.ephemeral and "You already have a profile named `sunsets`" in again.response.content
    acknowledge_user_errors(simcord_env)

    listed = await alice.slash(channel, "codes")
    assert f"`{code}` · moodboard v1 · 3 images · public" in listed.response.content

    await bob.slash(channel, "imagine", prompt=f"a cat --p {code} --seed 4")
    await run_until(simcord_env, lambda: finished(channel, "a cat --seed 4"))
    final = job_message(channel, "a cat --seed 4").content
    assert final.startswith(f"**a cat --seed 4 --p {code}** - {bob.mention}")
    assert f"`--p {code} --s 100`" in final


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [{"TASTEMAKER_WORKERS": "0"}])
async def test_bad_uploads_are_named_and_nothing_is_queued(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    good = ("fine.png", png("green"))
    truncated = png("purple", (64, 64))
    cases = [
        (("notes.txt", b"just some words"), "`notes.txt` is not an image (text/plain)"),
        (("huge.png", b"\x89PNG" + bytes(8 * 1024 * 1024)), "`huge.png` is too big (8.0 MB)"),
        (("bomb.png", png_claiming(40000, 40000)), "`bomb.png` is far too large in pixels"),
        (("wide.png", png_claiming(5000, 4000)), "`wide.png` is 5000×4000 pixels (20.0 MP): images may have at most 16 MP"),
        (("fake.png", b"GIF87a but not really an image"), "`fake.png` is not a PNG, JPEG, WebP or GIF image"),
        (("broken.png", truncated[: len(truncated) - 30]), "`broken.png` could not be read as an image"),
    ]
    for upload, expected in cases:
        result = await alice.slash(channel, "moodboard create", image1=good, image2=upload)
        assert result.ephemeral, expected
        assert expected in result.response.content, result.response.content
    acknowledge_user_errors(simcord_env)
    assert channel.last_message is None
    assert await job_rows(simcord_bot) == []
    async with simcord_bot.db.execute("SELECT COUNT(*) FROM queue_jobs") as cur:
        assert (await cur.fetchone())[0] == 0


@pytest.mark.parametrize("bot_overrides", [{"TASTEMAKER_WORKERS": "0"}])
async def test_moodboard_without_a_rank_pool(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    result = await alice.slash(channel, "moodboard create", image1=("a.png", png("red")))
    assert result.ephemeral and "need a rank pool" in result.response.content
    acknowledge_user_errors(simcord_env)
    assert await job_rows(simcord_bot) == []
