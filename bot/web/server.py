"""The web companion's aiohttp.web application, in the bot process.

It runs on the bot's event loop and borrows its database connection and
queue client (bot/resources.py opens it after them and closes it before).
Every request passes three middlewares, in order:

1. security headers on every answer (a Content-Security-Policy with no inline
   script, no framing, no referrer: login links carry a token);
2. the session: every route but the public ones needs one (401 otherwise);
3. CSRF: every POST carries the session's token (403 otherwise).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
from aiohttp import web

from bot.config import Settings
from bot.web import auth, routes
from bot.web.pages import CONTEXT, SESSION, WebContext, render, templates
from engine.queue import JobQueue

log = logging.getLogger("bot.web")

PUBLIC = ("/login", "/signed-out", "/static/", "/auth/discord", "/favicon.ico")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; "
    "font-src 'self'; form-action 'self' https://discord.com; base-uri 'none'; frame-ancestors 'none'"
)
MAX_UPLOAD = 10 * 8 * 1024 * 1024 + 1024 * 1024  # ten images at the decoder's limit, plus the form


def is_public(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) or path.startswith(p + "/") for p in PUBLIC)


def wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/")


@web.middleware
async def security_headers(request: web.Request, handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as error:
        if error.status != 404 or wants_json(request):
            _secure(error.headers)
            raise
        response = render(request, "error.html", status=404, title="Not found",
                          message="There is nothing here, or it belongs to a server you don't share with this bot.")
    except Exception:
        error_id = secrets.token_hex(4)
        log.exception("error %s in %s %s", error_id, request.method, request.path)
        message = f"Sorry, something went wrong on our side (error {error_id}). The server owner can find it in the log."
        if wants_json(request):
            response = web.json_response({"error": message}, status=500)
        else:
            response = render(request, "error.html", status=500, title="Something went wrong", message=message)
    _secure(response.headers)
    return response


def _secure(headers) -> None:
    headers["Content-Security-Policy"] = CSP
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def session_check(request: web.Request, handler) -> web.StreamResponse:
    context = request.app[CONTEXT]
    session = await auth.session_for(context.db, request.cookies.get(auth.COOKIE))
    request[SESSION] = session
    if session is None and not is_public(request.path):
        if wants_json(request):
            raise web.HTTPUnauthorized(text='{"error": "Your session has ended: type /web in Discord for a new link."}',
                                       content_type="application/json")
        return render(request, "signed_out.html", status=401, title="Sign in")
    return await handler(request)


@web.middleware
async def csrf_check(request: web.Request, handler) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.path != "/login":
        session = request[SESSION]
        sent = request.headers.get("X-CSRF-Token")
        if sent is None and request.content_type == "application/x-www-form-urlencoded":
            sent = (await request.post()).get("csrf")
        if session is None or not auth.csrf_ok(session, sent if isinstance(sent, str) else None):
            raise web.HTTPForbidden(text='{"error": "Missing or wrong CSRF token: reload the page."}',
                                    content_type="application/json")
    return await handler(request)


def create_app(context: WebContext) -> web.Application:
    app = web.Application(middlewares=[security_headers, session_check, csrf_check], client_max_size=MAX_UPLOAD)
    app[CONTEXT] = context
    routes.add_routes(app)
    app.router.add_static("/static/", Path(__file__).parent / "static", append_version=True)
    return app


@dataclass
class WebSite:
    runner: web.AppRunner
    url: str
    context: WebContext

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_web(settings: Settings, db: aiosqlite.Connection, queue: JobQueue) -> WebSite | None:
    """Serve the web companion on TASTEMAKER_WEB_HOST:PORT; None when the port is 0
    or taken (the bot runs on without it, and says so)."""
    if settings.web_port == 0:
        return None
    secret = await auth.load_secret(db, settings.web_secret.get_secret_value() if settings.web_secret else None)
    context = WebContext(settings=settings, db=db, queue=queue, secret=secret, templates=templates())
    runner = web.AppRunner(create_app(context), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.web_host, settings.web_port).start()
    except OSError as error:
        await runner.cleanup()
        log.error("web companion off: cannot listen on %s:%s (%s); set TASTEMAKER_WEB_PORT", settings.web_host,
                  settings.web_port, error.strerror or error)
        return None
    log.info("web companion on http://%s:%s (links point to %s)", settings.web_host, settings.web_port,
             settings.web_base_url)
    return WebSite(runner=runner, url=settings.web_base_url, context=context)
