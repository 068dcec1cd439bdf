"""Owner tools: per-guild rules, the house taste, the queue, and a forced command sync."""

from __future__ import annotations

import time
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import retention
from bot.app import Tastemaker
from bot.errors import UserError
from engine import params, profiles, safety
from engine.db import jobs as db_jobs
from engine.db import members
from engine.jobs import MAX_CLIPS, JobState
from engine.params import MAX_JOBS
from engine.presets import UnknownPresetError, get_preset, preset_names
from engine.queue_contract import FAILING_AFTER, WorkerStatus

SILENT_AFTER_S = 60.0  # workers report every 15 s: four missed reports and it reads as gone
HOUSE_WEIGHT = (0.05, 0.95)  # the house taste's share of each prompt's taste


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class Admin(commands.GroupCog, group_name="admin", group_description="Server owner settings"):
    def __init__(self, bot: Tastemaker):
        self.bot = bot
        super().__init__()

    @app_commands.command(description="Show the jobs waiting and running")
    async def queue(self, interaction: discord.Interaction) -> None:
        active = await db_jobs.active_jobs(self.bot.db)
        lines = [f"**{len(active)}** jobs queued or running."]
        for job in active[:15]:
            where = job.state.value if job.state is JobState.RUNNING else f"position {await self.bot.queue.position(job.id) or '?'}"
            lines.append(f"`{job.id[:8]}` <@{job.user_id}> {job.kind} · {where} · {job.prompt[:60]}")
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    @app_commands.command(description="Jobs each member may have queued or running at once")
    async def limit(self, interaction: discord.Interaction, jobs: app_commands.Range[int, 1, 50]) -> None:
        await members.update_guild(self.bot.db, interaction.guild_id, max_jobs_per_user=jobs)
        await interaction.response.send_message(f"Each member may now have {jobs} jobs at once.", ephemeral=True)

    @app_commands.command(description="Jobs the whole server may have queued or running at once (0 = no cap)")
    async def server_limit(self, interaction: discord.Interaction, jobs: app_commands.Range[int, 0, 1000]) -> None:
        await members.update_guild(self.bot.db, interaction.guild_id, max_jobs=jobs or None)
        text = f"This server may now have {jobs} jobs at once." if jobs else "This server's job cap is off."
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(description="Jobs one prompt may make with {a, b} choices and --repeat (asks the member first)")
    async def permutations(self, interaction: discord.Interaction, jobs: app_commands.Range[int, 1, MAX_JOBS]) -> None:
        await members.update_guild(self.bot.db, interaction.guild_id, max_permutations=jobs)
        text = f"One prompt may now make up to {jobs} jobs." if jobs > 1 else "One prompt now makes one job: `{a, b}` and `--repeat` are off."
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(description="Allow or disallow image commands in a channel (none allowed = everywhere)")
    async def channel(self, interaction: discord.Interaction, channel: discord.TextChannel, allowed: bool) -> None:
        rules = await members.get_guild(self.bot.db, interaction.guild_id)
        channels = [c for c in rules.allowed_channels if c != channel.id] + ([channel.id] if allowed else [])
        await members.update_guild(self.bot.db, interaction.guild_id, allowed_channels=tuple(channels))
        where = ", ".join(f"<#{c}>" for c in channels) or "every channel"
        await interaction.response.send_message(f"Image commands now work in {where}.", ephemeral=True)

    @app_commands.command(description="Ban or unban a word in prompts (whole words; *ass* also inside others)")
    @app_commands.describe(word="A word or phrase; a * at its start or end also matches it inside longer words")
    async def banned_word(self, interaction: discord.Interaction, word: app_commands.Range[str, 1, 50], banned: bool) -> None:
        rules = await members.get_guild(self.bot.db, interaction.guild_id)
        word = " ".join(params.normalize(word).lower().split())
        if banned and not params.matching_key(word.strip("*")):
            raise UserError(f"`{word}` has no letters to match: ban a word, like `gore` or `*gore*`.")
        words = [w for w in rules.banned_words if w != word] + ([word] if banned else [])
        await members.update_guild(self.bot.db, interaction.guild_id, banned_words=tuple(words))
        await interaction.response.send_message(
            f"Banned words: {', '.join(f'`{w}`' for w in words) or 'none'}. Each matches whole words; a `*` at its start "
            "or end also matches it inside longer words (`*ass*` refuses `class`).",
            ephemeral=True,
        )

    @app_commands.command(description="The content filter: what happens to images the NSFW check flags")
    @app_commands.describe(
        policy="block: never posted (default) · spoiler: posted as spoilers · allow: age-restricted channels only",
        threshold="NSFW score (0-1) at or over which an image is flagged; default 0.6, lower is stricter",
        keep="keep blocked images in the bot's quarantine/ folder for you to review",
    )
    async def nsfw(
        self,
        interaction: discord.Interaction,
        policy: Literal["block", "spoiler", "allow"] | None = None,
        threshold: app_commands.Range[float, 0.0, 1.0] | None = None,
        keep: bool | None = None,
    ) -> None:
        changes = {
            name: value
            for name, value in (("nsfw_policy", policy), ("nsfw_threshold", threshold), ("nsfw_keep", keep))
            if value is not None
        }
        rules = await members.update_guild(self.bot.db, interaction.guild_id, **changes)
        chosen = safety.Policy(rules.nsfw_policy)
        lines = [f"Content filter: **{chosen}**, images scoring **{rules.nsfw_threshold:.2f}** or more are flagged."]
        lines.append({
            safety.Policy.BLOCK: "Flagged images are never posted; the member is told privately.",
            safety.Policy.SPOILER: "Flagged images are posted as spoilers, with a notice.",
            safety.Policy.ALLOW: "Flagged images are posted as they are only in age-restricted channels; "
            "everywhere else they are blocked.",
        }[chosen])
        lines.append(
            "Blocked images are kept in the bot's `quarantine/` folder for review."
            if rules.nsfw_keep else "Blocked images are not kept."
        )
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    @app_commands.command(description="Daily image quotas (UTC days): for each member, and for roles")
    @app_commands.describe(
        member="Images each member may make a day (0 = unlimited)",
        role="A role whose members get their own quota instead",
        images="The role's images a day (0 = unlimited; leave out to remove the role's quota)",
    )
    async def quota(
        self,
        interaction: discord.Interaction,
        member: app_commands.Range[int, 0, 100_000] | None = None,
        role: discord.Role | None = None,
        images: app_commands.Range[int, 0, 100_000] | None = None,
    ) -> None:
        if images is not None and role is None:
            raise UserError("Name the role: `/admin quota role:@role images:N`.")
        guild_id = interaction.guild_id
        if member is not None:
            await members.update_guild(self.bot.db, guild_id, daily_images_per_member=member or None)
        if role is not None:
            await members.set_role_quota(self.bot.db, guild_id, role.id, images)
        default = (await members.get_guild(self.bot.db, guild_id)).daily_images_per_member
        lines = [f"Each member: {f'**{default}** images a day' if default else 'no daily quota'}."]
        for role_id, daily in sorted((await members.role_quotas(self.bot.db, guild_id)).items()):
            lines.append(f"<@&{role_id}>: {f'**{daily}** images a day' if daily else 'unlimited'}.")
        if len(lines) > 1:
            lines.append("A member with any of these roles gets the most generous of them instead of the per-member quota.")
        lines.append("Days start at 00:00 UTC. Queued jobs count: a grid is 4 images, an upscale 1.")
        await interaction.response.send_message(
            "\n".join(lines), ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    @app_commands.command(description="Days the images of deleted jobs, and of members who left, are kept")
    @app_commands.describe(days="0-3650 (0: removed within minutes); leave out to see the current setting")
    async def retention(self, interaction: discord.Interaction, days: app_commands.Range[int, 0, 3650] | None = None) -> None:
        db, guild_id = self.bot.db, interaction.guild_id
        if days is None:
            guild = await members.get_guild(db, guild_id)
        else:  # update_guild answers with the settings it wrote: no second read
            guild = await members.update_guild(db, guild_id, retention_days=days)
        kept = retention.kept_days(self.bot, guild)
        how = "at the next sweep, within minutes" if kept == 0 else f"**{kept} day{'s' if kept != 1 else ''}** later"
        default = "" if guild.retention_days is not None else " (the bot's default)"
        await interaction.response.send_message(
            f"Images of jobs their members delete (`/delete`), and of members who leave this server, are removed "
            f"{how}{default}. A deleted job leaves Explore, likes and taste at once; a member who leaves keeps their "
            "images here until then, and coming back cancels it.", ephemeral=True,
        )

    @app_commands.command(description="A taste mixed into every prompt on this server: a code, `server` or `off`")
    @app_commands.describe(
        code="a taste code, `server` (the community's own taste) or `off`; leave out to see the current one",
        weight="its share of each prompt's taste, 0.05-0.95 (default 0.25); alone when a prompt has no --p",
    )
    async def house_taste(
        self,
        interaction: discord.Interaction,
        code: app_commands.Range[str, 1, 40] | None = None,
        weight: app_commands.Range[float, HOUSE_WEIGHT[0], HOUSE_WEIGHT[1]] = 0.25,
    ) -> None:
        guild_id, db = interaction.guild_id, self.bot.db
        if code is None:
            await interaction.response.send_message(house_text(await members.get_guild(db, guild_id)), ephemeral=True)
            return
        if code.strip().lower() == "off":
            rules = await members.update_guild(db, guild_id, house_taste=None, house_taste_owner=None)
            await interaction.response.send_message(house_text(rules), ephemeral=True)
            return
        if not HOUSE_WEIGHT[0] <= weight <= HOUSE_WEIGHT[1]:
            raise UserError(f"`weight:{weight:g}` is out of range: the house taste's weight takes "
                            f"{HOUSE_WEIGHT[0]:g}-{HOUSE_WEIGHT[1]:g}, like `0.25`.")
        code = await self._check_house_taste(interaction.user.id, code, weight)
        rules = await members.update_guild(
            db, guild_id, house_taste=code, house_taste_weight=float(weight), house_taste_owner=interaction.user.id
        )
        await interaction.response.send_message(house_text(rules), ephemeral=True)

    async def _check_house_taste(self, admin_id: int, code: str, weight: float) -> str:
        """The code as stored, once it resolves on the current basis for this admin; UserError otherwise."""
        db = self.bot.db
        code = profiles.normalize_code(code)
        shown = code[:40].replace("`", "'")
        if code != profiles.SERVER:
            if not params.is_code(code):
                raise UserError(f"`{shown}` is not a code: a house taste is a 7-character code like `k3xq7ab`, "
                                f"`{profiles.SERVER}` (the community's own taste) or `off`.")
            found = await profiles.get_code(db, code)
            if found is None:
                raise UserError(f"Unknown code `{code}`: no profile has it. `/codes` lists yours.")
            if not found.public and code not in {c.code for c in await profiles.list_codes(db, admin_id)}:
                raise UserError(f"`{code}` is another member's private code: only its owner can make it a house "
                                "taste. Ask them to make it public (`/codes`), or use one of yours.")
        try:  # on the current basis, as every prompt will use it
            await profiles.resolve(db, admin_id, [], self.bot.settings.unlock_votes, house=(code, weight, admin_id))
        except profiles.TasteError as error:
            raise UserError(f"`{code}` can't be this server's house taste: {error}") from None
        return code

    @app_commands.command(description="Animate: clips a video job makes (default 4) and what a clip counts against quotas")
    @app_commands.describe(
        clips="Clips each Animate, Extend or --video makes, 1-4 (--bs asks for fewer)",
        images_per_clip="What one clip counts against a daily image quota (default 8: a clip costs far more GPU time)",
    )
    async def video(
        self, interaction: discord.Interaction, clips: app_commands.Range[int, 1, MAX_CLIPS] | None = None,
        images_per_clip: app_commands.Range[int, 1, 100] | None = None,
    ) -> None:
        changes = {name: value for name, value in (("video_clips", clips), ("video_clip_images", images_per_clip))
                   if value is not None}
        rules = await members.update_guild(self.bot.db, interaction.guild_id, **changes)
        await interaction.response.send_message(
            f"Animate makes **{rules.video_clips}** clip{'s' if rules.video_clips != 1 else ''} a job here; each counts "
            f"as **{rules.video_clip_images}** images against daily quotas.", ephemeral=True)

    model = app_commands.Group(name="model", description="The model presets this server draws with")

    @model.command(name="default", description="The preset used when a prompt has no --v (empty: the bot's default)")
    @app_commands.describe(name="a preset from /admin model list")
    async def model_default(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 40] | None = None) -> None:
        if name is not None:
            try:
                preset = get_preset(name.strip().lower())
            except UnknownPresetError:
                raise UserError(f"`{name}` is not a model preset here: choose one of {', '.join(preset_names())}.") from None
            name = preset.name
        await members.update_guild(self.bot.db, interaction.guild_id, default_model=name)
        shown = f"`{name}`" if name else f"the bot's default, `{self.bot.settings.model}`"
        text = f"Prompts without `--v` now use {shown}."
        if name and get_preset(name).steering != "adapter":
            text += (" It has no IP-Adapter for images: `--p` steers it by your taste's style words, and image "
                     "prompts, `/blend` and `--sref` links are refused on it.")
        await interaction.response.send_message(text, ephemeral=True)

    @model_default.autocomplete("name")
    async def _preset_names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=n, value=n) for n in preset_names() if current.lower() in n][:25]

    @model.command(name="list", description="The model presets this bot can draw with")
    async def model_list(self, interaction: discord.Interaction) -> None:
        default = (await members.get_guild(self.bot.db, interaction.guild_id)).default_model or self.bot.settings.model
        lines = []
        for name in preset_names():
            p = get_preset(name)
            marks = " · **this server's default**" if name == get_preset(default).name else ""
            marks += "" if p.steering == "adapter" else " · `--p` by style words, no image prompts"
            lines.append(f"`{name}` {p.description}{marks}")
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    @app_commands.command(description="The GPU workers seen in the last day: preset, jobs, heartbeat, GPU memory")
    async def workers(self, interaction: discord.Interaction) -> None:
        seen = await self.bot.queue.workers()
        if not seen:
            raise UserError("No worker has reported in the last day: start one (see the README, 'Scaling out').")
        now = time.time()
        lines = [f"**{len(seen)}** workers seen in the last day:"]
        lines += [_worker_line(w, now) for w in seen[:20]]
        failing = [w.worker_id for w in seen if w.failing]
        if failing:
            lines.append(f"⚠️ failing (≥ {FAILING_AFTER} jobs in a row): {', '.join(failing)}: see their logs.")
        await interaction.response.send_message("\n".join(lines)[:2000], ephemeral=True)

    @app_commands.command(description="Sync slash commands now (the bot owner only)")
    async def sync(self, interaction: discord.Interaction) -> None:
        if not await self.bot.is_owner(interaction.user):
            raise UserError("Only the bot's owner can force a command sync.")
        await interaction.response.defer(ephemeral=True)
        await self.bot.sync_commands(force=True)
        await interaction.followup.send("Commands synced.", ephemeral=True)


def house_text(rules: members.GuildSettings) -> str:
    """The server's house taste, as /admin house_taste shows it."""
    if not rules.house_taste:
        return "This server has no house taste: prompts use only their own `--p`. Set one with `/admin house_taste code:`."
    code = rules.house_taste
    what = "the community's own taste" if code == profiles.SERVER else f"set by <@{rules.house_taste_owner}>"
    return (
        f"This server's house taste is `{code}` ({what}) at **{rules.house_taste_weight:.0%}**: it is mixed into every "
        "prompt's taste here, and steers alone (at the member's `--s`) when a prompt has no `--p`. "
        "Not with `--style raw` or `--s 0`. `/admin house_taste code:off` turns it off."
    )


def _worker_line(w: WorkerStatus, now: float) -> str:
    state = w.state if w.state == "stopped" or now - w.last_seen < SILENT_AFTER_S else "silent"
    parts = [f"`{w.worker_id}`", w.preset or "?", w.device or "?", state,
             f"{w.jobs_done} done, {w.jobs_failed} failed", f"last heartbeat <t:{int(w.last_seen)}:R>"]
    if w.gpu_memory_used is not None and w.gpu_memory_total:
        parts.append(f"GPU {w.gpu_memory_used / 2**30:.1f} of {w.gpu_memory_total / 2**30:.0f} GiB")
    line = " · ".join(parts)
    if w.failing:
        line = f"⚠️ {line} · **{w.failed_in_row} failed in a row**: {w.last_error[:120]}"
    return line


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Admin(bot))
