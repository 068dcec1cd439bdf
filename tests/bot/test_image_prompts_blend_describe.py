"""Image prompts, /blend and /describe through SimCord: what a member sees.

Links point at a tiny aiohttp server on 127.0.0.1 (tests/bot/test_sref.py), which the
SSRF guard allows only where a test says so; no test touches the network.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot import generation
from tests.bot.conftest import acknowledge_user_errors, private_reply, custom_id, run_until
from tests.bot.test_imagine import buttons, finished, job_message
from tests.bot.test_sref import allow_loopback, image_server

NO_WORKERS = {"TASTEMAKER_WORKERS": "0"}


def png(color: str, size: tuple[int, int] = (48, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def spy_on_submit(bot, monkeypatch) -> list:
    submitted = []
    submit = bot.queue.submit

    async def spy(job):
        submitted.append(job)
        await submit(job)

    monkeypatch.setattr(bot.queue, "submit", spy)
    return submitted


async def no_jobs(bot) -> bool:
    async with bot.db.execute("SELECT COUNT(*) FROM jobs") as cur:
        return (await cur.fetchone())[0] == 0


async def refused(env, bot, channel, member, command: str, expected: str, **options) -> None:
    reply = private_reply(await member.slash(channel, command, **options))
    assert expected in reply, reply
    assert acknowledge_user_errors(env)[-1] == reply
    assert await no_jobs(bot)
    assert channel.last_message is None


# -- image prompts ----------------------------------------------------------------


async def test_an_attachment_and_a_link_are_image_prompts_weighted_by_iw(simcord_env, world, simcord_bot, monkeypatch):
    _, channel, alice, bob = world
    allow_loopback(monkeypatch)
    submitted = spy_on_submit(simcord_bot, monkeypatch)
    async with image_server() as base:
        link = f"{base}/style.png"
        await alice.slash(channel, "imagine", prompt=f"{link} a lighthouse --iw 2 --seed 3",
                          image=("cat.png", png("orange", (64, 40))))

    [job] = submitted
    spec = job.generate
    assert len(spec.prompt_images) == 2 and spec.image_weight == 2.0 and spec.prompt == "a lighthouse"
    assert [Image.open(io.BytesIO(p)).size for p in spec.prompt_images] == [(64, 40), (768, 432)]
    assert spec.ip_adapter_scale == pytest.approx(generation.image_scale("tiny", 2.0))
    assert generation.image_scale("tiny", 2.0) > generation.image_scale("tiny", 1.0) > generation.image_scale("tiny", 0.0) == 0
    await run_until(simcord_env, lambda: finished(channel, "a lighthouse"))
    grid = job_message(channel, "a lighthouse")
    assert grid.content.startswith(f"**{link} a lighthouse --seed 3 --iw 2** - {alice.mention}")
    assert buttons(grid) == ["U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4", "🔄"]
    assert Image.open(io.BytesIO(await grid.attachments[0].read())).size == (256, 256)

    # Someone else can't reroll it; 🔄 runs it again with the same attachment (the link is fetched again).
    refused_click = await bob.click(grid, custom_id=custom_id(grid, "🔄"))
    assert refused_click.ephemeral and "Only" in refused_click.response.content
    acknowledge_user_errors(simcord_env)
    async with image_server() as base2:
        monkeypatch.setattr(generation, "fetch_links", _same_server(base, base2))
        await alice.click(grid, custom_id=custom_id(grid, "🔄"))
    assert len(submitted) == 2 and submitted[1].generate.prompt_images[0] == spec.prompt_images[0]
    assert submitted[1].generate.seed != 3


def _same_server(old: str, new: str):
    """The reroll's link, served by a fresh test server on another port."""
    fetch_links = generation.fetch_links

    async def fetch(links):
        return await fetch_links([link.replace(old, new) for link in links])

    return fetch


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_bad_image_prompts_get_a_private_error_and_queue_nothing(simcord_env, world, simcord_bot, monkeypatch):
    _, channel, alice, _ = world
    env, bot = simcord_env, simcord_bot
    await refused(env, bot, channel, alice, "imagine", "`notes.txt` is not an image (text/plain): /imagine takes PNG",
                  prompt="a cat", image=("notes.txt", b"just words"))
    await refused(env, bot, channel, alice, "imagine", "`huge.png` is too big (8.0 MB)",
                  prompt="a cat", image=("huge.png", b"\x89PNG" + bytes(8 * 1024 * 1024)))
    await refused(env, bot, channel, alice, "imagine", "The image link `http://10.0.0.1/x.png` points to a private address",
                  prompt="http://10.0.0.1/x.png a cat")
    await refused(env, bot, channel, alice, "imagine", "`--iw` weights image prompts, and this prompt has none",
                  prompt="a cat --iw 2")
    allow_loopback(monkeypatch)
    async with image_server() as base:
        await refused(env, bot, channel, alice, "imagine", "An image prompt needs a description too, or a second image",
                      prompt=f"{base}/style.png")
        await refused(env, bot, channel, alice, "imagine", f"The image at the image link `{base}/bomb.png` is 5000×4000 pixels",
                      prompt=f"{base}/bomb.png a cat")
        await refused(env, bot, channel, alice, "imagine", f"The image link `{base}/page.html` is not an image (text/html)",
                      prompt=f"{base}/page.html a cat")


# -- /blend -------------------------------------------------------------------------


async def test_blend_makes_a_portrait_grid_and_rerolls_from_the_same_images(simcord_env, world, simcord_bot, monkeypatch):
    _, channel, alice, bob = world
    submitted = spy_on_submit(simcord_bot, monkeypatch)
    result = await alice.slash(channel, "blend", image1=("a.png", png("red")), image2=("b.png", png("navy")),
                               image3=("c.jpg", png("gold")), dimensions="portrait")
    assert not result.ephemeral
    [job] = submitted
    assert job.kind == "blend" and len(job.generate.prompt_images) == 3 and job.generate.prompt == ""
    assert (job.generate.width, job.generate.height) == (128, 192)
    assert channel.last_message.content.startswith(f"**blend of 3 images --ar 2:3** - {alice.mention}")

    await run_until(simcord_env, lambda: finished(channel, "blend of 3 images"))
    grid = job_message(channel, "blend of 3 images")
    assert buttons(grid) == ["U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4", "🔄"]
    assert Image.open(io.BytesIO(await grid.attachments[0].read())).size == (256, 384)

    picked = await alice.click(grid, label="U2")
    assert not picked.ephemeral and "Image #2" in channel.last_message.content
    refused_click = await bob.click(grid, custom_id=custom_id(grid, "🔄"))
    assert refused_click.ephemeral and "Only" in refused_click.response.content
    acknowledge_user_errors(simcord_env)

    await alice.click(grid, custom_id=custom_id(grid, "🔄"))
    assert [j.kind for j in submitted] == ["blend", "blend"]
    assert submitted[1].generate.prompt_images == job.generate.prompt_images
    assert submitted[1].generate.seed != job.generate.seed


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_bad_blends_get_a_private_error_and_queue_nothing(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    env, bot = simcord_env, simcord_bot
    await refused(env, bot, channel, alice, "blend", "/blend takes 2 to 5 images, and you gave 1: add another",
                  image1=("a.png", png("red")))
    await refused(env, bot, channel, alice, "blend", "`b.txt` is not an image (text/plain): /blend takes PNG",
                  image1=("a.png", png("red")), image2=("b.txt", b"words"))
    await refused(env, bot, channel, alice, "blend", "`b.png` is too big (8.0 MB)",
                  image1=("a.png", png("red")), image2=("b.png", b"\x89PNG" + bytes(8 * 1024 * 1024)))
    await refused(env, bot, channel, alice, "blend", "`b.png` is not a PNG, JPEG, WebP or GIF image",
                  image1=("a.png", png("red")), image2=("b.png", b"GIF87a but not really"))


# -- /describe ------------------------------------------------------------------------


def described(channel) -> bool:
    message = job_message(channel, "describe an image")
    return message is not None and ("1️⃣" in message.content or "failed" in message.content)


async def test_describe_gives_four_prompts_whose_buttons_imagine_them(simcord_env, world, simcord_bot, monkeypatch):
    _, channel, alice, bob = world
    submitted = spy_on_submit(simcord_bot, monkeypatch)
    await alice.slash(channel, "describe", image=("wide.png", png("teal", (96, 64))))
    [job] = submitted
    assert job.kind == "describe" and len(job.describe.styles) > 8

    await run_until(simcord_env, lambda: described(channel))
    message = job_message(channel, "describe an image")
    assert message.content.startswith(f"**describe an image** - {alice.mention}")
    keycaps = ("1️⃣", "2️⃣", "3️⃣", "4️⃣")
    lines = [line for line in message.content.split("\n") if line.startswith(keycaps)]
    assert [line.split(" ", 1)[0] for line in lines] == list(keycaps)
    prompts = [line.split(" ", 1)[1] for line in lines]
    assert all(p.endswith(" --ar 3:2") for p in prompts)  # 96x64 is 3:2
    assert buttons(message) == ["1", "2", "3", "4", "🔄"]
    assert Image.open(io.BytesIO(await message.attachments[0].read())).size == (96, 64)
    # Its id is on its first line, as on every finished message, and /show brings it back.
    assert message.content.split("\n")[0].endswith(f" · job `{job.id[:8]}`")
    shown = await alice.slash(channel, "show", job=job.id[:8])
    assert shown.response.content == message.content and buttons(shown.response.message) == buttons(message)

    # Someone else's buttons are refused; 2 runs /imagine with prompt 2.
    refused_click = await bob.click(message, label="2")
    assert refused_click.ephemeral and "Only" in refused_click.response.content
    acknowledge_user_errors(simcord_env)
    await alice.click(message, label="2")
    assert submitted[-1].kind == "imagine" and (submitted[-1].generate.width, submitted[-1].generate.height) == (192, 128)
    assert channel.last_message.content.startswith(f"**{prompts[1].removesuffix(' --ar 3:2')}")
    await run_until(simcord_env, lambda: finished(channel, prompts[1][:20]))
    assert buttons(job_message(channel, prompts[1][:20]))[-1] == "🔄"

    # 🔄 describes the same image again, with a new seed.
    await alice.click(message, custom_id=custom_id(message, "🔄"))
    assert submitted[-1].kind == "describe" and submitted[-1].describe.image == job.describe.image
    assert submitted[-1].describe.seed != job.describe.seed


async def test_describe_reads_a_link(simcord_env, world, simcord_bot, monkeypatch):
    _, channel, alice, _ = world
    allow_loopback(monkeypatch)
    submitted = spy_on_submit(simcord_bot, monkeypatch)
    async with image_server() as base:
        await alice.slash(channel, "describe", link=f"{base}/style.png")
    [job] = submitted
    assert Image.open(io.BytesIO(job.describe.image)).size == (768, 432)
    await run_until(simcord_env, lambda: described(channel))
    assert job_message(channel, "describe an image").content.count("--ar 16:9") == 4


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_bad_describes_get_a_private_error_and_queue_nothing(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    env, bot = simcord_env, simcord_bot
    await refused(env, bot, channel, alice, "describe", "Give /describe one image")
    await refused(env, bot, channel, alice, "describe", "Give /describe one image",
                  image=("a.png", png("red")), link="https://example.com/a.png")
    await refused(env, bot, channel, alice, "describe", "`a.txt` is not an image (text/plain): /describe takes PNG",
                  image=("a.txt", b"words"))
    await refused(env, bot, channel, alice, "describe", "The image link `http://192.168.1.1/a.png` points to a private address",
                  link="http://192.168.1.1/a.png")
    await refused(env, bot, channel, alice, "describe", "is not an http(s) link", link="ftp://example.com/a.png")
