"""Animate through SimCord on the tiny preset's video model (random-weight Wan 2.2 layout, 64 px,
9 frames at 8 fps; an Extend adds 4): Animate from U, Manual, Extend, Loop, /imagine --video with an
attachment, the content filter, a restart in the middle of a video job and /show. Every clip is a
real H.264 MP4, read back (engine/mp4.py) and counted by ffprobe where it is installed."""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import pytest
from PIL import Image

from engine import mp4
from tests.bot.conftest import acknowledge_user_errors, private_reply, run_until
from tests.bot.test_image_prompts_blend_describe import spy_on_submit
from tests.bot.test_imagine import buttons, job_message
from tests.bot.test_sref import allow_loopback, image_server

CLIP_BUTTONS = ["1 Extend (Auto)", "1 Extend (Manual)", "1 Loop", "1", "2 Extend (Auto)", "2 Extend (Manual)", "2 Loop", "2"]


def video_done(channel, label: str) -> bool:
    """A video job's message about `label` (its headline label, or a piece of its prompt) is finished."""
    message = job_message(channel, f"- {label} -") or job_message(channel, label)
    return message is not None and " clip" in message.content and "job `" in message.content


async def clips_of(message) -> list[mp4.Clip]:
    found = []
    for attachment in message.attachments:
        assert attachment.filename.endswith(".mp4"), attachment.filename
        data = await attachment.read()
        found.append(mp4.read(data))
        if shutil.which("ffprobe"):  # an independent decoder agrees on what is in the file
            probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-of", "json", "-show_entries",
                                    "stream=codec_name,width,height,nb_read_frames", "-"], input=data, capture_output=True)
            [stream] = json.loads(probe.stdout)["streams"]
            assert (stream["codec_name"], int(stream["nb_read_frames"])) == ("h264", found[-1].frames)
    return found


async def first_image(env, channel, alice, prompt: str):
    await alice.slash(channel, "imagine", prompt=prompt)
    await run_until(env, lambda: (m := job_message(channel, prompt)) is not None and bool(m.attachments) and "%" not in m.content
                    and "Waiting" not in m.content)
    await alice.click(job_message(channel, prompt), label="U1")
    return channel.last_message


async def test_animate_extend_loop_and_manual_from_a_u_image(simcord_env, world, mod, simcord_bot, discord_limits):
    _, channel, alice, bob = world
    shown = await mod.slash(channel, "admin video", clips=2)
    assert "makes **2** clips a job here; each counts as **8** images" in shown.response.content
    single = await first_image(simcord_env, channel, alice, "a red kite over the sea --seed 5")
    assert buttons(single)[-3:] == ["Animate (Low motion)", "Animate (High motion)", "Animate (Manual)"]
    refused = await bob.click(single, label="Animate (High motion)")
    assert refused.ephemeral and "Only" in refused.response.content
    acknowledge_user_errors(simcord_env)

    # Animate (High motion): one message, two clips of 9 frames (1.125 s) at 64 px, each with its buttons.
    await alice.click(single, label="Animate (High motion)")
    await run_until(simcord_env, lambda: video_done(channel, "Animate (High motion)"))
    animated = job_message(channel, "Animate (High motion)")
    assert animated.content.startswith(f"**a red kite over the sea** - Animate (High motion) - {alice.mention} · 2 clips")
    assert buttons(animated) == CLIP_BUTTONS
    progress = [w for w in discord_limits.writes if w.message_id == animated.id][:-1]
    assert any(w.upload for w in progress)  # a progress edit carried a preview frame
    clips = await clips_of(animated)
    assert [(c.width, c.height, c.frames, c.duration) for c in clips] == [(64, 64, 9, 1.125)] * 2
    [(images, kind)] = await simcord_bot.db.execute_fetchall(
        "SELECT images, kind FROM jobs WHERE kind = 'video'")
    assert (images, kind) == (16, "video")  # two clips at the server's 8 images each

    # ❤️ on a clip by another member counts on the grid of the image it animates.
    liked = await bob.click(animated, label="2")
    assert "counts toward your taste" in liked.response.content
    [(grid_image,)] = await simcord_bot.db.execute_fetchall("SELECT grid_image_id FROM likes")
    [(start_id,)] = await simcord_bot.db.execute_fetchall("SELECT MIN(id) FROM images WHERE video IS NULL")  # U1
    assert grid_image == start_id

    # Extend (Auto): the clip continued from its last frame, 4 frames more; Loop: the same, ending where it began.
    await alice.click(animated, label="1 Extend (Auto)")
    await alice.click(animated, label="2 Loop")
    await run_until(simcord_env, lambda: video_done(channel, "Extend") and video_done(channel, "Loop"))
    extended = await clips_of(job_message(channel, "- Extend -"))
    assert [(c.frames, c.duration) for c in extended] == [(13, 1.625)] * 2
    looped_message = job_message(channel, "- Loop -")
    [looped, _] = [list(mp4.frames(await a.read())) for a in looped_message.attachments]
    assert len(looped) == 13

    # Extend (Manual): the modal starts from the prompt; what is typed is the motion prompt.
    shown = await alice.click(job_message(channel, "- Extend -"), label="1 Extend (Manual)")
    assert shown.modal is not None
    await alice.submit_modal(shown, {"prompt": "the kite dives --motion high"})
    await run_until(simcord_env, lambda: video_done(channel, "Extend (Manual)"))
    manual = job_message(channel, "Extend (Manual)")
    assert manual.content.startswith("**the kite dives** - Extend (Manual)")
    assert [c.frames for c in await clips_of(manual)] == [17, 17]  # extended twice: 9 + 4 + 4

    # Animate (Manual) on the image: the modal is prefilled with its prompt.
    shown = await alice.click(single, label="Animate (Manual)")
    [row] = shown.modal["components"]
    assert row["components"][0]["value"] == "a red kite over the sea"
    acknowledge_user_errors(simcord_env)


@pytest.mark.parametrize("bot_overrides", [{"TASTEMAKER_WORKERS": "0"}])
async def test_video_from_an_attachment_survives_a_restart_and_shows_again(simcord_env, world, mod, restart_bot, settings):
    _, channel, alice, _ = world
    await mod.slash(channel, "admin video", clips=1)
    attachment = io.BytesIO()
    Image.new("RGB", (96, 64), "orange").save(attachment, "PNG")
    refused = await alice.slash(channel, "imagine", prompt="a lantern --motion high")
    assert "`--motion` animates an image: add `--video`" in private_reply(refused)
    refused = await alice.slash(channel, "imagine", prompt="a lantern --video --bs 4")
    assert "`--bs 4` asks for more clips than this server makes: at most 1" in private_reply(refused)
    acknowledge_user_errors(simcord_env)
    await alice.slash(channel, "imagine", prompt="a lantern swinging --video --loop",
                      image=("lantern.png", attachment.getvalue()))
    assert "(Waiting to start)" in channel.last_message.content

    # The bot restarts with the job queued; its worker (inline, in the new bot) runs it.
    from engine.worker import InlineWorker

    bot = await restart_bot()
    worker = InlineWorker(settings.queue_url, "tiny", "cpu", settings.data_dir).start()
    try:
        await run_until(simcord_env, lambda: video_done(channel, "Animate (Low motion)"))
    finally:
        worker.stop()
    message = job_message(channel, "a lantern swinging")
    assert message.content.startswith(f"**a lantern swinging --video --loop** - Animate (Low motion) - {alice.mention} · 1 clip")
    [clip] = await clips_of(message)
    assert (clip.width, clip.height, clip.frames) == (80, 48, 9)  # 3:2 at the tiny model's 64 px, sides of 16
    job_id = message.content.rsplit("job `", 1)[1][:8]

    gallery = channel.guild.create_text_channel("gallery")
    again = await alice.slash(gallery, "show", job=job_id)
    assert not again.ephemeral
    reposted = gallery.last_message
    assert reposted.content == message.content
    assert [c.frames for c in await clips_of(reposted)] == [9]
    assert buttons(reposted) == CLIP_BUTTONS[:4]
    # Its buttons work after the restart: Extend the clip where /show posted it.
    worker = InlineWorker(settings.queue_url, "tiny", "cpu", settings.data_dir).start()
    try:
        await alice.click(reposted, label="1 Extend (Auto)")
        await run_until(simcord_env, lambda: video_done(gallery, "Extend"))
    finally:
        worker.stop()
    [extended] = await clips_of(job_message(gallery, "- Extend -"))
    assert extended.frames == 13
    assert bot is not None


async def test_the_content_filter_withholds_clips_at_threshold_zero(simcord_env, world, mod, simcord_bot):
    _, channel, alice, _ = world
    await mod.slash(channel, "admin video", clips=1)
    single = await first_image(simcord_env, channel, alice, "a quiet pond --seed 2")
    await alice.click(single, label="Animate (Low motion)")
    # Queued under the default filter (so its start frame passed); scored at delivery under the new one.
    await mod.slash(channel, "admin nsfw", policy="block", threshold=0.0)
    await run_until(simcord_env, lambda: video_done(channel, "Animate (Low motion)"))
    message = job_message(channel, "Animate (Low motion)")
    assert message.attachments == [] and buttons(message) == []
    assert "The clip was withheld by this server's content filter." in message.content
    assert not await simcord_bot.db.execute_fetchall("SELECT id FROM images WHERE video IS NOT NULL")
    assert "withheld clip 1 of your job **a quiet pond**" in alice.user.dm_channel.last_message.content


async def test_clips_count_against_the_quota_and_a_clip_extends_four_times_at_most(simcord_env, world, mod, simcord_bot):
    _, channel, alice, _ = world
    await mod.slash(channel, "admin video", clips=1, images_per_clip=5)
    await mod.slash(channel, "admin quota", member=12)
    single = await first_image(simcord_env, channel, alice, "a windmill --seed 9")  # 4 of 12
    await alice.click(single, label="Animate (Low motion)")  # 5 more: 9 of 12
    await run_until(simcord_env, lambda: video_done(channel, "Animate (Low motion)"))
    clip = job_message(channel, "Animate (Low motion)")
    refused = await alice.click(clip, label="1 Extend (Auto)")
    assert refused.ephemeral and "This needs 5 images, and you have 3 of your 12 images left today" in refused.response.content
    acknowledge_user_errors(simcord_env)
    await mod.slash(channel, "admin quota", member=0)
    # A clip extended four times is as long as a clip gets: about 21 s on Wan 2.2, 3 s on the tiny model.
    from bot.generation import _seconds
    from engine.presets import WAN_I2V

    assert round(_seconds(WAN_I2V, 4)) == 21
    await simcord_bot.db.execute("UPDATE jobs SET request = json_set(request, '$.extensions', 4) WHERE kind = 'video'")
    await simcord_bot.db.commit()
    refused = await alice.click(clip, label="1 Extend (Auto)")
    assert refused.ephemeral and "This clip was extended 4 times already (about 3 s), the most a clip can be." in (
        refused.response.content)
    acknowledge_user_errors(simcord_env)
    [(jobs,)] = await simcord_bot.db.execute_fetchall("SELECT COUNT(*) FROM jobs WHERE kind = 'video'")
    assert jobs == 1  # nothing more was queued


async def test_a_link_starts_the_video_end_ends_it_and_a_bare_prompt_is_drawn_first(simcord_env, world, simcord_bot, monkeypatch):
    _, channel, alice, _ = world
    allow_loopback(monkeypatch)
    submitted = spy_on_submit(simcord_bot, monkeypatch)
    async with image_server() as base:
        await alice.slash(channel, "imagine", prompt=f"{base}/style.png a kite rising --video --bs 1 --end {base}/style.png")
    await alice.slash(channel, "imagine", prompt="a kite at dawn --video --bs 1 --motion high --ar 3:2")
    linked, drawn = (job.video for job in submitted)
    assert linked.start_image is not None and linked.end_image is not None and linked.start is None
    assert Image.open(io.BytesIO(linked.start_image)).size == (768, 432) and linked.prompt == "a kite rising"
    assert drawn.start_image is None and (drawn.start.prompt, drawn.start.count) == ("a kite at dawn", 1)
    assert (drawn.start.width, drawn.start.height, drawn.motion, drawn.clips) == (192, 128, "high", 1)
    await run_until(simcord_env, lambda: video_done(channel, "Animate (High motion)") and video_done(channel, "a kite rising"))
    [clip] = await clips_of(job_message(channel, "a kite at dawn"))
    assert (clip.width, clip.height, clip.frames) == (80, 48, 9)  # the drawn 3:2 start frame's shape
