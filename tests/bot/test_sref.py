"""--sref through SimCord: a taste code or an image link as the style reference.

No test touches the network: links point at a tiny aiohttp server on
127.0.0.1, which the SSRF guard allows only where a test says so.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import re
import socket
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from PIL import Image

from bot import fetch
from tests.bot.conftest import acknowledge_user_errors, private_reply, run_until
from tests.bot.test_imagine import finished, job_message
from tests.bot.test_prefer import job_rows, vote

NO_WORKERS = {"TASTEMAKER_WORKERS": "0"}


def png(size: tuple[int, int], color: str = "orange") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


@asynccontextmanager
async def image_server():
    """http://127.0.0.1:PORT with a few pages; yields its base URL."""

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "style.png":
            return web.Response(body=png((1600, 900)), content_type="image/png")
        if name == "page.html":
            return web.Response(text="<html>hello</html>", content_type="text/html")
        if name == "huge.png":  # no Content-Length: the download must stop by itself
            response = web.StreamResponse(headers={"Content-Type": "image/png"})
            await response.prepare(request)
            for _ in range(10):
                await response.write(b"\0" * 2**20)
            return response
        if name == "bomb.png":
            return web.Response(body=png((5000, 4000)), content_type="image/png")
        if name == "away.png":
            raise web.HTTPFound("http://10.0.0.1/x.png")
        if name == "moved.png":
            raise web.HTTPFound("/style.png")
        raise web.HTTPNotFound()

    async with local_server(serve) as base:
        yield base


@asynccontextmanager
async def local_server(serve):
    """http://127.0.0.1:PORT answering GET /{name} with `serve`; yields its base URL."""
    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def allow_loopback(monkeypatch) -> None:
    """This test's server is on 127.0.0.1; everything else private stays refused."""
    guard = fetch.is_allowed_address
    monkeypatch.setattr(fetch, "is_allowed_address", lambda a: ipaddress.ip_address(a).is_loopback or guard(a))


async def refused(env, bot, channel, member, prompt: str, expected: str) -> None:
    reply = private_reply(await member.slash(channel, "imagine", prompt=prompt))
    assert expected in reply, reply
    assert acknowledge_user_errors(env)[-1] == reply
    assert await job_rows(bot) == []
    assert channel.last_message is None


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_private_addresses_and_other_schemes_are_refused(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    for url in ("http://127.0.0.1/x.png", "http://10.0.0.1/x.png", "http://[::1]:8080/x.png", "http://localhost/x.png"):
        await refused(simcord_env, simcord_bot, channel, alice, f"a cat --sref {url}", "points to a private address")
    await refused(
        simcord_env, simcord_bot, channel, alice, "a cat --sref ftp://example.com/x.png",
        "`--sref ftp://example.com/x.png` is not a code or a link",
    )


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1"])
def test_public_addresses_pass_the_guard(address):
    assert fetch.is_allowed_address(address)


TEREDO_SERVER_LOOPBACK = "2001:0:7f00:1:8000:63bf:f7f7:f7f7"  # server 127.0.0.1, client ~0xf7f7f7f7 = 8.8.8.8


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("127.0.0.1", None), ("10.1.2.3", None), ("169.254.169.254", None), ("100.64.0.1", None), ("0.0.0.0", None),
        ("224.0.0.1", None), ("255.255.255.255", None), ("::1", None), ("::", None), ("fe80::1%eth0", None),
        ("fc00::1", None), ("fec0::1", None), ("ff02::1", None), ("2001:db8::1", None),
        ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped
        ("::ffff:0:10.0.0.1", "10.0.0.1"),  # IPv4-translated
        ("::127.0.0.1", "127.0.0.1"),  # IPv4-compatible, which Python 3.11 calls global
        ("64:ff9b::169.254.169.254", "169.254.169.254"),  # NAT64, well-known prefix
        ("64:ff9b:1::8.8.8.8", "8.8.8.8"),  # NAT64 local-use: never global, whatever it carries
        ("2002:7f00:1::", "127.0.0.1"), ("2002:c0a8:101::1", "192.168.1.1"),  # 6to4
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),  # Teredo: the client, bits inverted
        (TEREDO_SERVER_LOOPBACK, "127.0.0.1"),  # Teredo: the server
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "8.8.8.8"),  # Teredo, both public: still not global
    ],
)
def test_private_addresses_and_what_they_wrap_are_refused(address, carried):
    assert not fetch.is_allowed_address(address)
    if carried:
        assert carried in [str(ip) for ip in fetch.unwrapped(address)]


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_wrapped_numeric_and_over_long_links_are_refused_by_the_bot_itself(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    for url, expected in [
        ("http://[::ffff:127.0.0.1]/x.png", "private address (::ffff:7f00:1, which carries 127.0.0.1)"),
        ("http://[::ffff:0:a9fe:a9fe]/x.png", "which carries 169.254.169.254"),
        ("http://[64:ff9b::a9fe:a9fe]/x.png", "private address (64:ff9b::a9fe:a9fe, which carries 169.254.169.254)"),
        ("http://[64:ff9b:1::808:808]/x.png", "points to a private address (64:ff9b:1::808:808)"),
        ("http://[2002:7f00:1::]/x.png", "private address (2002:7f00:1::, which carries 127.0.0.1)"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x.png", "which carries 192.0.2.45"),
        (f"http://[{TEREDO_SERVER_LOOPBACK}]/x.png", "which carries 127.0.0.1"),
        ("http://2130706433/x.png", "writes its address in an unusual form (`2130706433`)"),
        ("http://0177.0.0.1/x.png", "writes its address in an unusual form (`0177.0.0.1`)"),
        ("http://0x7f.1/x.png", "writes its address in an unusual form (`0x7f.1`)"),
        ("http://127.1/x.png", "writes its address in an unusual form (`127.1`)"),
        ("http://127.0.0.1./x.png", "writes its address in an unusual form (`127.0.0.1.`)"),
        ("http://１２７。０。０。１/x.png", "points to a private address (127.0.0.1)"),  # full-width, ideographic dots
        (f"http://{'a' * 64}.example/x.png", "is too long: a host name may have at most 253 characters"),
        (f"http://{'a.' * 130}example/x.png", "is too long: a host name may have at most 253 characters"),
    ]:
        await refused(simcord_env, simcord_bot, channel, alice, f"a cat --sref {url}", expected)
    link = "https://example.com/" + "a" * 2100 + ".png"
    await refused(simcord_env, simcord_bot, channel, alice, f"a cat --sref {link}",
                  f"is too long ({len(link)} characters): a link may be at most 2048")


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_a_name_resolving_to_a_wrapped_private_address_is_refused(simcord_env, world, simcord_bot, monkeypatch):
    """The resolver checks what DNS answers (an AAAA record holding a NAT64-wrapped
    loopback here) with the same unwrapping as a literal."""
    _, channel, alice, _ = world
    loop = asyncio.get_running_loop()
    getaddrinfo = loop.getaddrinfo

    async def answer(host, port, *args, **kwargs):
        if host == "wrapped.test":
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("64:ff9b::7f00:1", port, 0, 0))]
        return await getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", answer)
    await refused(simcord_env, simcord_bot, channel, alice, "a cat --sref http://wrapped.test/x.png",
                  "private address (64:ff9b::7f00:1, which carries 127.0.0.1)")


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_bad_links_get_a_specific_error(simcord_env, world, simcord_bot, monkeypatch):
    _, channel, alice, _ = world
    allow_loopback(monkeypatch)
    async with image_server() as base:
        for name, expected in [
            ("page.html", "is not an image (text/html)"),
            ("huge.png", "is too big"),
            ("bomb.png", "is 5000×4000 pixels"),
            ("missing.png", "answered HTTP 404"),
            ("away.png", "`http://10.0.0.1/x.png` points to a private address"),
        ]:
            await refused(simcord_env, simcord_bot, channel, alice, f"a cat --sref {base}/{name}", expected)


async def test_a_linked_image_steers_the_grid(simcord_env, world, simcord_bot, monkeypatch):
    _, channel, alice, _ = world
    allow_loopback(monkeypatch)
    submitted = []
    submit = simcord_bot.queue.submit

    async def spy(job):
        submitted.append(job)
        await submit(job)

    monkeypatch.setattr(simcord_bot.queue, "submit", spy)
    async with image_server() as base:
        url = f"{base}/moved.png"  # a redirect to /style.png, checked again
        await alice.slash(channel, "imagine", prompt=f"a lighthouse --seed 7 --sref {url}")

    [job] = submitted
    [style] = job.generate.style_images
    assert Image.open(io.BytesIO(style)).size == (768, 432)  # downscaled, re-encoded PNG
    assert job.generate.ip_adapter_scale > 0 and job.generate.conditioning is None
    await run_until(simcord_env, lambda: finished(channel, "a lighthouse"))
    message = job_message(channel, "a lighthouse")
    assert message.content.startswith(f"**a lighthouse --seed 7 --sref {url}** - {alice.mention}")
    assert f"`--sref {url} --s 100`" in message.content and "seed 7" in message.content
    [grid] = message.attachments
    assert Image.open(io.BytesIO(await grid.read())).size == (256, 256)


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [{**NO_WORKERS, "TASTEMAKER_UNLOCK_VOTES": "3"}])
async def test_a_code_steers_like_p(simcord_env, world, simcord_bot):
    _, channel, alice, bob = world
    await vote(simcord_bot, alice.id, 3)
    listed = await alice.slash(channel, "codes")
    code = re.search(r"`([a-z2-7]{7})`", listed.response.content).group(1)

    await bob.slash(channel, "imagine", prompt=f"a dog --sref {code.upper()}")
    assert channel.last_message.content.startswith(f"**a dog --sref {code}** - {bob.mention}")
    [(kind, _, info)] = await job_rows(simcord_bot)
    assert (kind, info["sref"], info["codes"]) == ("imagine", code, [])
    job = await simcord_bot.queue.claim("test", 30)
    assert job.generate.conditioning is not None and job.generate.ip_adapter_scale > 0
    assert not job.generate.style_images
