"""A member's uploaded images (Discord attachments): checked, downloaded, re-encoded.

1. What Discord tells us before any download (content type, size) is checked first.
2. The download is decoded by engine/images.py, with the limits every member's image
   gets, and re-encoded as a small, metadata-free PNG (images.reencode).

Every problem is a UserError naming the upload.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Sequence

import discord

from bot.errors import UserError
from engine import images


def shown_name(filename: str) -> str:
    return f"`{filename.replace('`', chr(39))[:80]}`"


def check_attachment(attachment: discord.Attachment, taker: str = "this command") -> None:
    """Type and size, from what Discord says; `taker` names who takes images in the message."""
    content_type = (attachment.content_type or mimetypes.guess_type(attachment.filename)[0] or "").split(";")[0]
    content_type = content_type.strip().lower()
    if content_type not in images.CONTENT_TYPES:
        shown = f" ({content_type})" if content_type else ""
        raise UserError(f"{shown_name(attachment.filename)} is not an image{shown}: {taker} takes {images.KINDS} images.")
    try:
        images.check_size(attachment.size)
    except images.ImageDecodeError as error:
        raise UserError(f"{shown_name(attachment.filename)} {error}") from None


def reencode(filename: str, data: bytes) -> bytes:
    """One downloaded upload, checked and re-encoded (engine.images.reencode)."""
    try:
        return images.reencode(data)
    except images.ImageDecodeError as error:
        raise UserError(f"{shown_name(filename)} {error}") from None


async def download(attachment: discord.Attachment) -> bytes:
    try:
        return await attachment.read()
    except (discord.HTTPException, discord.NotFound) as error:
        raise UserError(f"{shown_name(attachment.filename)} could not be downloaded from Discord ({error}); try again.") from None


async def read_images(attachments: Sequence[discord.Attachment], taker: str = "this command") -> list[bytes]:
    """Every attachment checked (cheap checks on all first), downloaded and re-encoded as PNG."""
    for attachment in attachments:
        check_attachment(attachment, taker)
    downloads = await asyncio.gather(*(download(a) for a in attachments))
    return [await asyncio.to_thread(reencode, a.filename, data) for a, data in zip(attachments, downloads, strict=True)]
