"""Who is asking: /web login links, sessions, CSRF tokens and rate limits.

- A login link is `/login?t=NONCE.SIG`: a random nonce and its HMAC under the
  web secret. Only the nonce's hash is stored; the link works once, within
  LINK_TTL_S.
- A session is a random id in an HttpOnly, SameSite=Lax cookie (Secure behind
  https); the table keeps its hash, the member and the session's CSRF token.
- Votes and likes are rate limited per member (token buckets in memory: one
  bot process serves the web).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

import aiosqlite

from engine.db import members
from engine.db import web as store

LINK_TTL_S = 600  # /web links: 10 minutes, single use
SESSION_TTL_S = 7 * 86400
COOKIE = "tm_session"
SECRET_META_KEY = "web_secret"


async def load_secret(db: aiosqlite.Connection, configured: str | None) -> bytes:
    """TASTEMAKER_WEB_SECRET, or one generated at first start and kept in the
    database (never logged)."""
    if configured:
        return configured.encode()
    found = await members.get_meta(db, SECRET_META_KEY)
    if found is None:
        found = secrets.token_hex(32)
        await members.set_meta(db, SECRET_META_KEY, found)
    return found.encode()


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _sign(secret: bytes, nonce: str) -> str:
    mac = hmac.new(secret, f"login:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


async def create_login_token(
    db: aiosqlite.Connection, secret: bytes, user_id: int, user_name: str, ttl_s: float = LINK_TTL_S
) -> str:
    nonce = secrets.token_urlsafe(24)
    await store.insert_login(db, _hash(nonce), user_id, user_name, time.time() + ttl_s)
    return f"{nonce}.{_sign(secret, nonce)}"


async def use_login_token(db: aiosqlite.Connection, secret: bytes, token: str) -> tuple[int, str] | None:
    """(user id, name) for a valid, unused, unexpired token; it is spent now."""
    nonce, _, signature = token.partition(".")
    if not nonce or not hmac.compare_digest(signature.encode(), _sign(secret, nonce).encode()):
        return None
    return await store.use_login(db, _hash(nonce), time.time())


async def create_session(db: aiosqlite.Connection, user_id: int, user_name: str) -> str:
    """A new session; returns the cookie value."""
    session_id = secrets.token_urlsafe(32)
    await store.insert_session(db, _hash(session_id), user_id, user_name, secrets.token_urlsafe(24), time.time() + SESSION_TTL_S)
    return session_id


async def session_for(db: aiosqlite.Connection, cookie: str | None) -> store.Session | None:
    if not cookie or len(cookie) > 100:
        return None
    return await store.get_session(db, _hash(cookie), time.time())


async def end_session(db: aiosqlite.Connection, cookie: str) -> None:
    await store.delete_session(db, _hash(cookie))


def csrf_ok(session: store.Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(sent.encode(), session.csrf.encode())


@dataclass
class RateLimit:
    """A token bucket per key: `rate` per second, bursts of `burst`."""

    rate: float
    burst: float
    _buckets: dict[object, tuple[float, float]] = field(default_factory=dict)

    def allow(self, key: object) -> bool:
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > 10_000:  # forget idle members
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
        return True
