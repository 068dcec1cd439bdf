"""What every page and handler shares: the borrowed resources (WebContext),
the session on the request, and rendering a template."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite
import jinja2
from aiohttp import web

from bot.config import Settings
from bot.web import auth, thumbnails
from engine.queue import JobQueue

@dataclass
class WebContext:
    """What the handlers borrow. It has the bot's `db` and `settings`, which is all
    that the shared checks (bot.generation.check_limits) read from a bot."""

    settings: Settings
    db: aiosqlite.Connection
    queue: JobQueue
    secret: bytes
    templates: jinja2.Environment
    votes: auth.RateLimit = field(default_factory=lambda: auth.RateLimit(rate=4.0, burst=8))
    likes: auth.RateLimit = field(default_factory=lambda: auth.RateLimit(rate=0.5, burst=20))
    jobs: auth.RateLimit = field(default_factory=lambda: auth.RateLimit(rate=0.2, burst=10))  # GPU work: Vary (Region)
    thumbnails: thumbnails.Thumbnails = field(init=False)

    def __post_init__(self) -> None:
        self.thumbnails = thumbnails.Thumbnails(self.settings.data_dir)

    @property
    def secure_cookies(self) -> bool:
        return self.settings.web_base_url.startswith("https://")


CONTEXT = web.AppKey("context", WebContext)
SESSION = web.RequestKey("session", object)  # the store.Session, or None


def render(request: web.Request, template: str, *, status: int = 200, **values) -> web.Response:
    context = request.app[CONTEXT]
    session = request.get(SESSION)
    page = context.templates.get_template(template).render(
        session=session, csrf=session.csrf if session else "", path=request.path,
        oauth=bool(context.settings.discord_client_id and context.settings.discord_client_secret), **values,
    )
    return web.Response(text=page, content_type="text/html", status=status)


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["ago"] = _ago
    env.filters["plural"] = plural
    # Thumbnail URLs of a gallery image (anything with id and path) and of a rank-pool image.
    env.globals["thumb"] = lambda image, size=thumbnails.SMALL: thumbnails.image_url(image.id, image.path, size)
    env.globals["pool_thumb"] = lambda image, size=thumbnails.SMALL: thumbnails.pool_url(image.id, image.path, size)
    env.globals["SMALL"], env.globals["LARGE"] = thumbnails.SMALL, thumbnails.LARGE
    return env


def plural(n: int, word: str) -> str:
    """`1 like`, `2 likes`: a count with its word (a regular plural)."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _ago(at: float) -> str:
    seconds = max(0, int(time.time() - at))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return "just now"
