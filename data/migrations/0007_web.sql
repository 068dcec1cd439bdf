-- The web companion: login links and sessions (issue 11).

-- The servers each member shares with the bot, as far as the bot can know
-- without the members intent: recorded when they use a command there (source
-- 'command') or from Discord OAuth2's guilds scope (source 'oauth').
CREATE TABLE web_members (
    user_id    INTEGER NOT NULL,
    guild_id   INTEGER NOT NULL,
    user_name  TEXT NOT NULL DEFAULT '',
    guild_name TEXT NOT NULL DEFAULT '',
    source     TEXT NOT NULL DEFAULT 'command' CHECK (source IN ('command', 'oauth')),
    seen_at    REAL NOT NULL,
    PRIMARY KEY (user_id, guild_id)
);
CREATE INDEX web_members_guild ON web_members(guild_id);

-- /web login links: single use, short-lived. The link carries the nonce and an
-- HMAC of it; only the nonce's hash is stored.
CREATE TABLE web_logins (
    nonce_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    user_name  TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at    REAL
);

-- Browser sessions: the cookie holds a random id, the table its hash.
CREATE TABLE web_sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    user_name  TEXT NOT NULL DEFAULT '',
    csrf       TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions(user_id);
