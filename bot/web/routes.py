"""The web companion's pages and its small JSON API.

Pages render with Jinja2 (templates/); the API answers the pages' plain
JavaScript (static/). Votes, likes, codes and moodboards go through the same
engine functions as the Discord buttons, so both stay in step.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import secrets
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import numpy as np
from aiohttp import web
from PIL import Image

from bot import flows_video, generation, ids, retention
from bot.errors import UserError
from bot.render import preset_flag
from bot.web import auth, gallery, thumbnails
from bot.web.pages import CONTEXT, SESSION, WebContext, render
from engine import images, profiles, safety
from engine.db import jobs as db_jobs
from engine.db import members, transaction
from engine.db import taste as q
from engine.db import web as store
from engine.jobs import EmbedSpec, Job, JobKind, JobState
from engine.params import MOTIONS, ParamError
from engine.presets import PRESETS

log = logging.getLogger("bot.web")

PAGE_SIZE = 24
MAX_MOODBOARD_IMAGES = 10
MOODBOARD_KIND = "moodboard"  # the bot's job kind: the moodboard cog's delivery hook turns it into a code
DISCORD_API = "https://discord.com/api/v10"
DISCORD_AUTHORIZE = "https://discord.com/oauth2/authorize"
OAUTH_STATE_COOKIE = "tm_oauth_state"


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", lambda request: _redirect("/rank"))
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_get("/signed-out", signed_out)
    app.router.add_post("/logout", logout)
    app.router.add_get("/auth/discord", oauth_start)
    app.router.add_get("/auth/discord/callback", oauth_callback)
    app.router.add_get("/rank", rank_page)
    app.router.add_post("/api/rank/vote", vote)
    app.router.add_get("/explore", explore_page)
    # Any run of digits reaches the handler, which parses it with bot.ids (an id too long is "not found").
    app.router.add_get("/image/{image_id:[0-9]+}", image_page)
    app.router.add_post("/api/like/{image_id:[0-9]+}", like)
    app.router.add_post("/api/image/{image_id:[0-9]+}/vary-region", vary_region)
    app.router.add_post("/api/image/{image_id:[0-9]+}/animate", animate)
    app.router.add_get("/api/jobs/{job_id:[0-9a-f-]{1,64}}", job_state)
    app.router.add_post("/api/jobs/{job_id:[0-9a-f-]{1,64}}/delete", delete_job)
    app.router.add_get("/profile", profile_page)
    app.router.add_post("/api/codes/{code:[a-z2-7]{7}}", set_code_visibility)
    app.router.add_post("/api/moodboards", create_moodboard)
    app.router.add_get("/api/moodboards/{job_id:[0-9a-f-]{1,64}}", moodboard_state)
    app.router.add_get("/img/{image_id:[0-9]+}", image_file)
    app.router.add_get("/video/{image_id:[0-9]+}", video_file)
    app.router.add_get("/img/pool/{image_id:[0-9]+}", pool_image_file)
    thumb = "/{size:[0-9]{3}}/{version:[0-9a-f]{10}}.webp"
    app.router.add_get("/img/{image_id:[0-9]+}" + thumb, image_thumbnail)
    app.router.add_get("/img/pool/{image_id:[0-9]+}" + thumb, pool_thumbnail)


def _context(request: web.Request) -> WebContext:
    return request.app[CONTEXT]


def _session(request: web.Request) -> store.Session:
    return request[SESSION]


def _redirect(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


def _json_error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


# -- signing in --------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    """The /web link lands here. Its token is spent by the button (a POST), so a
    link preview that fetches the page doesn't use it up."""
    token = request.query.get("t", "")
    return render(request, "login.html", title="Sign in", token=token[:200])


async def login(request: web.Request) -> web.Response:
    context = _context(request)
    form = await request.post()
    token = form.get("t")
    found = await auth.use_login_token(context.db, context.secret, token) if isinstance(token, str) else None
    if found is None:
        return render(request, "signed_out.html", status=403, title="Link expired",
                      problem="This link has expired or was already used. Type /web in Discord for a new one.")
    user_id, name = found
    return _signed_in(request, await auth.create_session(context.db, user_id, name))


def _signed_in(request: web.Request, session_id: str) -> web.StreamResponse:
    response = web.HTTPSeeOther("/rank")
    response.set_cookie(
        auth.COOKIE, session_id, max_age=auth.SESSION_TTL_S, httponly=True, samesite="Lax",
        secure=_context(request).secure_cookies or request.secure, path="/",
    )
    return response


async def signed_out(request: web.Request) -> web.Response:
    return render(request, "signed_out.html", title="Signed out", problem="You are signed out.")


async def logout(request: web.Request) -> web.StreamResponse:
    await auth.end_session(_context(request).db, request.cookies.get(auth.COOKIE, ""))
    response = web.HTTPSeeOther("/signed-out")
    response.del_cookie(auth.COOKIE, path="/")
    return response


def _oauth_redirect_uri(context: WebContext) -> str:
    return f"{context.settings.web_base_url}/auth/discord/callback"


OAUTH_OFF = "Log in with Discord isn't set up on this server. Type /web in Discord for a sign-in link."


class DiscordRefused(Exception):
    """Discord turned the sign-in down; the message is for the log (never the secret)."""


def _oauth_configured(context: WebContext) -> bool:
    return bool(context.settings.discord_client_id and context.settings.discord_client_secret)


def _oauth_refused(request: web.Request, problem: str) -> web.Response:
    response = render(request, "signed_out.html", status=403, title="Sign in", problem=problem)
    response.del_cookie(OAUTH_STATE_COOKIE, path="/auth/discord")  # one try per state
    return response


async def oauth_start(request: web.Request) -> web.StreamResponse:
    context = _context(request)
    if not _oauth_configured(context):
        return render(request, "signed_out.html", status=404, title="Sign in", problem=OAUTH_OFF)
    state = secrets.token_urlsafe(24)
    query = urlencode({
        "client_id": context.settings.discord_client_id, "redirect_uri": _oauth_redirect_uri(context),
        "response_type": "code", "scope": "identify guilds", "state": state, "prompt": "none",
    })
    response = web.HTTPSeeOther(f"{DISCORD_AUTHORIZE}?{query}")
    response.set_cookie(OAUTH_STATE_COOKIE, state, max_age=600, httponly=True, samesite="Lax",
                        secure=context.secure_cookies or request.secure, path="/auth/discord")
    return response


async def _discord_member(context: WebContext, code: str) -> tuple[int, str, list[tuple[int, str]]]:
    """Who the member is on Discord, and their servers."""
    settings = context.settings
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
        # 1. The code for an access token (the client secret goes in this form only).
        form = {
            "grant_type": "authorization_code", "code": code, "redirect_uri": _oauth_redirect_uri(context),
            "client_id": settings.discord_client_id,
            "client_secret": settings.discord_client_secret.get_secret_value(),
        }
        async with http.post(f"{DISCORD_API}/oauth2/token", data=form) as answer:
            if answer.status != 200:
                raise DiscordRefused(f"token exchange: HTTP {answer.status}")
            token = (await answer.json())["access_token"]
        # 2. The member, then 3. their servers.
        headers = {"Authorization": f"Bearer {token}"}
        answers = []
        for path in ("/users/@me", "/users/@me/guilds"):
            async with http.get(f"{DISCORD_API}{path}", headers=headers) as answer:
                if answer.status != 200:
                    raise DiscordRefused(f"{path}: HTTP {answer.status}")
                answers.append(await answer.json())
    user, guilds = answers
    servers = [(int(guild["id"]), str(guild.get("name", ""))) for guild in guilds]
    return int(user["id"]), user.get("global_name") or user.get("username", ""), servers


async def oauth_callback(request: web.Request) -> web.StreamResponse:
    """Discord sends the member back with a code: who they are and their servers."""
    context = _context(request)
    if not _oauth_configured(context):
        return render(request, "signed_out.html", status=404, title="Sign in", problem=OAUTH_OFF)
    state, code = request.query.get("state", ""), request.query.get("code", "")
    expected = request.cookies.get(OAUTH_STATE_COOKIE, "")
    if not code or not expected or not secrets.compare_digest(state, expected):
        return _oauth_refused(request, "Discord sign-in did not complete. Try again, or type /web in Discord.")
    try:
        user_id, name, servers = await _discord_member(context, code)
    except (aiohttp.ClientConnectionError, TimeoutError) as error:
        log.warning("Discord OAuth2 sign-in: could not reach Discord (%s)", type(error).__name__)
        return _oauth_refused(request, "We could not reach Discord. Try again in a minute, or type /web in Discord.")
    except (DiscordRefused, aiohttp.ClientError, LookupError, TypeError, ValueError) as error:
        log.warning("Discord OAuth2 sign-in failed: %s", error if isinstance(error, DiscordRefused) else repr(error))
        return _oauth_refused(request, "Discord did not accept the sign-in. Try again, or type /web in Discord.")
    for guild_id, guild_name in servers:  # images exist only from servers the bot is in: no need to intersect
        await store.remember_member(context.db, user_id, guild_id, name, guild_name, "oauth")
    response = _signed_in(request, await auth.create_session(context.db, user_id, name))
    response.del_cookie(OAUTH_STATE_COOKIE, path="/auth/discord")
    return response


# -- rank --------------------------------------------------------------------------


async def _progress(context: WebContext, user_id: int, profile: str | None = None, *, with_code: bool = True) -> dict:
    """Votes toward unlocking the profile (the main one's in vote-equivalents: signals
    from use count too); its current code when asked, or at the moment of unlocking,
    as in Discord's /rank."""
    unlock = context.settings.unlock_votes
    done = await profiles.progress(context.db, user_id, profile)
    votes = math.floor(done)
    progress = {"votes": votes, "unlock": unlock, "unlocked": done >= unlock, "code": None, "profile": profile}
    if done >= unlock and (with_code or votes == unlock):
        progress["code"] = await profiles.current_code(context.db, user_id, unlock, profile)
    return progress


def _pair_json(pair: profiles.Pair) -> dict:
    return {"id": pair.id, "left": thumbnails.pool_url(pair.left_id, pair.left_path, thumbnails.LARGE),
            "right": thumbnails.pool_url(pair.right_id, pair.right_path, thumbnails.LARGE), "prompt": pair.prompt,
            "images": [pair.left_id, pair.right_id]}


async def _next_pair(
    context: WebContext, user_id: int, profile: str | None = None, avoid: tuple[int, int] | None = None
) -> tuple[dict | None, str | None]:
    try:
        pair = await profiles.next_pair(context.db, user_id, np.random.default_rng(), profile, avoid)
    except profiles.TasteError as error:  # every pair answered, or not a profile of theirs to rank
        return None, str(error)
    if pair is None:
        return None, profiles.NO_POOL_MESSAGE
    return _pair_json(pair), None


async def rank_page(request: web.Request) -> web.Response:
    """Rank into the main profile, or ?profile=NAME (one of the member's profiles taught by votes)."""
    context, session = _context(request), _session(request)
    ranked = [p for p in await profiles.list_profiles(context.db, session.user_id) if p.kind == "votes"]
    wanted = request.query.get("profile", "").strip()
    profile = next((p.name for p in ranked if p.name.lower() == wanted.lower() and p.name != profiles.MAIN_PROFILE), None)
    if wanted and profile is None and wanted.lower() != profiles.MAIN_PROFILE:
        raise web.HTTPNotFound(text=f"You have no profile named {wanted[:40]!r} to rank.")
    pair, problem = await _next_pair(context, session.user_id, profile)
    upcoming = None  # the pair after this one, which the page preloads while the member looks
    if pair is not None:
        upcoming, _ = await _next_pair(context, session.user_id, profile, avoid=pair["images"])
    progress = await _progress(context, session.user_id, profile)
    return render(request, "rank.html", title="Rank", pair=pair, upcoming_json=json.dumps(upcoming), problem=problem,
                  progress=progress, progress_json=json.dumps(progress), profile=profile or profiles.MAIN_PROFILE,
                  ranked=[p.name for p in ranked])


async def vote(request: web.Request) -> web.Response:
    """One key press: store the vote, reveal what was compared, and send the next pair:
    the one after `upcoming` (the pair the page preloaded and shows now), if it sent one."""
    context, session = _context(request), _session(request)
    if not context.votes.allow(session.user_id):
        return _json_error("Slow down a little: too many votes at once.", 429)
    try:
        body = await request.json()
        pair_id, choice = ids.row_id(str(body["pair_id"])), str(body["choice"])
        upcoming_id = None if body.get("upcoming") is None else ids.row_id(str(body["upcoming"]))
    except (KeyError, TypeError, AttributeError):
        return _json_error("A vote needs pair_id and choice (left, right or skip), and upcoming a pair id or null.")
    if choice not in profiles.CHOICES:
        return _json_error("choice is left, right or skip.")
    shown = await q.get_rank_pair(context.db, pair_id) if pair_id is not None else None
    if shown is None or shown.user_id != session.user_id:
        return _json_error("That pair is not yours.", 404)
    if not await profiles.answer_pair(context.db, session.user_id, pair_id, choice):
        return _json_error("That pair is already counted; vote on the newest one.", 409)
    answered = await profiles.answered(context.db, session.user_id, pair_id)
    profile = answered.profile  # the next pair teaches the same profile
    upcoming = await q.get_rank_pair(context.db, upcoming_id) if upcoming_id is not None else None
    avoid = (upcoming.left_id, upcoming.right_id) if upcoming is not None and upcoming.user_id == session.user_id else None
    pair, problem = await _next_pair(context, session.user_id, profile, avoid)
    return web.json_response({
        "answered": {"prompt": answered.prompt, "left": answered.left_style, "right": answered.right_style,
                     "choice": choice},
        "pair": pair, "problem": problem, "progress": await _progress(context, session.user_id, profile, with_code=False),
    })


# -- explore -----------------------------------------------------------------------


async def _guild_ids(request: web.Request) -> tuple[list[store.Guild], list[int], int | None]:
    """The member's servers, and the ones this request looks at (?server=ID: one
    of theirs, else 404)."""
    guilds = await store.guilds_of(_context(request).db, _session(request).user_id)
    wanted = request.query.get("server", "")
    if wanted:
        server = ids.snowflake(wanted)
        if server not in {g.id for g in guilds}:
            raise web.HTTPNotFound()
        return guilds, [server], server
    return guilds, [g.id for g in guilds], None


async def explore_page(request: web.Request) -> web.Response:
    context, session = _context(request), _session(request)
    guilds, guild_ids, server = await _guild_ids(request)
    order = request.query.get("order", "new")
    if order not in gallery.ORDERS:
        order = "new"
    page = ids.page(request.query.get("page") or "0")
    if page is None:
        raise web.HTTPNotFound()
    shown, personal = await gallery.page(context.db, session.user_id, guild_ids, order, page * PAGE_SIZE, PAGE_SIZE + 1)
    more = len(shown) > PAGE_SIZE
    names = await store.names_of(context.db, {image.user_id for image in shown})
    values = dict(images=shown[:PAGE_SIZE], names=names, order=order, orders=gallery.ORDERS, guilds=guilds,
                  server=server, page=page, more=more, personal=personal)
    if request.query.get("partial") == "1":  # infinite scroll: the next tiles only
        return render(request, "_tiles.html", **values)
    return render(request, "explore.html", title="Explore", **values)


async def _requested_image(request: web.Request, guild_ids: list[int] | None = None) -> gallery.Shown | None:
    """The image the URL's image_id names, if it belongs to one of the member's servers (else None: a 404)."""
    if guild_ids is None:
        _, guild_ids, _ = await _guild_ids(request)
    image_id = ids.row_id(request.match_info["image_id"])
    if image_id is None:
        return None
    return await gallery.get_visible(_context(request).db, _session(request).user_id, guild_ids, image_id)


async def image_page(request: web.Request) -> web.Response:
    context, session = _context(request), _session(request)
    guilds, guild_ids, _ = await _guild_ids(request)
    image = await _requested_image(request, guild_ids)
    if image is None:
        raise web.HTTPNotFound()
    similar = await gallery.more_like(context.db, session.user_id, guild_ids, image)
    names = await store.names_of(context.db, {image.user_id} | {s.user_id for s in similar})
    guild_names = {g.id: g.name for g in guilds}
    # The prompt as shown and copied, with `--v NAME` when another preset than the bot's drew it (as in Discord).
    flag = preset_flag(image.prompt, image.request, context.settings.model)
    prompt = " ".join(filter(None, (image.request.get("text", image.prompt), flag)))
    return render(request, "image.html", title=image.prompt[:60], image=image, similar=similar, names=names,
                  guild_name=guild_names.get(image.guild_id, ""), own=image.user_id == session.user_id, prompt=prompt)


async def like(request: web.Request) -> web.Response:
    context, session = _context(request), _session(request)
    if not context.likes.allow(session.user_id):
        return _json_error("Slow down a little: too many likes at once.", 429)
    image = await _requested_image(request)
    if image is None:
        return _json_error("No such image.", 404)
    if image.user_id == session.user_id:
        return _json_error("Likes on your own images don't count; rank pairs to teach your taste.", 400)
    counted = await profiles.record_like(context.db, session.user_id, image.id)
    likes = (await _requested_image(request)).likes
    return web.json_response({"liked": True, "counted": counted, "likes": likes,
                              "note": "Liked: it counts toward your taste." if counted else "You already liked this one."})


# -- Vary (Region) with a mask drawn on the image page --------------------------------

MASK_COVER = (0.01, 0.90)  # a drawn mask selects at least 1% and at most 90% of the image
MAX_PROMPT_CHARS = 4000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def _makers_image(
    request: web.Request, context: WebContext, session: store.Session, doing: str
) -> tuple[gallery.Shown | None, web.Response | None]:
    """The image a job from the web starts from, or the refusal: too many jobs at once, no such
    image, or not the member's own (as the Discord buttons: only its maker may `doing` it)."""
    if not context.jobs.allow(session.user_id):
        return None, _json_error("Slow down a little: too many jobs at once.", 429)
    image = await _requested_image(request)
    if image is None:
        return None, _json_error("No such image.", 404)
    if image.user_id != session.user_id:
        return None, _json_error(f"Only the member who made this image can {doing} it.", 403)
    return image, None


async def vary_region(request: web.Request) -> web.Response:
    """The owner's drawn mask (a PNG at the image's size) and an optional prompt edit -> the
    same VARIATION job as Discord's Vary (Region) (generation.prepare_from_image), queued as
    a web job: no Discord message; the page follows it through job_state."""
    context, session = _context(request), _session(request)
    image, refused = await _makers_image(request, context, session, "vary")
    if refused is not None:
        return refused
    try:
        data, prompt = await _read_mask_form(request)
        mask = await asyncio.to_thread(drawn_mask, data, image.width, image.height)
        prepared = await generation.prepare_from_image(
            context, session.user_id, image.guild_id, image.id, JobKind.VARIATION, "region", prompt, mask=mask
        )
        record = await _queue_web_job(context, prepared, image)
    except (UserError, ParamError, profiles.TasteError) as error:
        return _json_error(f"{error} Nothing was queued.")
    log.info("web region variation %s queued for user %s (image %s)", record.id, session.user_id, image.id)
    return web.json_response(await _job_json(context, record))


async def animate(request: web.Request) -> web.Response:
    """Animate (Low / High motion) from the image page: the same video job as Discord's buttons, queued
    as a web job (no Discord message); the page follows it through job_state and plays its clips."""
    context, session = _context(request), _session(request)
    image, refused = await _makers_image(request, context, session, "animate")
    if refused is not None:
        return refused
    if image.video is not None:
        return _json_error("This is a clip already: extend it in Discord.")
    try:
        motion = str((await request.json()).get("motion", "low"))
    except (ValueError, AttributeError):
        motion = ""
    if motion not in MOTIONS:
        return _json_error("motion is low or high.")
    try:
        source = await db_jobs.get_job(context.db, image.job_id)
        animation = generation.Animation(prompt=flows_video.description(source), motion=motion)
        prepared = await flows_video.prepare_animation(context, session.user_id, image.guild_id, image, source, animation)
        record = await _queue_web_job(context, prepared, image)
    except (UserError, ParamError, profiles.TasteError) as error:
        return _json_error(f"{error} Nothing was queued.")
    log.info("web animate %s queued for user %s (image %s)", record.id, session.user_id, image.id)
    return web.json_response(await _job_json(context, record))


async def _read_upload(part, shown: str) -> bytes:
    """One uploaded file, read in chunks and refused (naming it as `shown`) once past the upload limit."""
    data = bytearray()
    while chunk := await part.read_chunk(256 * 1024):
        data += chunk
        if len(data) > images.MAX_BYTES:
            try:
                images.check_size(len(data))
            except images.ImageDecodeError as error:
                raise UserError(f"{shown} {error}") from None
    return bytes(data)


async def _read_mask_form(request: web.Request) -> tuple[bytes, str | None]:
    """multipart/form-data: `mask` (the PNG) and `prompt` (the Remix edit; absent: the image's own)."""
    if not request.content_type.startswith("multipart/"):
        raise UserError("Send the mask as a form (multipart/form-data).")
    mask, prompt = None, None
    async for part in await request.multipart():
        if part.name == "mask":
            mask = await _read_upload(part, "The mask")
        elif part.name == "prompt":
            prompt = (await part.text())[:MAX_PROMPT_CHARS].strip()
    if mask is None:
        raise UserError("Draw over the part of the image to redraw first: the form had no mask.")
    return mask, prompt


def drawn_mask(data: bytes, width: int, height: int) -> bytes:
    """A member's mask, checked (a PNG, engine.images' limits, the image's size, 1-90% of it
    painted) and binarised: white (>= 128) redraws, black keeps. UserError says what is wrong."""
    if not data.startswith(PNG_SIGNATURE):
        raise UserError("The mask must be a PNG image: white where the image is redrawn, black elsewhere.")
    try:
        decoded = images.decode_image(data)
    except images.ImageDecodeError as error:
        raise UserError(f"The mask {error}") from None
    if decoded.size != (width, height):
        raise UserError(f"The mask is {decoded.width}×{decoded.height}; it must be the image's size, {width}×{height}.")
    painted = np.asarray(decoded.convert("L")) >= 128
    cover = float(painted.mean())
    if cover < MASK_COVER[0]:
        raise UserError(f"The mask covers {cover:.1%} of the image: paint over at least {MASK_COVER[0]:.0%} of it, "
                        "the part to redraw.")
    if cover > MASK_COVER[1]:
        raise UserError(f"The mask covers {cover:.0%} of the image: leave at least {1 - MASK_COVER[1]:.0%} unpainted "
                        "(to redraw all of it, use Vary (Strong) in Discord).")
    out = io.BytesIO()
    Image.fromarray(painted.astype(np.uint8) * 255, "L").save(out, format="PNG")
    return out.getvalue()


async def _queue_web_job(context: WebContext, prepared: generation.Prepared, image: gallery.Shown) -> db_jobs.JobRecord:
    """Queue a job from the web for the server and channel its source image came from: the
    limits and quota that Discord's generation.start checks, in the transaction that records it.
    The web has no age gate, so the server's content filter blocks as in an ordinary channel."""
    source = await db_jobs.get_job(context.db, image.job_id)
    channel_id = source.channel_id if source else None
    user_id = prepared.job.user_id
    rules = await members.get_guild(context.db, image.guild_id)
    job = prepared.job.model_copy(
        update={"nsfw_threshold": safety.input_threshold(rules.nsfw_policy, rules.nsfw_threshold, False)}
    )
    roles = await store.roles_of(context.db, user_id, image.guild_id)  # as the bot last saw them in Discord
    async with transaction(context.db):
        await generation.check_limits(context, user_id, image.guild_id, channel_id, roles=roles,
                                      images=prepared.images)
        await members.ensure_user(context.db, user_id)
        await db_jobs.insert_job(
            context.db, id=job.id, kind=job.kind, user_id=user_id, guild_id=image.guild_id, channel_id=channel_id,
            prompt=prepared.prompt, parent_image_id=prepared.parent_image_id, images=prepared.images,
            # web: no Discord message to edit (bot/delivery.py stores the result and edits nothing)
            request={**prepared.info, "preset": job.preset, "age_restricted": False, "web": True},
        )
        await db_jobs.update_job(context.db, job.id, message_id=0)  # the job pump follows jobs with a message
    try:
        await context.queue.submit(job)
    except Exception:
        await db_jobs.update_job(context.db, job.id, state=JobState.CANCELLED, delivered_at=0)
        raise
    return await db_jobs.get_job(context.db, job.id)


async def job_state(request: web.Request) -> web.Response:
    """A web job of the member's, for the page that queued it: state, queue position, the images once done."""
    context, session = _context(request), _session(request)
    record = await db_jobs.get_job(context.db, request.match_info["job_id"])
    if record is None or record.user_id != session.user_id or not record.request.get("web") or record.kind == MOODBOARD_KIND:
        return _json_error("No such job.", 404)
    return web.json_response(await _job_json(context, record))


async def delete_job(request: web.Request) -> web.Response:
    """The member deletes one of their jobs from its image page, as /delete does in Discord
    (the upkeep cog clears its Discord message within a minute)."""
    context, session = _context(request), _session(request)
    record = await db_jobs.get_job(context.db, request.match_info["job_id"])
    if record is None or record.user_id != session.user_id or record.deleted_at is not None:
        return _json_error("No such job of yours.", 404)
    if not record.state.terminal:
        return _json_error("This job is still going: cancel it first.", 409)
    images = await retention.delete(context.db, record.id)
    log.info("web: user %s deleted job %s (%d images)", session.user_id, record.id, images)
    return web.json_response({"deleted": record.id, "images": images})


async def _job_json(context: WebContext, record: db_jobs.JobRecord) -> dict:
    shown = []
    if record.state is JobState.DONE and record.guild_id is not None:  # what the gallery shows: not what the filter flagged
        for stored in await db_jobs.images_of(context.db, record.id):
            if await gallery.get_visible(context.db, record.user_id, [record.guild_id], stored.id) is not None:
                shown.append({"id": stored.id, "src": thumbnails.image_url(stored.id, stored.path, thumbnails.SMALL),
                              "full": f"/img/{stored.id}", "href": f"/image/{stored.id}",
                              "video": f"/video/{stored.id}" if stored.video else None})
    withheld = len(record.request.get("nsfw", {}).get("withheld", ()))
    return {
        "id": record.id, "state": record.state.value, "percent": record.percent,
        "position": await context.queue.position(record.id) if record.state is JobState.QUEUED else None,
        "images": shown, "withheld": withheld, "error": record.error,
    }


# -- profile -----------------------------------------------------------------------


async def profile_page(request: web.Request) -> web.Response:
    context, session = _context(request), _session(request)
    status = await profiles.status(context.db, session.user_id, context.settings.unlock_votes)
    codes = await profiles.list_codes(context.db, session.user_id)
    toward, away = await gallery.taste_pictures(context.db, session.user_id)
    boards = await _moodboard_jobs(context, session.user_id)
    return render(request, "profile.html", title="Profile", profile=status, codes=codes, toward=toward, away=away,
                  boards=boards, max_images=MAX_MOODBOARD_IMAGES, kinds=images.KINDS,
                  max_mb=images.MAX_BYTES // 2**20, accept=",".join(images.CONTENT_TYPES))


async def set_code_visibility(request: web.Request) -> web.Response:
    context, session = _context(request), _session(request)
    try:
        public = bool((await request.json())["public"])
    except (ValueError, KeyError, TypeError):
        return _json_error("Send {\"public\": true} or {\"public\": false}.")
    try:
        await profiles.set_public(context.db, session.user_id, request.match_info["code"], public)
    except profiles.TasteError as error:
        return _json_error(str(error), 404)
    return web.json_response({"code": request.match_info["code"], "public": public})


async def _moodboard_jobs(context: WebContext, user_id: int) -> list[dict]:
    rows = await context.db.execute_fetchall(
        "SELECT id FROM jobs WHERE user_id = ? AND kind = ? ORDER BY created_at DESC LIMIT 10", (user_id, MOODBOARD_KIND)
    )
    return [_board(await db_jobs.get_job(context.db, row[0])) for row in rows]


def _board(record: db_jobs.JobRecord) -> dict:
    return {
        "id": record.id, "state": record.state.value, "images": record.request.get("images", 0),
        "code": record.request.get("code"), "error": record.request.get("error") or record.error,
        "created_at": record.created_at,
    }


async def create_moodboard(request: web.Request) -> web.Response:
    """Up to ten uploads -> one EMBED job, with the checks Discord's /moodboard
    create makes: type and size first, then engine.images decodes and re-encodes
    each one; nothing is queued if any fails."""
    context, session = _context(request), _session(request)
    try:
        uploads = await _read_uploads(request)
        if not uploads:
            raise UserError("Choose at least one image.")
        for name, content_type, data in uploads:
            if content_type not in images.CONTENT_TYPES:
                raise UserError(f"`{name}` is not an image ({content_type or 'unknown type'}): a moodboard takes {images.KINDS} images.")
        preset = await _moodboard_preset(context)
        await generation.check_limits(context, session.user_id, None, None)
        pngs = []
        for name, _, data in uploads:
            try:
                pngs.append(await asyncio.to_thread(images.reencode, data))
            except images.ImageDecodeError as error:
                raise UserError(f"`{name}` {error}") from None
    except (UserError, profiles.TasteError) as error:
        return _json_error(f"{error} Nothing was queued.")
    n = len(pngs)
    job = Job(kind=JobKind.EMBED, preset=preset, user_id=session.user_id, guild_id=None, embed=EmbedSpec(images=pngs))
    async with transaction(context.db):
        await members.ensure_user(context.db, session.user_id)
        await db_jobs.insert_job(
            context.db, id=job.id, kind=MOODBOARD_KIND, user_id=session.user_id, guild_id=None, channel_id=None,
            prompt=f"moodboard: {n} image{'s' if n != 1 else ''}",
            request={"images": n, "preset": preset, "web": True},  # web: no Discord message to edit (bot/delivery.py)
        )
        # Message 0, no such message: the job pump follows it (it follows jobs that have a
        # message) and, seeing "web", stores the result and edits nothing.
        await db_jobs.update_job(context.db, job.id, message_id=0)
    await context.queue.submit(job)
    log.info("web moodboard job %s queued for user %s (%d images)", job.id, session.user_id, n)
    return web.json_response(_board(await db_jobs.get_job(context.db, job.id)))


async def _read_uploads(request: web.Request) -> list[tuple[str, str, bytes]]:
    if not request.content_type.startswith("multipart/"):
        raise UserError("Upload the images as a form (multipart/form-data).")
    uploads = []
    reader = await request.multipart()
    async for part in reader:
        if part.name != "images" or not part.filename:
            continue
        if len(uploads) == MAX_MOODBOARD_IMAGES:
            raise UserError(f"A moodboard takes at most {MAX_MOODBOARD_IMAGES} images.")
        name = part.filename.replace("`", "'")[:80]
        data = await _read_upload(part, f"`{name}`")
        content_type = (part.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        uploads.append((name, content_type, data))
    return uploads


async def _moodboard_preset(context: WebContext) -> str:
    """The model whose OpenCLIP made the current rank pool: moodboards are read in its space."""
    found = await profiles.current_basis(context.db)
    if found is None:
        raise UserError(f"Moodboards need a rank pool to be read against, and there is none yet. {profiles.NO_POOL_MESSAGE}")
    basis, preset = found
    for name in (preset, context.settings.model):
        if name in PRESETS and PRESETS[name].embed_dim == basis.d:
            return name
    raise UserError("The rank pool was built with an image model this bot no longer runs, so moodboards can't be read against it.")


async def moodboard_state(request: web.Request) -> web.Response:
    context, session = _context(request), _session(request)
    record = await db_jobs.get_job(context.db, request.match_info["job_id"])
    if record is None or record.user_id != session.user_id or record.kind != MOODBOARD_KIND:
        return _json_error("No such moodboard.", 404)
    return web.json_response(_board(record))


# -- image files: by id only, never a path from the request --------------------------


async def image_file(request: web.Request) -> web.StreamResponse:
    """The full-size original; ?download=1 asks the browser to save it."""
    return await _original(request, "path", "png", "image/png")


async def video_file(request: web.Request) -> web.StreamResponse:
    """A clip's MP4 (byte ranges served, so a browser can seek and loop it); ?download=1 saves it."""
    return await _original(request, "video", "mp4", "video/mp4")


async def _original(request: web.Request, field: str, ext: str, content_type: str) -> web.StreamResponse:
    image = await _requested_image(request)
    relative = getattr(image, field, None)
    if relative is None:
        raise web.HTTPNotFound()
    headers = {"Content-Type": content_type}
    if request.query.get("download") == "1":
        headers["Content-Disposition"] = f'attachment; filename="tastemaker-{image.job_id[:8]}-{image.idx}.{ext}"'
    return _file(_context(request), relative, headers)


async def pool_image_file(request: web.Request) -> web.StreamResponse:
    context = _context(request)
    image_id = ids.row_id(request.match_info["image_id"])
    return _file(context, await gallery.pool_image_path(context.db, image_id) if image_id is not None else None)


async def image_thumbnail(request: web.Request) -> web.StreamResponse:
    image = await _requested_image(request)
    return await _thumbnail(request, image.path if image is not None else None)


async def pool_thumbnail(request: web.Request) -> web.StreamResponse:
    image_id = ids.row_id(request.match_info["image_id"])
    path = await gallery.pool_image_path(_context(request).db, image_id) if image_id is not None else None
    return await _thumbnail(request, path)


async def _thumbnail(request: web.Request, relative: str | None) -> web.StreamResponse:
    """A WebP thumbnail, made on first request. Its URL names one picture forever
    (the version is its original's path), so browsers keep it without asking again;
    the ETag (mtime and size: a strong one) answers a revalidation with 304."""
    if relative is None or request.match_info["version"] != thumbnails.version(relative):
        raise web.HTTPNotFound()
    path = await _context(request).thumbnails.get(relative, int(request.match_info["size"]))
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "private, max-age=31536000, immutable",
                                           "Content-Type": "image/webp"})


def _file(context: WebContext, relative: str | None, headers: dict[str, str] | None = None) -> web.StreamResponse:
    """A stored file under the data dir (its path comes from the database)."""
    if relative is None:
        raise web.HTTPNotFound()
    root = Path(context.settings.data_dir).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise web.HTTPNotFound()
    # Ids never change what they name: the browser may keep it (privately) for a day.
    return web.FileResponse(path, headers={"Cache-Control": "private, max-age=86400", "Content-Type": "image/png",
                                           **(headers or {})})
