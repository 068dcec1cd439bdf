"""The job pump: queue events -> database -> Discord message edits.

One task for all jobs, consuming JobQueue.follow(): it wakes as soon as a job
has news, so a result is stored and its final edit sent at once, while
progress edits stay throttled (PROGRESS_EDIT_S) for Discord's rate limits.
Between events it ticks every POLL_S for what depends on time: queue
positions, throttled edits and failed edits' retries. State lives in the
database (jobs.cursor, state, delivered_at), so after a restart the pump
carries on where it stopped, and a result is stored once and shown once even
when a Discord edit fails and is retried.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from PIL import Image

from bot import render
from engine import safety
from engine.db import jobs as db_jobs
from engine.db import members, transaction
from engine.jobs import EventType, JobEvent, JobState
from engine.queue import Followed

if TYPE_CHECKING:
    from bot.app import Tastemaker

log = logging.getLogger("bot.delivery")

POLL_S = 0.5  # the pump's tick between events (positions, throttled edits, retries); events wake it at once
ACTIVE = (JobState.QUEUED, JobState.RUNNING)
PROGRESS_EDIT_S = 2.0  # Discord allows about 5 edits per 5 s per channel
RETRY_S = (2, 5, 15, 60, 300)
QUARANTINE = "quarantine"  # under the data dir: blocked images an owner chose to keep (nsfw_keep)
WITHHELD_TILE = (128, 128, 128)  # a blocked image's place in its grid: the other tiles keep their U/V numbers


@dataclass
class _Shown:
    text: str = ""
    at: float = 0.0
    failures: int = 0
    retry_at: float = 0.0


class Delivery:
    def __init__(self, bot: Tastemaker):
        self.bot = bot
        self._shown: dict[str, _Shown] = {}
        self._preview: dict[str, bytes] = {}  # newest preview JPEG per running job
        # Job kinds that are not image grids (e.g. "moodboard") register how they
        # finish: on_done(record, event) -> dict merged into jobs.request, and
        # final_message(record) -> kwargs for Message.edit.
        self.on_done: dict[str, Callable[[db_jobs.JobRecord, JobEvent], Awaitable[dict]]] = {}
        self.final_message: dict[str, Callable[[db_jobs.JobRecord], Awaitable[dict]]] = {}
        # Kinds with state of their own (a style tune) hear when their job failed or was cancelled.
        self.on_failed: dict[str, Callable[[db_jobs.JobRecord], Awaitable[None]]] = {}
        # Kinds whose on_done keeps the result's images itself (a style tune's renders,
        # under tune/): no image rows or grid are stored for them here.
        self.keeps_images: set[str] = set()
        self._lock = asyncio.Lock()
        self._followed = Followed(open_ended=True)
        self._task: asyncio.Task | None = None
        self._retries: set[asyncio.Task] = set()  # edits waiting out their backoff

    def start(self) -> None:
        self._task = asyncio.create_task(self._pump(), name="job-pump")

    def stop(self) -> None:
        for task in (self._task, *self._retries):
            if task is not None:
                task.cancel()

    def follow(self, job_id: str, shown: str) -> None:
        """A job's message is posted with the text `shown`: show its events as they come
        (and don't edit the message to say what it already says)."""
        self._shown.setdefault(job_id, _Shown(text=shown, at=-math.inf))  # the next change shows at once
        self._followed.add(job_id)

    async def poke(self) -> None:
        """Handle pending events now (after a cancel, or in tests)."""
        async with self._lock:
            await self._step(self._followed.advance(await self.bot.queue.read_events(self._followed.cursors)))

    async def _pump(self) -> None:
        while True:
            try:
                await self._follow()
            except Exception:  # the pump must survive anything: start over from the database
                log.exception("job pump failed; resuming from the database in %ss", POLL_S)
                await asyncio.sleep(POLL_S)

    async def _follow(self) -> None:
        # 1. Where each undelivered job's events stand (after a restart too).
        records = await db_jobs.undelivered(self.bot.db)
        self._followed = Followed({r.id: r.cursor for r in records if r.state in ACTIVE}, open_ended=True)
        async with self._lock:
            await self._step([])
        # 2. Each batch of news as it comes (or an empty one every POLL_S).
        batches = aiter(self.bot.queue.follow(self._followed, idle_s=POLL_S))
        try:
            while True:
                events = await self.bot.wait_outside(anext(batches))
                async with self._lock:
                    await self._step(events)
        finally:
            await batches.aclose()

    async def _step(self, events: list[JobEvent]) -> None:
        by_job: dict[str, list[JobEvent]] = {}
        for event in events:
            by_job.setdefault(event.job_id, []).append(event)
        # Fold each job's events into its row, then show it. Jobs posted by another
        # path than follow() join here.
        for record in await db_jobs.undelivered(self.bot.db):
            if record.state in ACTIVE and record.id not in self._followed.cursors and record.id not in by_job:
                self._followed.add(record.id, record.cursor)
            if record.id in by_job and record.state in ACTIVE:  # a terminal row: a replayed batch, already applied
                record = await self.apply(record, by_job[record.id])
            await self.show(record)

    async def apply(self, record: db_jobs.JobRecord, events: list[JobEvent]) -> db_jobs.JobRecord:
        db = self.bot.db
        changes: dict = {"cursor": events[-1].cursor}
        for event in events:
            if event.type is EventType.STARTED:
                changes.update(state=JobState.RUNNING, started_at=event.at, percent=0.0)
            elif event.type is EventType.PROGRESS:
                changes.update(state=JobState.RUNNING, percent=event.percent)
                if event.preview:
                    self._preview[record.id] = event.preview
            elif event.type is EventType.RETRYING:
                changes.update(state=JobState.QUEUED, percent=None)
                log.info("job %s retrying: %s", record.id, event.error)
            elif event.type is EventType.DONE:
                if record.kind in self.on_done:
                    changes["request"] = {**record.request, **await self.on_done[record.kind](record, event)}
                filtered = (
                    await self.store_result(record, event) if record.kind not in self.keeps_images
                    else {"withheld": [], "spoiler": []}
                )
                if filtered["withheld"] or filtered["spoiler"]:
                    changes["request"] = {**changes.get("request", record.request), "nsfw": filtered}
                gpu = event.result.timings.get("gpu", event.result.timings.get("total"))
                changes.update(state=JobState.DONE, finished_at=event.at, percent=100.0, gpu_seconds=gpu)
            elif event.type is EventType.FAILED:
                changes.update(state=JobState.FAILED, finished_at=event.at, error=event.error)
            elif event.type is EventType.CANCELLED:
                changes.update(state=JobState.CANCELLED, finished_at=event.at)
        if changes["state"] in (JobState.FAILED, JobState.CANCELLED) and record.kind in self.on_failed:
            await self.on_failed[record.kind](record)
        async with transaction(db):
            await db_jobs.update_job(db, record.id, **changes)
            if changes["state"] is JobState.DONE:
                n = len(await db_jobs.images_of(db, record.id))
                await db_jobs.add_usage(db, record.user_id, n, changes.get("gpu_seconds") or 0.0)
        if changes["state"].terminal:
            log.info("job %s %s after %.1fs", record.id, changes["state"], time.time() - record.created_at)
        return await db_jobs.get_job(db, record.id)

    async def store_result(self, record: db_jobs.JobRecord, event: JobEvent) -> dict[str, list[int]]:
        """Write the PNGs and their rows (idempotent: a replayed event overwrites the same files),
        applying the server's NSFW policy to each image. A blocked image gets no file
        among the images and no row, so no button, like, taste or explore page can
        reach it (kept under quarantine/ only when the owner asked). Returns the
        indices withheld and spoilered, for the message and the buttons."""
        data_dir = Path(self.bot.settings.data_dir)
        folder = data_dir / "images" / record.id
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        rules = await members.get_guild(self.bot.db, record.guild_id)
        age_restricted = bool(record.request.get("age_restricted"))
        filtered: dict[str, list[int]] = {"withheld": [], "spoiler": []}
        tiles = []
        for index, image in enumerate(event.result.images, start=1):
            verdict = safety.verdict(image.nsfw, rules.nsfw_policy, rules.nsfw_threshold, age_restricted)
            if verdict is safety.Verdict.BLOCK:
                filtered["withheld"].append(index)
                tiles.append(await asyncio.to_thread(_withheld_tile, image.width, image.height))
                kept = await self._quarantine(record.id, index, image.png) if rules.nsfw_keep else None
                log.info("job %s image %d withheld: nsfw %s >= %.2f%s", record.id, index, image.nsfw,
                         rules.nsfw_threshold, f"; kept at {kept}" if kept else "")
                continue
            if verdict is safety.Verdict.SPOILER:
                filtered["spoiler"].append(index)
            tiles.append(image.png)
            relative = f"images/{record.id}/{index}.png"
            await asyncio.to_thread((folder / f"{index}.png").write_bytes, image.png)
            await db_jobs.add_image(
                self.bot.db, job_id=record.id, idx=index, user_id=record.user_id, path=relative,
                width=image.width, height=image.height, seed=image.seed, embedding=image.embedding, nsfw=image.nsfw,
            )
        if len(event.result.images) > 1 and len(filtered["withheld"]) < len(event.result.images):
            grid = await asyncio.to_thread(render.grid, tiles)
            await asyncio.to_thread((folder / "grid.png").write_bytes, grid)
        return filtered

    async def _quarantine(self, job_id: str, index: int, png: bytes) -> str:
        relative = f"{QUARANTINE}/{job_id}/{index}.png"
        path = Path(self.bot.settings.data_dir) / relative
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(path.write_bytes, png)
        return relative

    async def show(self, record: db_jobs.JobRecord) -> None:
        if record.request.get("web"):  # queued from the web companion: its page shows it, no message to edit
            if record.state.terminal:
                await db_jobs.update_job(self.bot.db, record.id, delivered_at=time.time())
                await self.bot.queue.forget(record.id)
            return
        shown = self._shown.setdefault(record.id, _Shown())
        now = time.monotonic()  # backoff and edit pacing: a monotonic clock, immune to wall-clock jumps
        if now < shown.retry_at:
            return
        try:
            if record.state.terminal:
                await self.final_edit(record)
                await db_jobs.update_job(self.bot.db, record.id, delivered_at=time.time())
                await self.bot.queue.forget(record.id)
                self._shown.pop(record.id, None)
                self._preview.pop(record.id, None)
                await self.notify(record)
                await self.notify_withheld(record)
                return
            await self.progress_edit(record, shown, now)
            shown.failures = 0
        except discord.NotFound:
            log.warning("job %s: its message is gone; giving up on showing it", record.id)
            await db_jobs.update_job(self.bot.db, record.id, delivered_at=time.time())
            self._shown.pop(record.id, None)
        except discord.HTTPException as error:
            # Discord is having a moment: keep the result and try again later.
            shown.failures += 1
            delay = RETRY_S[min(shown.failures - 1, len(RETRY_S) - 1)]
            shown.retry_at = now + delay
            self._retries.add(asyncio.create_task(self._retry(record.id, delay), name=f"retry-{record.id[:8]}"))
            log.warning("job %s: Discord edit failed (%s); retry %d in %ss", record.id, error, shown.failures, delay)

    async def _retry(self, job_id: str, delay: float) -> None:
        """Show a job again once its edit's backoff is over (not at the next tick after it)."""
        await asyncio.sleep(delay)
        async with self._lock:
            record = await db_jobs.get_job(self.bot.db, job_id)
            if record is not None and record.delivered_at is None:
                await self.show(record)
        self._retries.discard(asyncio.current_task())

    async def progress_edit(self, record: db_jobs.JobRecord, shown: _Shown, now: float) -> None:
        if record.state is JobState.QUEUED:
            text = render.waiting(record, await self.bot.queue.position(record.id))
        else:
            text = render.running(record, record.percent)
        preview = self._preview.get(record.id)
        if text == shown.text or now - shown.at < PROGRESS_EDIT_S and shown.text:
            return
        kwargs: dict = {"content": text, "view": self.bot.views.cancel(record.id)}
        if preview is not None:
            kwargs["attachments"] = [discord.File(io.BytesIO(preview), filename="preview.jpg")]
        await self._edit(record, **kwargs)
        shown.text, shown.at = text, now

    async def final_edit(self, record: db_jobs.JobRecord) -> None:
        await self._edit(record, **await self.final_content(record))

    async def final_content(self, record: db_jobs.JobRecord, *, spoiler: bool = False) -> dict[str, Any]:
        """A finished job's message: content, attachments and buttons (also what /show posts
        again; `spoiler` there when this channel's policy spoilers an image delivery did not)."""
        if record.state is JobState.DONE and record.kind in self.final_message:
            return await self.final_message[record.kind](record)
        if record.state is JobState.FAILED:
            return dict(content=render.failed(record), attachments=[], view=None)
        if record.state is JobState.CANCELLED:
            return dict(content=render.cancelled(record), attachments=[], view=None)
        images = await db_jobs.images_of(self.bot.db, record.id)
        folder = Path(self.bot.settings.data_dir) / "images" / record.id
        filtered = record.request.get("nsfw", {})
        withheld, spoiler = filtered.get("withheld", []), spoiler or bool(filtered.get("spoiler"))
        content = render.finished(record, self.bot.settings.model) + _filter_notice(withheld, len(images) + len(withheld), spoiler)
        if not images:  # every image was withheld: nothing to show, nothing to press
            return dict(content=content, attachments=[], view=None)
        if len(images) == 1 and not withheld:
            file = discord.File(folder / "1.png", filename=f"tastemaker_{images[0].id}.png", spoiler=spoiler)
            return dict(content=content, attachments=[file], view=self.bot.views.image(images[0].id, upscale=False))
        file = discord.File(folder / "grid.png", filename=f"tastemaker_{record.id[:8]}.png", spoiler=spoiler)
        return dict(content=content, attachments=[file], view=self.bot.views.grid(record.id))

    async def notify(self, record: db_jobs.JobRecord) -> None:
        """auto_dm: a short DM with a link once a grid is ready."""
        if record.state is not JobState.DONE or not (await members.get_settings(self.bot.db, record.user_id)).auto_dm:
            return
        try:
            user = self.bot.get_user(record.user_id) or await self.bot.fetch_user(record.user_id)
            link = f"https://discord.com/channels/{record.guild_id or '@me'}/{record.channel_id}/{record.message_id}"
            await user.send(f"Your images are ready: **{record.prompt[:200]}** {link}")
        except discord.HTTPException as error:
            log.info("could not DM user %s: %s", record.user_id, error)

    async def notify_withheld(self, record: db_jobs.JobRecord) -> None:
        """The private notice for withheld images. A DM: a job can finish long after
        its interaction's 15-minute token expired, and then no ephemeral message
        can reach the member; a member with DMs closed still sees the public notice."""
        withheld = record.request.get("nsfw", {}).get("withheld")
        if record.state is not JobState.DONE or not withheld:
            return
        which = f"image{'s' if len(withheld) > 1 else ''} {', '.join(str(i) for i in withheld)}"
        link = f"https://discord.com/channels/{record.guild_id or '@me'}/{record.channel_id}/{record.message_id}"
        try:
            user = self.bot.get_user(record.user_id) or await self.bot.fetch_user(record.user_id)
            await user.send(
                f"This server's content filter withheld {which} of your job **{record.prompt[:200]}** ({link}): "
                "the NSFW check scored it at or over the server's threshold, so it was not posted.",
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as error:
            log.info("could not DM user %s about withheld images: %s", record.user_id, error)

    async def _edit(self, record: db_jobs.JobRecord, **changes: Any) -> None:
        """Edit a job's message: it echoes the prompt, so only its requester may be pinged."""
        await self._message(record).edit(allowed_mentions=render.requester_only(record), **changes)

    def _message(self, record: db_jobs.JobRecord) -> discord.PartialMessage:
        return self.bot.get_partial_messageable(record.channel_id).get_partial_message(record.message_id)



def _withheld_tile(width: int, height: int) -> bytes:
    return render.to_png(Image.new("RGB", (width, height), WITHHELD_TILE))


def _filter_notice(withheld: list[int], total: int, spoiler: bool) -> str:
    """The public line under a filtered result: what was done, never the image."""
    lines = []
    if withheld and len(withheld) == total:
        lines.append(f"🚫 {'The image was' if total == 1 else f'All {total} images were'} withheld by this server's content filter.")
    elif withheld:
        numbers = ", ".join(str(i) for i in withheld)
        lines.append(f"🚫 Image{'s' if len(withheld) > 1 else ''} {numbers} withheld by this server's content filter (grey tile).")
    if spoiler:
        lines.append("⚠️ Marked as a spoiler by this server's content filter: open it only if you want to see it.")
    return "".join("\n" + line for line in lines)
