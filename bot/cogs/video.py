"""Animate's results: how a video job is stored and shown (delivery hooks; its commands are
/imagine --video and the Animate buttons, bot/flows_video.py; /admin video sets the clips).

Each clip shown becomes an image row (its first frame, which galleries, likes and taste read) with
its MP4 beside it (images.video); a clip the content filter blocks gets neither, as a blocked image.
The message attaches the clips Discord gets (fitted to the upload limit by the worker, or here
when the filter or the limit changed since) with Extend (Auto) · Extend (Manual) · Loop · ❤️ per clip.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import discord
from bot.app import Tastemaker
from bot.delivery import QUARANTINE, Finish, filter_notice
from engine import posting, safety
from engine.db import jobs as db_jobs
from engine.db import members
from engine.jobs import JobEvent, JobKind

KIND = JobKind.VIDEO


def make_hooks(bot: Tastemaker):
    data_dir = Path(bot.settings.data_dir)

    async def write(relative: str, data: bytes) -> None:
        path = data_dir / relative
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(path.write_bytes, data)

    async def on_done(record: db_jobs.JobRecord, event: JobEvent) -> dict:
        """Store the clips the server's policy lets through (idempotent: a replayed event rewrites the same files)."""
        result = event.result
        rules = await members.get_guild(bot.db, record.guild_id)
        age_restricted = bool(record.request.get("age_restricted"))
        withheld, spoiler, kept = [], [], []
        for n, clip in enumerate(result.clips, 1):
            verdict = safety.verdict(clip.nsfw, rules.nsfw_policy, rules.nsfw_threshold, age_restricted)
            if verdict is safety.Verdict.BLOCK:
                withheld.append(n)
                if rules.nsfw_keep:
                    await write(f"{QUARANTINE}/{record.id}/{n}.mp4", clip.mp4)
                continue
            if verdict is safety.Verdict.SPOILER:
                spoiler.append(n)
            folder = f"images/{record.id}"
            await write(f"{folder}/{n}.png", clip.poster)
            await write(f"{folder}/{n}.mp4", clip.mp4)
            await db_jobs.add_image(
                bot.db, job_id=record.id, idx=n, user_id=record.user_id, path=f"{folder}/{n}.png", width=clip.width,
                height=clip.height, seed=clip.seed, embedding=clip.embedding, nsfw=clip.nsfw, video=f"{folder}/{n}.mp4",
            )
            kept.append(n)
        # What Discord gets: the worker's fitted clips, unless the filter now shows others than it did.
        posted = result.post_clips
        if len(posted) != len(result.clips) or {n for n, data in enumerate(posted, 1) if data} != set(kept):
            limit = record.request.get("upload_limit") or posting.DEFAULT_LIMIT
            fitted = await asyncio.to_thread(posting.fit_clips, [result.clips[n - 1].mp4 for n in kept], limit)
            posted = [b""] * len(result.clips)
            for n, data in zip(kept, fitted, strict=True):
                posted[n - 1] = data
        names = {}
        for n in kept:
            if posted[n - 1] == result.clips[n - 1].mp4:
                names[str(n)] = f"{n}.mp4"
            else:
                names[str(n)] = f"post-{n}.mp4"
                await write(f"images/{record.id}/post-{n}.mp4", posted[n - 1])
        filtered = {"withheld": withheld, "spoiler": spoiler}
        return {"posted": names, **({"nsfw": filtered} if withheld or spoiler else {})}

    async def final_message(record: db_jobs.JobRecord, limit: int | None) -> Finish:
        clips = [image for image in await db_jobs.images_of(bot.db, record.id) if image.video]
        filtered = record.request.get("nsfw", {})
        withheld, spoiler = filtered.get("withheld", []), set(filtered.get("spoiler", []))
        total = len(clips) + len(withheld)
        notice = filter_notice(withheld, total, bool(spoiler), "clip").lstrip("\n")
        lines = [notice] if notice else []
        detail = f"{total} clip{'s' if total != 1 else ''}"
        if not clips:
            return Finish(detail=detail, lines=lines)
        names = record.request.get("posted", {})
        folder = data_dir / "images" / record.id
        data = await asyncio.gather(*(asyncio.to_thread((folder / names.get(str(c.idx), f"{c.idx}.mp4")).read_bytes)
                                      for c in clips))
        if limit is not None and sum(map(len, data)) > limit - posting.REQUEST_MARGIN:  # /show where uploads are smaller
            try:
                data = await asyncio.to_thread(posting.fit_clips, data, limit)
            except ValueError:  # not even small clips fit: the buttons and a pointer to the web
                lines.append("(The clips don't fit this server's upload limit: open them on the web companion, `/web`.)")
                return Finish(detail=detail, lines=lines, view=bot.views.clips([(n, c.id) for n, c in enumerate(clips, 1)]))
        files = [discord.File(io.BytesIO(clip_data), filename=f"tastemaker_{c.id}.mp4", spoiler=c.idx in spoiler)
                 for c, clip_data in zip(clips, data, strict=True)]
        return Finish(detail=detail, lines=lines, attachments=files,
                      view=bot.views.clips([(n, c.id) for n, c in enumerate(clips, 1)]))

    return on_done, final_message


async def setup(bot: Tastemaker) -> None:
    bot.delivery.on_done[KIND], bot.delivery.final_message[KIND] = make_hooks(bot)
    bot.delivery.keeps_images.add(KIND)
