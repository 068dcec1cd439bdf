"""Animate in the engine: H.264 MP4 clips through OpenH264 (written, read back, decoded, fitted to an
upload limit) and video jobs on the tiny preset's random-weight Wan 2.2 layout, through Engine.run as
the worker runs them."""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from engine import mp4, posting, video
from engine.jobs import GenerateSpec, Job, JobCancelled, JobError, JobKind, VideoSpec
from engine.presets import get_preset


def moving_frames(n: int, width: int = 128, height: int = 96) -> list[np.ndarray]:
    """A square crossing a gradient: something for an encoder to predict and a decoder to get back."""
    frames = []
    for t in range(n):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        frame[..., 2] = 120
        frame[20:44, 8 + 4 * t: 32 + 4 * t] = 255
        frames.append(frame)
    return frames


def png(colour: str, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def test_a_clip_is_an_h264_mp4_that_reads_back_frame_for_frame():
    frames = moving_frames(20)
    data = mp4.write(frames, fps=16, bitrate=600_000)
    assert data[4:8] == b"ftyp" and data.index(b"moov") < data.index(b"mdat")  # plays while it downloads
    clip = mp4.read(data)
    assert (clip.width, clip.height, clip.frames, clip.fps, clip.duration) == (128, 96, 20, 16.0, 1.25)
    back = list(mp4.frames(data))
    assert len(back) == 20 and back[7].shape == (96, 128, 3)
    assert np.abs(back[7].astype(int) - frames[7]).mean() < 6  # lossy, but the same picture
    if shutil.which("ffprobe"):  # an independent decoder reads the same stream
        probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-of", "json", "-show_entries",
                                "stream=codec_name,width,height,nb_read_frames,duration", "-"], input=data, capture_output=True)
        [stream] = json.loads(probe.stdout)["streams"]
        assert stream == {"codec_name": "h264", "width": 128, "height": 96, "nb_read_frames": "20", "duration": "1.250000"}
    with pytest.raises(ValueError):
        mp4.read(b"not a clip at all")


def test_clips_share_the_upload_limit_smaller_only_where_needed():
    noisy = [np.random.default_rng(n).integers(0, 256, (96, 128, 3), dtype=np.uint8) for n in range(24)]
    big = mp4.write(noisy, fps=8, bitrate=4_000_000)
    small = mp4.write(moving_frames(8), fps=8, bitrate=100_000)
    limit = posting.REQUEST_MARGIN + 2 * 60_000
    assert len(big) > 60_000 > len(small)
    fitted = posting.fit_clips([big, small], limit)
    assert fitted[1] == small  # it fit its share as it was
    assert sum(map(len, fitted)) <= limit - posting.REQUEST_MARGIN
    again = mp4.read(fitted[0])
    assert (again.frames, again.duration) == (24, 3.0) and again.width <= 128  # every frame, re-encoded to fit
    with pytest.raises(ValueError):
        posting.fit_clips([big], posting.REQUEST_MARGIN + 200)


def test_sampled_frames_are_first_middle_last_and_one_a_second():
    assert video.sampled_frames(81, 16) == [0, 16, 32, 40, 48, 64, 80]
    assert video.sampled_frames(9, 8) == [0, 4, 8]
    assert video.clip_size(1024, 1024, 640) == (640, 640) and video.clip_size(1344, 756, 640) == (848, 480)
    assert video.clip_size(96, 64, 64) == (80, 48) and video.clip_size(256, 1024, 640) == (320, 1280)


def video_job(**fields) -> Job:
    return Job(kind=JobKind.VIDEO, preset="tiny", video=VideoSpec(**{"prompt": "a paper boat", "seed": 3, "clips": 2, **fields}))


def test_a_video_job_makes_clips_from_a_start_frame_and_extends_one(engine, monkeypatch):
    reports: list[tuple[float, bytes | None]] = []
    result = engine.run(video_job(start_image=png("orange", (96, 64))), lambda p, preview: reports.append((p, preview)))
    assert len(result.clips) == 2 and result.timings["gpu"] > 0
    for n, clip in enumerate(result.clips):
        read = mp4.read(clip.mp4)
        assert (read.width, read.height, read.frames, read.duration) == (80, 48, 9, 1.125)  # 3:2 at 64 px, sides of 16
        assert (clip.seed, clip.frames, clip.fps) == (3 + n, 9, 8.0)
        assert 0 <= clip.nsfw <= 1 and len(clip.embedding) == 64
        assert Image.open(io.BytesIO(clip.poster)).size == (80, 48)
    assert result.clips[0].mp4 != result.clips[1].mp4  # each clip its own seed
    assert reports[-1][0] == 100.0 and any(preview for _, preview in reports)  # progress, with a preview frame
    assert Image.open(io.BytesIO(next(p for _, p in reports if p))).format == "JPEG"

    # Extend: the clip's frames, then 4 more from its last frame; Loop ends on its first.
    calls = []
    pipe = engine.video.pipe
    monkeypatch.setattr(engine.video, "pipe", lambda **kw: calls.append(kw) or pipe(**kw))
    first = list(mp4.frames(result.clips[0].mp4))
    extended = engine.run(video_job(previous=result.clips[0].mp4, clips=1, loop=True))
    frames = list(mp4.frames(extended.clips[0].mp4))
    assert len(frames) == 13
    assert np.abs(frames[3].astype(int) - first[3]).mean() < 12  # the clip itself, re-encoded once
    [call] = calls
    assert (call["num_frames"], call["height"], call["width"]) == (5, 48, 80)
    assert np.array_equal(np.asarray(call["image"]), first[-1])  # it continues from the clip's last frame...
    assert np.array_equal(np.asarray(call["last_image"]), first[0])  # ...and, looping, ends on its first
    # --end: the clip ends on that image (at the clip's size).
    engine.run(video_job(start_image=png("orange", (96, 64)), end_image=png("navy", (48, 32)), clips=1))
    assert np.asarray(calls[-1]["last_image"]).tolist()[0][0] == [0, 0, 128] and calls[-1]["last_image"].size == (80, 48)


def test_a_text_prompt_is_drawn_first_with_the_taste_then_animated(engine, gen, monkeypatch):
    starts = []
    run = video.VideoRunner.run

    def spy(self, job, start, *args):
        starts.append(np.asarray(start))
        return run(self, job, start, *args)

    monkeypatch.setattr(video.VideoRunner, "run", spy)
    tasted = GenerateSpec(prompt="a paper boat", width=128, height=128, seed=5, count=1,
                          conditioning=gen.random_vector(64, 1), ip_adapter_scale=1.0)
    [clip] = engine.run(video_job(start=tasted, clips=1, motion="high")).clips
    engine.run(video_job(start=tasted.model_copy(update={"conditioning": None, "ip_adapter_scale": 0.0}), clips=1))
    drawn = engine.run(Job(kind=JobKind.IMAGINE, preset="tiny", generate=tasted)).images[0]
    # The clip starts from exactly the image the preset draws for that prompt and taste; without the taste, another.
    assert np.array_equal(starts[0], np.asarray(Image.open(io.BytesIO(drawn.png)).convert("RGB")))
    assert np.abs(starts[0].astype(int) - starts[1]).mean() > 1
    assert (clip.width, clip.height) == (64, 64)


def test_bad_video_input_fails_at_once_and_cancelling_stops(engine):
    with pytest.raises(JobError, match="the start frame"):
        engine.run(video_job(start_image=b"not a png"))
    with pytest.raises(JobError, match="the clip to extend can't be read"):
        engine.run(video_job(previous=b"not an mp4"))
    with pytest.raises(JobError, match="the end frame"):
        engine.run(video_job(start_image=png("red", (64, 64)), end_image=b"nope"))
    with pytest.raises(JobCancelled):
        engine.run(video_job(start_image=png("red", (64, 64))), should_stop=iter([False] * 4 + [True] * 99).__next__)
    with pytest.raises(ValueError, match="either start_image or start"):
        VideoSpec(prompt="x")
    assert get_preset("tiny").video.frames % 4 == 1


def test_the_worker_withholds_flagged_clips_from_what_it_posts(engine):
    job = video_job(start_image=png("teal", (64, 64))).model_copy(update={"upload_limit": 10 * 2**20})
    result = engine.run(job)
    posted = posting.clips_for_result(job, result)
    assert posted == [clip.mp4 for clip in result.clips]  # small enough: the clips themselves
    flagged = posting.clips_for_result(job.model_copy(update={"nsfw_threshold": 0.0}), result)
    assert flagged == [b"", b""]
