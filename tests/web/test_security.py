"""The web companion's security, point by point, over real HTTP against the
web server of a bot that SimCord runs."""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import pytest

from tests.bot.conftest import run_until
from tests.bot.test_imagine import finished
from tests.web.conftest import login_link, signed_in


async def test_every_page_needs_a_session(simcord_env, world, base_url):
    async with aiohttp.ClientSession() as anonymous:
        for path in ("/rank", "/explore", "/profile", "/image/1", "/img/1", "/img/pool/1"):
            async with anonymous.get(base_url + path, allow_redirects=False) as answer:
                assert answer.status == 401, path
                assert "/web" in await answer.text()
        async with anonymous.post(base_url + "/api/rank/vote", json={"pair_id": 1, "choice": "left"}) as answer:
            assert answer.status == 401
            assert "session" in (await answer.json())["error"]


async def test_the_login_link_works_once_and_sets_a_safe_cookie(simcord_env, world, base_url):
    _, channel, alice, _ = world
    link = await login_link(alice, channel)
    token = link.split("t=", 1)[1]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        # Opening the link (or a link preview fetching it) doesn't spend it: the button does.
        async with browser.get(link) as answer:
            assert answer.status == 200 and "Continue" in await answer.text()
        async with browser.post(base_url + "/login", data={"t": token}, allow_redirects=False) as answer:
            assert answer.status == 303 and answer.headers["Location"] == "/rank"
            cookie = answer.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http on loopback; TASTEMAKER_WEB_URL=https://... adds it
    async with aiohttp.ClientSession() as someone_else:
        async with someone_else.post(base_url + "/login", data={"t": token}, allow_redirects=False) as answer:
            assert answer.status == 403 and "already used" in await answer.text()
        forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        async with someone_else.post(base_url + "/login", data={"t": forged}, allow_redirects=False) as answer:
            assert answer.status == 403


async def test_an_expired_login_link_is_refused(simcord_env, world, simcord_bot, base_url):
    from bot.web import auth

    secret = await auth.load_secret(simcord_bot.db, None)
    token = await auth.create_login_token(simcord_bot.db, secret, 1234, "late", ttl_s=-1)
    async with aiohttp.ClientSession() as browser:
        async with browser.post(base_url + "/login", data={"t": token}, allow_redirects=False) as answer:
            assert answer.status == 403 and "expired" in await answer.text()


async def test_sessions_expire_and_logout_ends_them(simcord_env, world, simcord_bot, base_url):
    _, channel, alice, _ = world
    client = await signed_in(alice, channel)
    async with client:
        async with client.get(base_url + "/profile") as answer:
            assert answer.status == 200
        await simcord_bot.db.execute("UPDATE web_sessions SET expires_at = ?", (time.time() - 1,))
        async with client.get(base_url + "/profile") as answer:
            assert answer.status == 401
    client = await signed_in(alice, channel)
    async with client:
        async with client.post(base_url + "/logout", data={"csrf": client.csrf}) as answer:
            assert answer.url.path == "/signed-out"
        async with client.get(base_url + "/profile") as answer:
            assert answer.status == 401


async def test_every_answer_has_security_headers(simcord_env, world, base_url):
    _, channel, alice, _ = world
    client = await signed_in(alice, channel)
    async with client:
        for path in ("/rank", "/explore", "/profile", "/nowhere", "/static/app.css"):
            async with client.get(base_url + path) as answer:
                csp = answer.headers["Content-Security-Policy"]
                assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
                assert answer.headers["X-Frame-Options"] == "DENY"
                assert answer.headers["X-Content-Type-Options"] == "nosniff"
                assert answer.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("with_rank_pool", [True])
async def test_every_post_needs_the_csrf_token(simcord_env, world, base_url):
    _, channel, alice, _ = world
    client = await signed_in(alice, channel)
    async with client:
        page = await (await client.get(base_url + "/rank")).text()
        pair_id = int(re.search(r'data-pair="(\d+)"', page).group(1))
        for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
            for path, body in (("/api/rank/vote", {"pair_id": pair_id, "choice": "left"}), ("/api/like/1", {}),
                               ("/api/codes/aaaaaaa", {"public": False})):
                async with client.post(base_url + path, json=body, headers=headers) as answer:
                    assert answer.status == 403, path
                    assert "CSRF" in (await answer.json())["error"]
        async with client.post(base_url + "/logout", data={}) as answer:
            assert answer.status == 403
        async with client.post(base_url + "/api/moodboards", data=aiohttp.FormData({"x": "1"})) as answer:
            assert answer.status == 403
        # Nothing was counted; with the token, the vote goes through.
        async with client.post(base_url + "/api/rank/vote", json={"pair_id": pair_id, "choice": "left"},
                               headers={"X-CSRF-Token": client.csrf}) as answer:
            assert answer.status == 200
            assert (await answer.json())["progress"]["votes"] == 1


@pytest.mark.parametrize("with_rank_pool", [True])
async def test_votes_are_rate_limited(simcord_env, world, base_url):
    _, channel, alice, _ = world
    client = await signed_in(alice, channel)
    statuses = []
    async with client:
        page = await (await client.get(base_url + "/rank")).text()
        pair_id = int(re.search(r'data-pair="(\d+)"', page).group(1))
        for _ in range(40):  # a script, not a member: far faster than anyone presses keys
            async with client.post(base_url + "/api/rank/vote", json={"pair_id": pair_id, "choice": "left"},
                                   headers={"X-CSRF-Token": client.csrf}) as answer:
                statuses.append(answer.status)
                if answer.status == 200:
                    pair_id = (await answer.json())["pair"]["id"]
                else:
                    assert (await answer.json())["error"].startswith("Slow down")
    assert statuses.count(429) >= 10
    assert statuses.count(200) >= 8  # a member's burst goes through


async def test_images_are_served_by_id_only(simcord_env, world, simcord_bot, base_url):
    _, channel, alice, _ = world
    (simcord_bot.settings.data_dir / "secret.txt").write_text("not for the web")
    client = await signed_in(alice, channel)
    async with client:
        for path in ("/img/../tastemaker.db", "/img/%2e%2e/tastemaker.db", "/img/images/x/1.png", "/img/secret.txt",
                     "/static/../../config.py", "/static/%2e%2e/routes.py", "/img/99999999999999999999999"):
            async with client.get(base_url + path) as answer:
                assert answer.status in (403, 404), path
                assert b"not for the web" not in await answer.read()


HUGE = "9" * 5000  # past the 4300 digits Python's int() accepts: int() raises before any range check


async def test_a_huge_or_odd_id_is_not_found_on_every_route(simcord_env, world, simcord_bot, base_url):
    """Every route that takes an id or a page number answers "not found" for a 5000-digit one (not
    "something went wrong"), and for digits of other scripts and superscripts, which int() reads or refuses."""
    _, channel, alice, _ = world
    client = await signed_in(alice, channel)
    async with client:
        for odd in (HUGE, "9" * 20, "\u0661\u0662", "\u00b2"):
            for path in (f"/image/{odd}", f"/img/{odd}", f"/img/pool/{odd}", f"/explore?page={odd}",
                         f"/explore?server={odd}"):
                async with client.get(base_url + path) as answer:
                    assert answer.status == 404, (path[:40], answer.status)
                    assert "There is nothing here" in await answer.text(), path[:40]
            for path in (f"/api/like/{odd}", f"/api/image/{odd}/vary-region"):
                async with client.post(base_url + path, headers={"X-CSRF-Token": client.csrf}) as answer:
                    assert answer.status == 404, (path[:40], answer.status)
                    if odd.isascii():  # a route's digits: the handler's own answer
                        assert (await answer.json())["error"] == "No such image.", path[:40]
            async with client.post(base_url + "/api/rank/vote", json={"pair_id": odd, "choice": "left"},
                                   headers={"X-CSRF-Token": client.csrf}) as answer:
                assert answer.status == 404 and (await answer.json())["error"] == "That pair is not yours."
        async with client.get(base_url + "/explore?page=") as answer:  # no page: the first
            assert answer.status == 200
    assert (await simcord_bot.db.execute_fetchall("SELECT COUNT(*) FROM likes"))[0][0] == 0


async def test_a_member_of_one_server_gets_404_for_another_servers_image(simcord_env, world, simcord_bot, base_url):
    guild, channel, alice, bob = world
    await bob.slash(channel, "imagine", prompt="a secret garden --seed 9")
    await run_until(simcord_env, lambda: finished(channel, "a secret garden"))
    [(image_id,)] = await simcord_bot.db.execute_fetchall("SELECT MIN(id) FROM images")
    other = simcord_env.create_guild("Elsewhere")
    elsewhere = other.create_text_channel("general")
    carol = other.add_member(simcord_env.create_user("carol"))
    # Alice shares Bob's server: she sees it. Carol only shares another server with the bot.
    insider = await signed_in(alice, channel)
    outsider = await signed_in(carol, elsewhere)
    async with insider, outsider:
        async with insider.get(f"{base_url}/image/{image_id}") as answer:
            assert answer.status == 200 and "a secret garden" in await answer.text()
        async with insider.get(f"{base_url}/img/{image_id}") as answer:
            assert answer.status == 200 and answer.content_type == "image/png"
        for path in (f"/image/{image_id}", f"/img/{image_id}", f"/explore?server={guild.id}"):
            async with outsider.get(base_url + path) as answer:
                assert answer.status == 404, path
                assert "a secret garden" not in await answer.text()
        async with outsider.get(f"{base_url}/explore") as answer:
            page = await answer.text()
            assert answer.status == 200 and "a secret garden" not in page and f"/img/{image_id}" not in page
        async with outsider.post(f"{base_url}/api/like/{image_id}", headers={"X-CSRF-Token": outsider.csrf}) as answer:
            assert answer.status == 404
    assert (await simcord_bot.db.execute_fetchall("SELECT COUNT(*) FROM likes"))[0][0] == 0


@pytest.mark.parametrize("with_rank_pool", [True])
async def test_moodboard_uploads_get_discords_checks_and_become_a_code(simcord_env, world, simcord_bot, base_url):
    import io

    from PIL import Image

    _, channel, alice, _ = world

    def png(colour) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (64, 64), colour).save(out, "PNG")
        return out.getvalue()

    client = await signed_in(alice, channel)
    async with client:
        headers = {"X-CSRF-Token": client.csrf}
        # 1. Not an image: refused by name, nothing queued.
        form = aiohttp.FormData()
        form.add_field("images", png("red"), filename="red.png", content_type="image/png")
        form.add_field("images", b"hello", filename="notes.txt", content_type="text/plain")
        async with client.post(f"{base_url}/api/moodboards", data=form, headers=headers) as answer:
            assert answer.status == 400
            assert (await answer.json())["error"] == (
                "`notes.txt` is not an image (text/plain): a moodboard takes PNG, JPEG, WebP or GIF images. Nothing was queued.")
        # 2. A broken PNG: the one decoder says why.
        form = aiohttp.FormData()
        form.add_field("images", b"\x89PNG\r\n\x1a\nbroken", filename="broken.png", content_type="image/png")
        async with client.post(f"{base_url}/api/moodboards", data=form, headers=headers) as answer:
            assert answer.status == 400 and "`broken.png`" in (await answer.json())["error"]
        assert (await simcord_bot.db.execute_fetchall("SELECT COUNT(*) FROM jobs"))[0][0] == 0
        # 3. Two good images: one EMBED job through the queue, then a code.
        form = aiohttp.FormData()
        for colour in ("red", "navy"):
            form.add_field("images", png(colour), filename=f"{colour}.png", content_type="image/png")
        async with client.post(f"{base_url}/api/moodboards", data=form, headers=headers) as answer:
            assert answer.status == 200, await answer.text()
            board = await answer.json()
        assert board["images"] == 2

        async def code() -> str | None:
            async with client.get(f"{base_url}/api/moodboards/{board['id']}") as answer:
                return (await answer.json())["code"]

        found = []
        for _ in range(600):
            if (value := await code()) is not None:
                found.append(value)
                break
            await asyncio.to_thread(time.sleep, 0.1)  # the worker, in real time
            await simcord_env.advance_time(0.5)  # the bot's job pump, in virtual time
        rows = await simcord_bot.db.execute_fetchall("SELECT state, error, request, delivered_at FROM jobs") + await simcord_bot.db.execute_fetchall("SELECT state, tries, worker, guild_key, round FROM queue_jobs")
        assert found, f"no moodboard code: {[tuple(r) for r in rows]}"
        async with client.get(f"{base_url}/profile") as answer:
            assert found[0] in await answer.text()
