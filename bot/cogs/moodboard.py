"""/moodboard create: a taste profile (and code) from up to 10 uploaded images.

1. Cheap checks on what Discord tells us (type, size), the rank pool and the
   member's job limit, before anything is downloaded.
2. An ephemeral "Checking…" reply (downloads can take longer than the 3 s an
   interaction may wait), then each image is downloaded and checked by
   engine/images.py (the limits every member's image gets) and re-encoded as a
   plain PNG (metadata stripped).
3. One EMBED job with the normal waiting/progress message; when it is done,
   profiles.create_moodboard turns the embeddings into a code, which the final
   message shows.
"""

from __future__ import annotations

import logging

import discord
import numpy as np
from discord import app_commands
from discord.ext import commands

from bot import generation
from bot import uploads as uploads_
from bot.app import Tastemaker
from bot.delivery import Finish
from bot.errors import UserError
from bot.generation import Prepared
from engine import profiles
from engine.db import jobs as db_jobs
from engine.jobs import EmbedSpec, Job, JobEvent, JobKind
from engine.presets import PRESETS

log = logging.getLogger("bot.moodboard")

MAX_IMAGES = 10
KIND = "moodboard"  # the bot's job kind for delivery hooks


async def embed_preset(bot: Tastemaker) -> str:
    """The model whose OpenCLIP made the current rank pool's basis: a moodboard
    must be embedded in that same space. UserError when there is no pool."""
    found = await profiles.current_basis(bot.db)
    if found is None:
        raise UserError(f"Moodboards need a rank pool to be read against, and there is none yet. {profiles.NO_POOL_MESSAGE}")
    basis, preset = found
    if preset in PRESETS and PRESETS[preset].embed_dim == basis.d:
        return preset
    configured = PRESETS.get(bot.settings.model)
    if configured is not None and configured.embed_dim == basis.d:
        return configured.name
    raise UserError(
        "The rank pool was built with an image model this bot no longer runs, so moodboards can't be read "
        f"against it. The server owner rebuilds it with `{profiles.POOL_BUILD_COMMAND}`."
    )


class Moodboard(commands.GroupCog, group_name="moodboard", group_description="Taste profiles from your own images"):
    def __init__(self, bot: Tastemaker):
        self.bot = bot
        super().__init__()

    @app_commands.command(description="Make a taste code from up to 10 images (PNG, JPEG, WebP, GIF; 8 MB, 16 MP each)")
    @app_commands.describe(
        image1="An image whose look you want", image2="Another image (optional)",
        name="A name for this moodboard's profile (default: moodboard N)",
    )
    async def create(
        self,
        interaction: discord.Interaction,
        image1: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        image5: discord.Attachment | None = None,
        image6: discord.Attachment | None = None,
        image7: discord.Attachment | None = None,
        image8: discord.Attachment | None = None,
        image9: discord.Attachment | None = None,
        image10: discord.Attachment | None = None,
        name: app_commands.Range[str, 1, 64] | None = None,
    ) -> None:
        bot = self.bot
        uploads = [a for a in (image1, image2, image3, image4, image5, image6, image7, image8, image9, image10) if a]
        # 1. Cheap checks first: nothing is downloaded or queued when they fail.
        for attachment in uploads:
            uploads_.check_attachment(attachment, "a moodboard")
        name = await profiles.check_new_profile(bot.db, interaction.user.id, name)
        preset = await embed_preset(bot)
        await generation.check_limits(bot, interaction.user.id, interaction.guild_id, interaction.channel_id)
        # 2. Download and check every image before anything is queued.
        n = len(uploads)
        await interaction.response.send_message(f"Checking your {n} image{'s' if n != 1 else ''}…", ephemeral=True)
        try:
            pngs = await uploads_.read_images(uploads, "a moodboard")
        except UserError as error:
            await interaction.edit_original_response(content=f"{error} Nothing was queued.")
            return
        # 3. One EMBED job, with the usual waiting/progress message.
        job = Job(
            kind=JobKind.EMBED, preset=preset, user_id=interaction.user.id, guild_id=interaction.guild_id,
            embed=EmbedSpec(images=pngs),
        )
        prompt = f"moodboard: {n} image{'s' if n != 1 else ''}"
        prepared = Prepared(job=job, prompt=prompt, info={"images": n, "name": name}, kind=KIND)
        await generation.start(bot, interaction, prepared)
        await interaction.edit_original_response(
            content=f"Your moodboard of {n} image{'s' if n != 1 else ''} is queued: its code will appear in the message below."
        )


# -- delivery hooks (bot/delivery.py) ---------------------------------------------


def make_hooks(bot: Tastemaker):
    async def on_done(record: db_jobs.JobRecord, event: JobEvent) -> dict:
        """The EMBED job finished: its embeddings become a moodboard code.
        Never raises (the job pump would retry forever): problems become "error"."""
        if record.request.get("code"):
            return {}
        embeddings = np.asarray(event.result.image_embeddings if event.result else [], dtype=np.float64)
        try:
            code = await profiles.create_moodboard(bot.db, record.user_id, embeddings, record.request.get("name"))
        except profiles.TasteError as error:
            return {"error": str(error)}
        except ValueError as error:  # embeddings from another CLIP space than the current basis
            log.warning("moodboard job %s: %s", record.id, error)
            return {"error": "The rank pool changed while your images were read; please run /moodboard create again."}
        log.info("moodboard job %s: code %s for user %s", record.id, code, record.user_id)
        return {"code": code}

    async def final_message(record: db_jobs.JobRecord, limit: int | None) -> Finish:
        code = record.request.get("code")
        if not code:
            return Finish(failed=record.request.get("error", "unknown error"))
        n = record.request.get("images", 0)
        info = await profiles.get_code(bot.db, code)
        if info is None or info.public:
            privacy = f"Make it private with `/codes code:{code} visibility:private`."
        else:  # the member's moodboards start private
            privacy = f"🔒 It is private: only you can use it (`/codes code:{code} visibility:public` shares it)."
        named = f" (profile **{discord.utils.escape_markdown(info.profile)}**)" if info is not None else ""
        usage = (f"Use it like any taste code: `/imagine a cat --p {code}` (strength with `--s`, "
                 f"mix with `--p {code}::2 OTHER`). {privacy}")
        if n:
            usage += f" Built from {n} image{'s' if n != 1 else ''}."
        return Finish(detail=f"moodboard code `{code}`{named}", lines=[usage])

    return on_done, final_message


async def setup(bot: Tastemaker) -> None:
    bot.delivery.on_done[KIND], bot.delivery.final_message[KIND] = make_hooks(bot)
    await bot.add_cog(Moodboard(bot))
