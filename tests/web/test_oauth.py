"""Log in with Discord (OAuth2), over real HTTP: the bot's web server under
SimCord talks to a fake Discord OAuth2 server on loopback that checks every
request the way Discord does."""

from __future__ import annotations

import logging
import secrets
import socket
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web

from bot.web import routes
from tests.bot.conftest import run_until
from tests.bot.test_imagine import finished

CLIENT_ID = "112233445566778899"
CLIENT_SECRET = "s3cret-only-discord-may-see-Zq81"


@dataclass
class FakeDiscord:
    """Discord's authorize page, token endpoint and /users/@me(/guilds)."""

    redirect_uri: str
    user: dict = field(default_factory=dict)  # who is signed in to "Discord" in this browser
    guilds: list[dict] = field(default_factory=list)
    token_status: int = 200  # anything else: the token endpoint fails with it
    revoked: bool = False  # /users/@me turns every token down
    codes: dict[str, str] = field(default_factory=dict)  # code -> redirect_uri it was issued for
    used_codes: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)
    exchanges: int = 0
    seen: list[str] = field(default_factory=list)  # every URL asked for, query included

    def routes(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/oauth2/authorize", self.authorize)
        app.router.add_post("/api/v10/oauth2/token", self.token)
        app.router.add_get("/api/v10/users/@me", self.me)
        app.router.add_get("/api/v10/users/@me/guilds", self.my_guilds)
        return app

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        """The member approves: back to redirect_uri with a fresh code and the state."""
        self.seen.append(str(request.url))
        query = request.query
        assert query["client_id"] == CLIENT_ID and query["response_type"] == "code"
        assert query["redirect_uri"] == self.redirect_uri and set(query["scope"].split()) == {"identify", "guilds"}
        code = secrets.token_hex(8)
        self.codes[code] = query["redirect_uri"]
        raise web.HTTPFound(f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}")

    async def token(self, request: web.Request) -> web.Response:
        self.seen.append(str(request.url))
        self.exchanges += 1
        form = await request.post()
        if self.token_status != 200:
            return web.json_response({"error": "server_error"}, status=self.token_status)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return web.json_response({"error": "invalid_client"}, status=401)
        code = form.get("code")
        if (form.get("grant_type") != "authorization_code" or code not in self.codes or code in self.used_codes
                or form.get("redirect_uri") != self.codes[code]):
            return web.json_response({"error": "invalid_grant"}, status=400)
        self.used_codes.add(code)
        access = secrets.token_hex(16)
        self.tokens.add(access)
        return web.json_response({"access_token": access, "token_type": "Bearer", "expires_in": 604800,
                                  "refresh_token": secrets.token_hex(16), "scope": "identify guilds"})

    def _check_bearer(self, request: web.Request) -> None:
        self.seen.append(str(request.url))
        kind, _, access = request.headers.get("Authorization", "").partition(" ")
        if kind != "Bearer" or access not in self.tokens or self.revoked:
            raise web.HTTPUnauthorized(text='{"message": "401: Unauthorized", "code": 0}',
                                       content_type="application/json")

    async def me(self, request: web.Request) -> web.Response:
        self._check_bearer(request)
        return web.json_response(self.user)

    async def my_guilds(self, request: web.Request) -> web.Response:
        self._check_bearer(request)
        return web.json_response(self.guilds)


@pytest.fixture
def web_overrides() -> dict[str, str]:
    return {"TASTEMAKER_DISCORD_CLIENT_ID": CLIENT_ID, "TASTEMAKER_DISCORD_CLIENT_SECRET": CLIENT_SECRET}


@pytest.fixture
async def fake_discord(base_url, monkeypatch):
    fake = FakeDiscord(redirect_uri=f"{base_url}/auth/discord/callback")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    runner = web.AppRunner(fake.routes())
    await runner.setup()
    await web.SockSite(runner, sock).start()
    root = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setattr(routes, "DISCORD_AUTHORIZE", f"{root}/oauth2/authorize")
    monkeypatch.setattr(routes, "DISCORD_API", f"{root}/api/v10")
    yield fake
    await runner.cleanup()


def browser() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # unsafe: cookies for 127.0.0.1


def cookie_names(client: aiohttp.ClientSession) -> set[str]:
    return {cookie.key for cookie in client.cookie_jar}


async def sessions(bot) -> int:
    return (await bot.db.execute_fetchall("SELECT COUNT(*) FROM web_sessions"))[0][0]


async def start(client: aiohttp.ClientSession, base_url: str) -> dict[str, str]:
    """/auth/discord: the authorize URL's query, without following it (the state cookie is kept)."""
    async with client.get(base_url + "/auth/discord", allow_redirects=False) as answer:
        assert answer.status == 303, answer.status
        return {key: values[0] for key, values in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


async def assert_refused(client, base_url: str, answer: aiohttp.ClientResponse, words: str) -> None:
    assert answer.status == 403 and answer.url.path == "/auth/discord/callback", (answer.status, answer.url)
    assert words in await answer.text()
    assert "tm_session" not in cookie_names(client)
    async with client.get(base_url + "/profile") as profile:
        assert profile.status == 401


async def test_log_in_with_discord_records_the_members_servers(simcord_env, world, simcord_bot, base_url,
                                                               fake_discord, caplog):
    caplog.set_level(logging.DEBUG)
    guild, channel, alice, bob = world
    await bob.slash(channel, "imagine", prompt="a paper moon --seed 3")
    await run_until(simcord_env, lambda: finished(channel, "a paper moon"))
    [(image_id,)] = await simcord_bot.db.execute_fetchall("SELECT MIN(id) FROM images")
    # Alice never used the bot: only Discord can tell the web companion which servers she is in.
    assert not await simcord_bot.db.execute_fetchall("SELECT 1 FROM web_members WHERE user_id = ?", (alice.id,))
    fake_discord.user = {"id": str(alice.id), "username": "alice", "global_name": "Alice A."}
    fake_discord.guilds = [{"id": str(guild.id), "name": "Art club"}, {"id": "424242424242", "name": "Elsewhere"}]
    bodies: list[str] = []

    async with browser() as client:
        # 1. The signed-out page offers the button; it leads to Discord's authorize page.
        async with client.get(base_url + "/explore") as answer:
            assert answer.status == 401 and 'href="/auth/discord"' in await answer.text()
        async with client.get(base_url + "/auth/discord", allow_redirects=False) as answer:
            assert answer.status == 303
            location = answer.headers["Location"]
            state_cookie = answer.headers["Set-Cookie"]
            bodies.append(location + await answer.text())
        assert location.startswith(routes.DISCORD_AUTHORIZE + "?")
        query = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
        assert query["client_id"] == CLIENT_ID and query["response_type"] == "code"
        assert query["redirect_uri"] == f"{base_url}/auth/discord/callback"
        assert query["scope"] == "identify guilds" and len(query["state"]) >= 20
        assert f"tm_oauth_state={query['state']}" in state_cookie
        assert "HttpOnly" in state_cookie and "SameSite=Lax" in state_cookie and "Path=/auth/discord" in state_cookie

        # 2. Discord sends her back with a code: signed in, with a safe session cookie.
        async with client.get(location, allow_redirects=False) as approved:
            callback = approved.headers["Location"]
        async with client.get(callback, allow_redirects=False) as answer:
            assert answer.status == 303 and answer.headers["Location"] == "/rank"
            cookies = answer.headers.getall("Set-Cookie")
            bodies.append(str(dict(answer.headers)) + await answer.text())
        session_cookie = next(c for c in cookies if c.startswith("tm_session="))
        assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie and "Path=/" in session_cookie
        assert "Secure" not in session_cookie  # plain http on loopback
        assert any(c.startswith("tm_oauth_state=") and "Max-Age=0" in c for c in cookies)  # the state is spent
        assert fake_discord.exchanges == 1

        # 3. Her servers are recorded, so explore shows that server's images under its name.
        async with client.get(base_url + "/explore") as answer:
            page = await answer.text()
            bodies.append(page)
        assert answer.status == 200 and "Alice A." in page
        assert f"/image/{image_id}" in page and "Art club" in page
        async with client.get(f"{base_url}/image/{image_id}") as answer:
            assert answer.status == 200 and "a paper moon" in await answer.text()
    rows = await simcord_bot.db.execute_fetchall(
        "SELECT guild_id, guild_name, source FROM web_members WHERE user_id = ? ORDER BY guild_id", (alice.id,))
    assert sorted(map(tuple, rows)) == sorted([(guild.id, "Art club", "oauth"), (424242424242, "Elsewhere", "oauth")])

    # 4. The client secret went to the token endpoint only: not in a URL, an answer or the log.
    assert not any(CLIENT_SECRET in url for url in fake_discord.seen)
    assert not any(CLIENT_SECRET in body for body in bodies)
    assert CLIENT_SECRET not in caplog.text


async def test_a_wrong_or_missing_state_is_refused_before_any_exchange(simcord_env, world, simcord_bot, base_url,
                                                                         fake_discord):
    fake_discord.user = {"id": "5001", "username": "mallory"}
    async with browser() as client:
        query = await start(client, base_url)
        async with client.get(routes.DISCORD_AUTHORIZE + "?" + urlencode(query), allow_redirects=False) as approved:
            code = parse_qs(urlsplit(approved.headers["Location"]).query)["code"][0]
        callback = base_url + "/auth/discord/callback"
        async with client.get(callback, params={"code": code, "state": query["state"] + "x"}) as answer:
            await assert_refused(client, base_url, answer, "did not complete")
        async with client.get(callback, params={"code": code}) as answer:
            await assert_refused(client, base_url, answer, "did not complete")
    async with browser() as stranger, stranger.get(callback, params={"code": code, "state": query["state"]}) as answer:  # the right state, but no state cookie: a link someone else started
        await assert_refused(stranger, base_url, answer, "did not complete")
    async with browser() as client:  # cancelled on Discord's page
        query = await start(client, base_url)
        async with client.get(callback, params={"error": "access_denied", "state": query["state"]}) as answer:
            await assert_refused(client, base_url, answer, "did not complete")
    assert fake_discord.exchanges == 0 and await sessions(simcord_bot) == 0


async def test_a_state_works_once(simcord_env, world, simcord_bot, base_url, fake_discord):
    fake_discord.user = {"id": "5002", "username": "dora"}
    async with browser() as client:
        query = await start(client, base_url)
        async with client.get(base_url + "/auth/discord/callback", params={"code": "nope", "state": query["state"]}) as answer:
            await assert_refused(client, base_url, answer, "did not accept")
        # The failed try spent the state: a second code on the same state isn't even exchanged.
        async with client.get(routes.DISCORD_AUTHORIZE + "?" + urlencode(query), allow_redirects=False) as approved:
            callback = approved.headers["Location"]
        async with client.get(callback) as answer:
            await assert_refused(client, base_url, answer, "did not complete")
    assert fake_discord.exchanges == 1 and await sessions(simcord_bot) == 0


async def test_a_reused_code_is_refused(simcord_env, world, simcord_bot, base_url, fake_discord):
    fake_discord.user = {"id": "5003", "username": "erin"}
    async with browser() as first, first.get(base_url + "/auth/discord") as answer:  # the whole round trip
        assert answer.status == 200 and answer.url.path == "/rank"
        code = parse_qs(urlsplit(str(answer.history[-1].url)).query)["code"][0]
    assert await sessions(simcord_bot) == 1
    async with browser() as replay:  # a fresh state of its own, with the code already spent
        query = await start(replay, base_url)
        async with replay.get(base_url + "/auth/discord/callback", params={"code": code, "state": query["state"]}) as answer:
            await assert_refused(replay, base_url, answer, "did not accept")
    assert await sessions(simcord_bot) == 1


@pytest.mark.parametrize("status", [400, 401, 500])
async def test_a_token_endpoint_error_is_refused(simcord_env, world, simcord_bot, base_url, fake_discord, status,
                                                 caplog):
    fake_discord.user = {"id": "5004", "username": "finn"}
    fake_discord.token_status = status
    async with browser() as client, client.get(base_url + "/auth/discord") as answer:
        await assert_refused(client, base_url, answer, "did not accept")
    assert fake_discord.exchanges == 1 and await sessions(simcord_bot) == 0
    assert f"HTTP {status}" in caplog.text and CLIENT_SECRET not in caplog.text


async def test_a_rejected_token_or_an_unreachable_discord_is_refused(simcord_env, world, simcord_bot, base_url,
                                                                     fake_discord, monkeypatch, caplog):
    fake_discord.user = {"id": "5005", "username": "gus"}
    # 1. /users/@me turns the token down (revoked between the two calls).
    fake_discord.revoked = True
    async with browser() as client, client.get(base_url + "/auth/discord") as answer:
        await assert_refused(client, base_url, answer, "did not accept")
    # 2. Discord can't be reached at all once the member is back.
    async with browser() as client:
        query = await start(client, base_url)
        async with client.get(routes.DISCORD_AUTHORIZE + "?" + urlencode(query), allow_redirects=False) as approved:
            callback = approved.headers["Location"]
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            monkeypatch.setattr(routes, "DISCORD_API", f"http://127.0.0.1:{closed.getsockname()[1]}/api/v10")
        async with client.get(callback) as answer:
            await assert_refused(client, base_url, answer, "could not reach Discord")
    assert await sessions(simcord_bot) == 0
    assert CLIENT_SECRET not in caplog.text


@pytest.mark.parametrize("web_overrides", [{}, {"TASTEMAKER_DISCORD_CLIENT_ID": CLIENT_ID}])
async def test_without_a_client_id_and_secret_there_is_no_discord_login(simcord_env, world, simcord_bot, base_url,
                                                                        fake_discord):
    async with browser() as client, client.get(base_url + "/explore") as answer:
        assert answer.status == 401 and "/auth/discord" not in await answer.text()
        for path in ("/auth/discord", "/auth/discord/callback?code=abc&state=def"):
            async with client.get(base_url + path, allow_redirects=False) as answer:
                assert answer.status == 404 and "Log in with Discord isn&#39;t set up" in await answer.text()
                assert "Set-Cookie" not in answer.headers
    assert fake_discord.seen == [] and await sessions(simcord_bot) == 0


@pytest.mark.parametrize("web_overrides", [{
    "TASTEMAKER_DISCORD_CLIENT_ID": CLIENT_ID, "TASTEMAKER_DISCORD_CLIENT_SECRET": CLIENT_SECRET,
    "TASTEMAKER_WEB_URL": "https://tastemaker.example",
}])
async def test_behind_https_both_cookies_are_secure(simcord_env, world, simcord_bot, settings, fake_discord):
    fake_discord.user = {"id": "5006", "username": "hana"}
    direct = f"http://127.0.0.1:{settings.web_port}"  # the proxy's side of TASTEMAKER_WEB_URL
    async with browser() as client, client.get(direct + "/auth/discord", allow_redirects=False) as answer:
        state_cookie = answer.headers["Set-Cookie"]
        query = {key: values[0] for key, values in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
        assert query["redirect_uri"] == "https://tastemaker.example/auth/discord/callback"
        assert "Secure" in state_cookie
        async with client.get(routes.DISCORD_AUTHORIZE + "?" + urlencode(query), allow_redirects=False) as approved:
            callback = urlsplit(approved.headers["Location"])
        headers = {"Cookie": f"tm_oauth_state={query['state']}"}  # a Secure cookie isn't sent over plain http
        async with client.get(f"{direct}{callback.path}?{callback.query}", headers=headers,
                              allow_redirects=False) as answer:
            assert answer.status == 303 and answer.headers["Location"] == "/rank"
            session_cookie = next(c for c in answer.headers.getall("Set-Cookie") if c.startswith("tm_session="))
    assert "Secure" in session_cookie and "HttpOnly" in session_cookie
    assert await sessions(simcord_bot) == 1
