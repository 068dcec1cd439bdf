"""Fetching an image link (`--sref`, image prompts, /describe), safely, before anything is queued.

1. Only http(s), at most MAX_REDIRECTS redirects, each hop checked again.
2. SSRF guard. The bot reads the host itself (_check_url): a name, or an IP
   written plainly; numeric forms like `2130706433` or `127.1` are refused.
   Every address must be public, and every IPv4 address an IPv6 one carries
   (mapped, compatible, NAT64, 6to4, Teredo: unwrapped()) too. For a name, the
   check sits in the connector's resolver (the event loop's getaddrinfo,
   through aiohttp's ThreadedResolver), so the connection goes only to the
   addresses that were checked (a DNS answer that changes between check and
   connect cannot slip past it); IP literals, which aiohttp does not resolve,
   are checked before connecting.
3. At most images.MAX_BYTES, streamed (the download stops there), within TIMEOUT_S,
   with an image content type.
4. engine/images.py decodes it with the limits every member's image gets and
   re-encodes it as a small, metadata-free PNG.

Every failure is a UserError naming the kind of link, the link and what is wrong with it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket

import aiohttp
from yarl import URL

from bot.errors import UserError
from engine import images

MAX_HOST = 253  # DNS limits: a whole name, and one label
MAX_LABEL = 63
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")
_NUMERIC_LABEL_RE = re.compile(r"0x[0-9a-f]*|[0-9]+")  # a last label like this makes the host an IPv4 number
TIMEOUT_S = 2.0  # Discord wants an answer to /imagine within 3 s, and the fetch comes first
MAX_REDIRECTS = 3
CHUNK = 64 * 1024


# IPv6 prefixes that carry an IPv4 address in their last 32 bits: the v6 address
# is only a way to reach that v4 host, which alone decides.
_IPV4_IN_LAST_32 = tuple(ipaddress.IPv6Network(n) for n in (
    "::/96",  # IPv4-compatible (deprecated)
    "::ffff:0:0/96",  # IPv4-mapped
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
    "64:ff9b::/96",  # NAT64, well-known prefix
))
# Never globally routable, whatever they carry: NAT64 local-use (RFC 8215) and
# Teredo (RFC 4380, the IANA registry: not globally reachable).
_NEVER = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b:1::/48", "2001::/32"))


def unwrapped(address: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The address and every IPv4 address wrapped in it: IPv4-mapped, -compatible,
    -translated and NAT64 (both prefixes) are the IPv4 address they carry; 6to4
    (`2002::/16`) also carries one, Teredo (`2001::/32`) two (its server, bits
    32-63, and its client, the last 32 bits inverted)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 scope id
    if isinstance(ip, ipaddress.IPv4Address):
        return [ip]
    last_32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in net for net in _IPV4_IN_LAST_32) and int(ip) > 1:  # :: and ::1 are themselves
        return [last_32]
    if ip in _NEVER[0]:
        return [ip, last_32]
    if ip.sixtofour is not None:
        return [ip, ip.sixtofour]
    if ip.teredo is not None:
        return [ip, *ip.teredo]
    return [ip]


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # is_global alone lets through multicast and, on Python 3.11, the deprecated
    # site-local fec0::/10 and the reserved ranges; each is refused here.
    special = ip.is_multicast or ip.is_reserved or ip.is_private or ip.is_loopback or ip.is_link_local
    if isinstance(ip, ipaddress.IPv6Address):
        special = special or ip.is_site_local or any(ip in net for net in _NEVER)
    return ip.is_global and not special and not ip.is_unspecified


def is_allowed_address(address: str) -> bool:
    """True for a public address: it and every IPv4 address it wraps are globally
    routable. Loopback, private, link-local, multicast, reserved... are refused."""
    return all(_public(ip) for ip in unwrapped(address))


def _shown(url: str | URL) -> str:
    s = str(url).replace("`", "'")
    return f"`{s if len(s) <= 80 else s[:79] + '…'}`"


def _private(url: str | URL, address: str, what: str) -> UserError:
    inside = [str(ip) for ip in unwrapped(address) if ip.version == 4 and not _public(ip)] if ":" in address else []
    where = f"{address}, which carries {inside[0]}" if inside else address
    return UserError(f"The {what} {_shown(url)} points to a private address ({where}): "
                     "link an image on the public internet.")


class _PublicOnlyResolver(aiohttp.ThreadedResolver):
    """Resolves with the loop's getaddrinfo and refuses the host unless every address is global."""

    def __init__(self, url: URL, what: str):
        super().__init__()
        self.url = url
        self.what = what

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        hosts = await super().resolve(host, port, family)
        for h in hosts:
            if not is_allowed_address(h["host"]):
                raise _private(self.url, h["host"], self.what)
        return hosts


async def fetch_image(url: str, what: str = "`--sref` link") -> bytes:
    """The image at `url` as a re-encoded PNG (engine.images.reencode), or a UserError saying why not;
    `what` names the kind of link in the messages ("`--sref` link", "image link")."""
    try:
        async with asyncio.timeout(TIMEOUT_S):
            data = await _download(URL(url), what)
    except TimeoutError:
        raise UserError(f"The {what} {_shown(url)} took longer than {TIMEOUT_S:g} s to download.") from None
    except ValueError:  # yarl: not a URL at all
        raise UserError(f"The {what} {_shown(url)} is not a valid link.") from None
    try:
        return await asyncio.to_thread(images.reencode, data)
    except images.ImageDecodeError as error:
        raise UserError(f"The image at the {what} {_shown(url)} {error}") from None


async def _download(url: URL, what: str) -> bytes:
    for _ in range(MAX_REDIRECTS + 1):
        _check_url(url, what)
        connector = aiohttp.TCPConnector(resolver=_PublicOnlyResolver(url, what), use_dns_cache=False)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                async with session.get(url, allow_redirects=False) as response:
                    if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                        url = url.join(URL(response.headers["Location"]))
                        continue  # the next hop is checked like the first
                    return await _read(url, response, what)
        except aiohttp.ClientConnectorDNSError:
            raise UserError(f"The {what} {_shown(url)} is unreachable: its host name does not resolve.") from None
        except aiohttp.ClientConnectorError:
            raise UserError(f"The {what} {_shown(url)} is unreachable: nothing answers there.") from None
        except aiohttp.InvalidURL:
            raise UserError(f"The {what} {_shown(url)} is not a valid link.") from None
        except aiohttp.ClientError as e:
            raise UserError(f"The {what} {_shown(url)} is unreachable ({e.__class__.__name__}).") from None
    raise UserError(f"The {what} {_shown(url)} redirects too many times: link the image itself.")


def _check_url(url: URL, what: str) -> None:
    """The bot's own reading of the host, not the HTTP client's: a name, or an IP
    written plainly. Numeric hosts in other forms (`2130706433`, `0177.0.0.1`,
    `0x7f.1`, `127.1`) are refused outright, as browsers would read them as IPv4
    but ipaddress does not; no image host is written that way."""
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise UserError(f"The {what} {_shown(url)} is not an http(s) link.")
    host = url.raw_host  # what the client connects to: IDNA-encoded, lower case
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    else:  # an IP literal, which aiohttp does not resolve
        if not is_allowed_address(host):
            raise _private(url, host, what)
        return
    if len(host) > MAX_HOST or any(len(label) > MAX_LABEL for label in host.split(".")):
        raise UserError(f"The {what} {_shown(url)} is too long: a host name may have at most "
                        f"{MAX_HOST} characters, {MAX_LABEL} between dots.")
    labels = host.removesuffix(".").split(".")
    if _NUMERIC_LABEL_RE.fullmatch(labels[-1]):
        raise UserError(f"The {what} {_shown(url)} writes its address in an unusual form (`{host}`): "
                        "link the image by its host name, or by a plain address like `93.184.216.34`.")
    if not all(_LABEL_RE.fullmatch(label) for label in labels):
        raise UserError(f"The {what} {_shown(url)} is not a valid link: `{host}` is not a host name.")
    # a host name: the resolver checks every address it resolves to


async def _read(url: URL, response: aiohttp.ClientResponse, what: str) -> bytes:
    if response.status != 200:
        raise UserError(f"The {what} {_shown(url)} answered HTTP {response.status}, not an image.")
    if response.content_type not in images.CONTENT_TYPES:
        raise UserError(f"The {what} {_shown(url)} is not an image ({response.content_type}): "
                        f"it must be a {images.KINDS}.")
    too_big = UserError(f"The {what} {_shown(url)} is too big: an image may be at most {images.MAX_BYTES // 2**20} MB.")
    if (response.content_length or 0) > images.MAX_BYTES:
        raise too_big
    data = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        data += chunk
        if len(data) > images.MAX_BYTES:
            raise too_big
    return bytes(data)

