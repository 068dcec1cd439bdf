"""/describe: an image (an attachment or a link) becomes four prompts.

The DESCRIBE job's prompts (CoCa captions plus CLIP-ranked style words, engine/generate.py)
are stored with the job when it is done; the final message lists them under the image,
with 1–4 (run /imagine with that prompt) and 🔄 (describe again).
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot import fetch, generation, uploads
from bot.app import Tastemaker
from bot.delivery import Finish
from bot.errors import UserError
from engine import params
from engine.db import jobs as db_jobs
from engine.jobs import JobEvent, JobKind

NUMBERS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣")


class Describe(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot

    @app_commands.command(description="Four prompts that could have made an image")
    @app_commands.describe(image="The image (PNG, JPEG, WebP, GIF; 8 MB, 16 MP)", link="Or a link to the image")
    async def describe(
        self, interaction: discord.Interaction, image: discord.Attachment | None = None,
        link: app_commands.Range[str, 1, params.MAX_URL] | None = None,
    ) -> None:
        if (image is None) == (link is None):
            raise UserError("Give /describe one image: attach it as `image`, or paste its address as `link`.")
        if image is not None:
            uploads.check_attachment(image, "/describe")
        await generation.answer_first(interaction, generation.DESCRIBE_PROMPT)
        if image is not None:
            [png] = await uploads.read_images([image], "/describe")
        else:
            url = params.normalize(link).strip()
            await generation.check_guild_rules(self.bot, interaction.guild_id, url)
            png = await fetch.fetch_image(url, generation.IMAGE_LINK)
        prepared = await generation.prepare_describe(self.bot, interaction.user.id, interaction.guild_id, png)
        await generation.start(self.bot, interaction, prepared)


# -- delivery hooks (bot/delivery.py) ---------------------------------------------


def make_hooks(bot: Tastemaker):
    async def on_done(record: db_jobs.JobRecord, event: JobEvent) -> dict:
        return {"prompts": list(event.result.prompts if event.result else [])}

    async def final_message(record: db_jobs.JobRecord, limit: int | None) -> Finish:
        prompts = generation.described(record)
        if not prompts:
            return Finish(failed="no prompts came back")
        path = generation.input_path(bot, record.id, 1)
        return Finish(
            lines=["", "\n\n".join(f"{NUMBERS[i]} {prompt}" for i, prompt in enumerate(prompts))],
            attachments=[discord.File(path, filename=f"described_{record.id[:8]}.png")] if path.exists() else [],
            view=bot.views.describe(record.id, len(prompts)),
        )

    return on_done, final_message


async def setup(bot: Tastemaker) -> None:
    bot.delivery.on_done[JobKind.DESCRIBE], bot.delivery.final_message[JobKind.DESCRIBE] = make_hooks(bot)
    await bot.add_cog(Describe(bot))
