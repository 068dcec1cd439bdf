"""Fetching a `--sref` image link, safely, before anything is queued.

1. Only http(s), at most MAX_REDIRECTS redirects, each hop checked again.
2. SSRF guard: every address a host resolves to (the event loop's
   getaddrinfo, through aiohttp's ThreadedResolver) must be global, or the
   link is refused. The check sits in the connector's resolver, so the
   connection goes only to the addresses that were checked (a DNS answer that
   changes between check and connect cannot slip past it); IP literals, which
   aiohttp does not resolve, are checked before connecting.
3. At most images.MAX_BYTES, streamed (the download stops there), within TIMEOUT_S,
   with an image content type.
4. engine/images.py decodes it with the limits every member's image gets and
   re-encodes it as a small, metadata-free PNG.

Every failure is a UserError naming the link and what is wrong with it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import aiohttp
from yarl import URL

from bot.errors import UserError
from engine import images

TIMEOUT_S = 2.0  # Discord wants an answer to /imagine within 3 s, and the fetch comes first
MAX_REDIRECTS = 3
CHUNK = 64 * 1024


def is_allowed_address(address: str) -> bool:
    """True for a global (public) IP address; loopback, private, link-local... are refused."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 scope id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global


def _shown(url: str | URL) -> str:
    s = str(url).replace("`", "'")
    return f"`{s if len(s) <= 80 else s[:79] + '…'}`"


def _private(url: str | URL, address: str) -> UserError:
    return UserError(f"The `--sref` link {_shown(url)} points to a private address ({address}): "
                     "link an image on the public internet.")


class _PublicOnlyResolver(aiohttp.ThreadedResolver):
    """Resolves with the loop's getaddrinfo and refuses the host unless every address is global."""

    def __init__(self, url: URL):
        super().__init__()
        self.url = url

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        hosts = await super().resolve(host, port, family)
        for h in hosts:
            if not is_allowed_address(h["host"]):
                raise _private(self.url, h["host"])
        return hosts


async def style_image(url: str) -> bytes:
    """The image at `url` as a re-encoded PNG (engine.images.reencode), or a UserError saying why not."""
    try:
        async with asyncio.timeout(TIMEOUT_S):
            data = await _download(URL(url))
    except TimeoutError:
        raise UserError(f"The `--sref` link {_shown(url)} took longer than {TIMEOUT_S:g} s to download.") from None
    except ValueError:  # yarl: not a URL at all
        raise UserError(f"The `--sref` link {_shown(url)} is not a valid link.") from None
    try:
        return await asyncio.to_thread(images.reencode, data)
    except images.ImageDecodeError as error:
        raise UserError(f"The `--sref` image {_shown(url)} {error}") from None


async def _download(url: URL) -> bytes:
    for _ in range(MAX_REDIRECTS + 1):
        _check_url(url)
        connector = aiohttp.TCPConnector(resolver=_PublicOnlyResolver(url), use_dns_cache=False)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                async with session.get(url, allow_redirects=False) as response:
                    if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                        url = url.join(URL(response.headers["Location"]))
                        continue  # the next hop is checked like the first
                    return await _read(url, response)
        except aiohttp.ClientConnectorDNSError:
            raise UserError(f"The `--sref` link {_shown(url)} is unreachable: its host name does not resolve.") from None
        except aiohttp.ClientConnectorError:
            raise UserError(f"The `--sref` link {_shown(url)} is unreachable: nothing answers there.") from None
        except aiohttp.InvalidURL:
            raise UserError(f"The `--sref` link {_shown(url)} is not a valid link.") from None
        except aiohttp.ClientError as e:
            raise UserError(f"The `--sref` link {_shown(url)} is unreachable ({e.__class__.__name__}).") from None
    raise UserError(f"The `--sref` link {_shown(url)} redirects too many times: link the image itself.")


def _check_url(url: URL) -> None:
    if url.scheme not in ("http", "https") or not url.host:
        raise UserError(f"The `--sref` link {_shown(url)} is not an http(s) link.")
    try:
        ipaddress.ip_address(url.host)
    except ValueError:
        return  # a host name: the resolver checks every address it resolves to
    if not is_allowed_address(url.host):  # an IP literal, which aiohttp does not resolve
        raise _private(url, url.host)


async def _read(url: URL, response: aiohttp.ClientResponse) -> bytes:
    if response.status != 200:
        raise UserError(f"The `--sref` link {_shown(url)} answered HTTP {response.status}, not an image.")
    if response.content_type not in images.CONTENT_TYPES:
        raise UserError(f"The `--sref` link {_shown(url)} is not an image ({response.content_type}): "
                        f"it must be a {images.KINDS}.")
    too_big = UserError(f"The `--sref` link {_shown(url)} is too big: an image may be at most {images.MAX_BYTES // 2**20} MB.")
    if (response.content_length or 0) > images.MAX_BYTES:
        raise too_big
    data = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        data += chunk
        if len(data) > images.MAX_BYTES:
            raise too_big
    return bytes(data)

