"""The job pump: queue events -> database -> the members' messages.

One task for all jobs, consuming JobQueue.follow(): it wakes as soon as a job has news, folds it
into the job's row (a result's PNGs and its post onto the disk first) and says what each message
should now show. The writes themselves go through the outbox (bot/outbox.py): per Discord
bucket, results first, within the budget, so the pump never waits on Discord and a result
never waits behind another message's edits. Between events it ticks every POLL_S for what
depends on time: queue positions (polled every POSITION_S, shown when they move enough to
matter) and progress (at most one edit per PROGRESS_EDIT_S per message, with the newest preview).

State lives in the database (jobs.cursor, state, delivered_at), so after a restart the pump
carries on where it stopped (through the channel: the interactions' tokens are gone), and a
result is stored once and shown once even when a Discord edit fails and is retried.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from bot import render
from bot.outbox import Outbox, Priority, Target, Write
from engine import posting, safety
from engine.db import jobs as db_jobs
from engine.db import members, transaction
from engine.jobs import EventType, JobEvent, JobState
from engine.queue import Followed

if TYPE_CHECKING:
    from bot.app import Tastemaker

log = logging.getLogger("bot.delivery")

POLL_S = 0.5  # the pump's tick between events (positions, progress, retries); events wake it at once
ACTIVE = (JobState.QUEUED, JobState.RUNNING)
PROGRESS_EDIT_S = 2.0  # one progress edit per message per this long, at most
POSITION_S = 2.0  # how often a queued job's position is looked up
RETRY_S = (2, 5, 15, 60, 300)
MIN_UPLOAD = 256 * 1024  # a post Discord refuses even this small goes without its image, linked instead
REQUEST_TOO_LARGE = 40005  # Discord's error code for an upload over the server's limit
QUARANTINE = "quarantine"  # under the data dir: blocked images an owner chose to keep (nsfw_keep)


@dataclass
class Finish:
    """What a job kind that is not an image grid shows when it is done, under the one first line
    every finished job has (render.finished: headline, parameters, its id for /show)."""

    detail: str = ""  # on the first line, after the headline: "moodboard code `k3xq7ma`"
    lines: list[str] = field(default_factory=list)  # below it
    attachments: list[discord.File] = field(default_factory=list)
    view: discord.ui.View | None = None
    failed: str | None = None  # it came back without what it was for: why


@dataclass
class _Shown:
    text: str = ""  # the message's text as last sent
    at: float = -math.inf  # when (time.monotonic())
    position: int | None = None  # the queue position it shows
    position_at: float = -math.inf  # when the position was last looked up
    preview: bytes | None = None  # the preview it shows
    failures: int = 0  # writes Discord refused in a row


class Delivery:
    def __init__(self, bot: Tastemaker):
        self.bot = bot
        self.outbox = Outbox(bot)
        self._shown: dict[str, _Shown] = {}
        self._latest: dict[str, db_jobs.JobRecord] = {}  # each active job's newest row, for its next write
        self._preview: dict[str, bytes] = {}  # newest preview JPEG per running job
        self._finishing: set[str] = set()  # jobs whose final write is queued or on its way
        self._limits: dict[str, int] = {}  # upload limits lowered after Discord refused a post (40005)
        self._text_only: set[str] = set()  # jobs Discord refused even a small post of: linked instead
        # Job kinds that are not image grids (e.g. "moodboard") register how they
        # finish: on_done(record, event) -> dict merged into jobs.request, and
        # final_message(record, upload limit or None) -> what their finished message adds (Finish).
        self.on_done: dict[str, Callable[[db_jobs.JobRecord, JobEvent], Awaitable[dict]]] = {}
        self.final_message: dict[str, Callable[[db_jobs.JobRecord, int | None], Awaitable[Finish]]] = {}
        # Kinds with state of their own (a style tune) hear when their job failed or was cancelled.
        self.on_failed: dict[str, Callable[[db_jobs.JobRecord], Awaitable[None]]] = {}
        # Kinds whose on_done keeps the result's images itself (a style tune's renders,
        # under tune/): no image rows or post are stored for them here.
        self.keeps_images: set[str] = set()
        self._lock = asyncio.Lock()
        self._followed = Followed(open_ended=True)
        self._task: asyncio.Task | None = None
        self._notices: set[asyncio.Task] = set()  # DMs after a delivery: never in the outbox's way

    def start(self) -> None:
        self._task = asyncio.create_task(self._pump(), name="job-pump")

    def stop(self) -> None:
        self.outbox.stop()
        for task in (self._task, *self._notices):
            if task is not None:
                task.cancel()

    def follow(self, job_id: str, shown: str, target: Target) -> None:
        """A job's message was posted (where `target` says) with the text `shown`: show its
        events as they come, and don't edit the message to say what it already says."""
        self._shown.setdefault(job_id, _Shown(text=shown))
        self.outbox.targets[job_id] = target
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
                if record.kind not in self.keeps_images:
                    filtered, post = await self.store_result(record, event)
                    stored = {"nsfw": filtered} if filtered["withheld"] or filtered["spoiler"] else {}
                    if post is not None:
                        stored["post"] = post
                    changes["request"] = {**changes.get("request", record.request), **stored}
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

    async def store_result(self, record: db_jobs.JobRecord, event: JobEvent) -> tuple[dict[str, list[int]], str | None]:
        """Write the PNGs and their rows (idempotent: a replayed event overwrites the same files),
        applying the server's NSFW policy to each image. A blocked image gets no file
        among the images and no row, so no button, like, taste or explore page can
        reach it (kept under quarantine/ only when the owner asked). Then the post (what
        Discord shows, engine/posting.py): the worker's, unless the policy or the limit
        changed since it was made. Returns the indices withheld and spoilered, for the
        message and the buttons, and the post's file name in the job's folder."""
        data_dir = Path(self.bot.settings.data_dir)
        folder = data_dir / "images" / record.id
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        rules = await members.get_guild(self.bot.db, record.guild_id)
        age_restricted = bool(record.request.get("age_restricted"))
        filtered: dict[str, list[int]] = {"withheld": [], "spoiler": []}
        images = event.result.images
        for index, image in enumerate(images, start=1):
            verdict = safety.verdict(image.nsfw, rules.nsfw_policy, rules.nsfw_threshold, age_restricted)
            if verdict is safety.Verdict.BLOCK:
                filtered["withheld"].append(index)
                kept = await self._quarantine(record.id, index, image.png) if rules.nsfw_keep else None
                log.info("job %s image %d withheld: nsfw %s >= %.2f%s", record.id, index, image.nsfw,
                         rules.nsfw_threshold, f"; kept at {kept}" if kept else "")
                continue
            if verdict is safety.Verdict.SPOILER:
                filtered["spoiler"].append(index)
            relative = f"images/{record.id}/{index}.png"
            await asyncio.to_thread((folder / f"{index}.png").write_bytes, image.png)
            await db_jobs.add_image(
                self.bot.db, job_id=record.id, idx=index, user_id=record.user_id, path=relative,
                width=image.width, height=image.height, seed=image.seed, embedding=image.embedding, nsfw=image.nsfw,
            )
        post = event.result.post
        limit = record.request.get("upload_limit") or posting.DEFAULT_LIMIT
        if images and (post is None or post.withheld != filtered["withheld"] or post.limit > limit):
            post = await asyncio.to_thread(posting.make, [image.png for image in images], filtered["withheld"], limit)
        if post is None:  # nothing to show
            return filtered, None
        if len(images) == 1 and post.format == "png":
            return filtered, "1.png"  # the original itself
        await asyncio.to_thread((folder / post.filename).write_bytes, post.data)
        return filtered, post.filename

    async def _quarantine(self, job_id: str, index: int, png: bytes) -> str:
        relative = f"{QUARANTINE}/{job_id}/{index}.png"
        path = Path(self.bot.settings.data_dir) / relative
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(path.write_bytes, png)
        return relative

    # -- what each message shows -------------------------------------------------------------

    async def show(self, record: db_jobs.JobRecord) -> None:
        """Queue the write this job's message needs now, if any: its result, its progress or its position."""
        if record.request.get("web"):  # queued from the web companion: its page shows it, no message to edit
            if record.state.terminal:
                await db_jobs.update_job(self.bot.db, record.id, delivered_at=time.time())
                await self.bot.queue.forget(record.id)
            return
        key = record.id
        if key in self._finishing:
            return
        if key not in self.outbox.targets:  # after a restart: the interaction's token is gone, the channel remains
            self.outbox.targets[key] = Target(record.channel_id, record.message_id)
        if record.state.terminal:  # (after a refused edit, the result waits out its backoff: Outbox.put)
            self._finishing.add(key)
            self.outbox.put(key, Write(
                Priority.RESULT, build=partial(self._final_changes, record),
                sent=partial(self._delivered, record), failed=partial(self._final_failed, record),
            ))
            return
        self._latest[key] = record
        if self.outbox.waiting(key) is not None:
            return  # a write waits already: it shows the newest state when it goes
        shown = self._shown.setdefault(key, _Shown())
        now = time.monotonic()
        if record.state is JobState.QUEUED:
            if now - shown.position_at < POSITION_S:
                return
            shown.position_at = now
            if not _moved_enough(shown.position, await self.bot.queue.position(key)) and shown.text:
                return
            priority = Priority.POSITION
        else:
            if render.running(record, record.percent) == shown.text or now - shown.at < PROGRESS_EDIT_S:
                return
            priority = Priority.PROGRESS
        self.outbox.put(key, Write(priority, build=partial(self._progress_changes, key),
                                   sent=partial(self._progress_sent, key), failed=partial(self._progress_failed, key)))

    async def _progress_changes(self, key: str) -> dict[str, Any] | None:
        """A queued or running job's message as it is when the write goes (None: it says that already)."""
        record, shown = self._latest.get(key), self._shown.get(key)
        if record is None or shown is None:
            return None
        if record.state is JobState.QUEUED:
            position = await self.bot.queue.position(key)
            text = render.waiting(record, position)
            shown.position = position
        else:
            text = render.running(record, record.percent)
        preview = self._preview.get(key)
        new_preview = preview is not None and preview is not shown.preview
        if text == shown.text and not new_preview:
            return None
        changes: dict[str, Any] = {
            "content": text, "view": self.bot.views.cancel(key), "allowed_mentions": render.requester_only(record),
        }
        if new_preview:
            changes["attachments"] = [discord.File(io.BytesIO(preview), filename="preview.jpg")]
            shown.preview = preview
        shown.text, shown.at = text, time.monotonic()
        return changes

    async def _progress_sent(self, key: str) -> None:
        if (shown := self._shown.get(key)) is not None:
            shown.failures = 0

    async def _progress_failed(self, key: str, error: BaseException) -> float | None:
        """Seconds until the message is written again (its newest state), or None to give up on it."""
        if isinstance(error, discord.NotFound):
            return await self._message_gone(key)
        shown = self._shown.setdefault(key, _Shown())
        shown.text, shown.preview = "", None  # unknown: Discord may not show it
        return self._backoff(key, shown, error)

    async def _final_changes(self, record: db_jobs.JobRecord) -> dict[str, Any]:
        content = await self.final_content(record, limit=self._upload_limit(record), attach=record.id not in self._text_only)
        return {**content, "allowed_mentions": render.requester_only(record)}

    def _upload_limit(self, record: db_jobs.JobRecord) -> int | None:
        """What a post must fit now: the server's limit as the bot last heard of it (boosts can run
        out while a job waits), and lower once Discord refused one as too large."""
        guild = self.bot.get_guild(record.guild_id) if record.guild_id is not None else None
        limits = [limit for limit in (self._limits.get(record.id), guild and guild.filesize_limit) if limit]
        return min(limits, default=None)

    async def _delivered(self, record: db_jobs.JobRecord) -> None:
        await db_jobs.update_job(self.bot.db, record.id, delivered_at=time.time())
        await self.bot.queue.forget(record.id)
        self._forget(record.id)
        for notice in (self.notify(record), self.notify_withheld(record)):
            task = asyncio.create_task(notice)
            self._notices.add(task)
            task.add_done_callback(self._notices.discard)

    async def _final_failed(self, record: db_jobs.JobRecord, error: BaseException) -> float | None:
        """Seconds until the final write is tried again, or None to give up on the message."""
        if isinstance(error, discord.NotFound):
            return await self._message_gone(record.id)
        if isinstance(error, discord.HTTPException) and error.code == REQUEST_TOO_LARGE:
            # The server's limit is lower than the job was told (boosts ran out): smaller, then none.
            limit = self._limits.get(record.id, record.request.get("upload_limit") or posting.DEFAULT_LIMIT) // 2
            if limit < MIN_UPLOAD:
                self._text_only.add(record.id)
            self._limits[record.id] = limit
            log.warning("job %s: Discord refused its post as too large; trying again within %d bytes", record.id, limit)
            return 0.0
        return self._backoff(record.id, self._shown.setdefault(record.id, _Shown()), error)

    async def _message_gone(self, key: str) -> None:
        """Someone deleted the job's message: nothing left to write to, so it counts as delivered."""
        log.warning("job %s: its message is gone; giving up on showing it", key)
        await db_jobs.update_job(self.bot.db, key, delivered_at=time.time())
        self._forget(key)

    @staticmethod
    def _backoff(key: str, shown: _Shown, error: BaseException) -> float:
        """The next wait after a failed write: 2 s, 5 s, … 5 min, counted per message."""
        shown.failures += 1
        delay = RETRY_S[min(shown.failures - 1, len(RETRY_S) - 1)]
        if isinstance(error, discord.HTTPException):
            log.warning("job %s: Discord edit failed (%s); retry %d in %ss", key, error, shown.failures, delay)
        else:
            log.error("job %s: its message could not be written; retry %d in %ss", key, shown.failures, delay,
                      exc_info=error)
        return delay

    def _forget(self, key: str) -> None:
        for state in (self._shown, self._latest, self._preview, self._limits):
            state.pop(key, None)
        self._finishing.discard(key)
        self._text_only.discard(key)
        self.outbox.forget(key)

    async def final_content(
        self, record: db_jobs.JobRecord, *, spoiler: bool = False, limit: int | None = None, attach: bool = True,
    ) -> dict[str, Any]:
        """A finished job's message: content, attachments and buttons (also what /show posts
        again; `spoiler` there when this channel's policy spoilers an image delivery did not).
        `limit`: the upload limit where it goes, when it may be lower than the job's own;
        `attach=False`: the images only linked (Discord refused even a small post)."""
        if record.state is JobState.DONE and record.kind in self.final_message:
            finish = await self.final_message[record.kind](record, limit)
            if finish.failed is not None:
                return dict(content=f"{render.headline(record)} (failed: {finish.failed})", attachments=[], view=None)
            first = render.finished(record, self.bot.settings.model, finish.detail)
            files = finish.attachments if attach else []  # Discord refused even a small upload: text only
            return dict(content="\n".join([first, *finish.lines]), attachments=files, view=finish.view)
        if record.state is JobState.FAILED:
            return dict(content=render.failed(record), attachments=[], view=None)
        if record.state is JobState.CANCELLED:
            return dict(content=render.cancelled(record), attachments=[], view=None)
        images = await db_jobs.images_of(self.bot.db, record.id)
        filtered = record.request.get("nsfw", {})
        withheld, spoiler = filtered.get("withheld", []), spoiler or bool(filtered.get("spoiler"))
        content = render.finished(record, self.bot.settings.model) + filter_notice(withheld, len(images) + len(withheld), spoiler)
        if not images:  # every image was withheld: nothing to show, nothing to press
            return dict(content=content, attachments=[], view=None)
        single = len(images) == 1 and not withheld
        view = self.bot.views.image(images[0].id, upscale=False) if single else self.bot.views.grid(record.id)
        if not attach:
            return dict(content=content + self._full_size(images[0] if single else None, record), attachments=[], view=view)
        name = record.request.get("post") or ("1.png" if single else "grid.png")  # jobs stored before posts had names
        path = Path(self.bot.settings.data_dir) / "images" / record.id / name
        data, ext = await asyncio.to_thread(posting.fitted_file, path, limit)
        if single and (name != "1.png" or ext != "png"):  # smaller than the original: link the original
            content += self._full_size(images[0], record)
        stem = f"tastemaker_{images[0].id}" if single else f"tastemaker_{record.id[:8]}"
        file = discord.File(io.BytesIO(data), filename=f"{stem}.{ext}", spoiler=spoiler)
        return dict(content=content, attachments=[file], view=view)

    def _full_size(self, image: db_jobs.ImageRecord | None, record: db_jobs.JobRecord) -> str:
        """Where the full-size original is, when the web companion has a public address."""
        settings = self.bot.settings
        if not settings.web_url or not settings.web_port:
            return "\n(Shown smaller to fit this server's upload limit.)"
        where = f"/image/{image.id}" if image is not None else "/explore"
        return f"\n[Full size on the web]({settings.web_base_url}{where})"

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
        noun = "clip" if record.kind == "video" else "image"
        which = f"{noun}{'s' if len(withheld) > 1 else ''} {', '.join(str(i) for i in withheld)}"
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


def _moved_enough(shown: int | None, now: int | None) -> bool:
    """Whether a queued job's new position is worth an edit: every step near the front, and
    further back once it moved by a fifth (a member would rather see "position 40" stay a few
    seconds than wait for their grid behind everyone's position edits)."""
    if now == shown:
        return False
    if now is None or shown is None or now <= 5:
        return True
    return abs(shown - now) >= max(1, shown // 5)


def filter_notice(withheld: list[int], total: int, spoiler: bool, noun: str = "image") -> str:
    """The public line under a filtered result: what was done, never the image (or clip)."""
    lines = []
    if withheld and len(withheld) == total:
        lines.append(f"🚫 {f'The {noun} was' if total == 1 else f'All {total} {noun}s were'} withheld by this server's content filter.")
    elif withheld:
        numbers = ", ".join(str(i) for i in withheld)
        tile = " (grey tile)" if noun == "image" else ""
        lines.append(f"🚫 {noun.capitalize()}{'s' if len(withheld) > 1 else ''} {numbers} withheld by this server's content filter{tile}.")
    if spoiler:
        lines.append("⚠️ Marked as a spoiler by this server's content filter: open it only if you want to see it.")
    return "".join("\n" + line for line in lines)
