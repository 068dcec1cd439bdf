"""The web companion's security, point by point, over real HTTP against the
web server of a bot that SimCord runs."""

from __future__ import annotations

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
