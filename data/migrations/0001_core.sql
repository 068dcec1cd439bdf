-- Members, their settings, guild settings, the bot's record of each job, images.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,          -- Discord user id
    created_at  REAL NOT NULL,
    images_made INTEGER NOT NULL DEFAULT 0,
    gpu_seconds REAL NOT NULL DEFAULT 0
);

CREATE TABLE user_settings (
    user_id     INTEGER PRIMARY KEY REFERENCES users(id),
    personalize INTEGER NOT NULL DEFAULT 0,   -- add --p to every prompt
    stylize     INTEGER NOT NULL DEFAULT 100, -- default --s
    remix       INTEGER NOT NULL DEFAULT 0,   -- V and reroll open an edit modal
    auto_dm     INTEGER NOT NULL DEFAULT 0,   -- DM finished grids
    suffix      TEXT NOT NULL DEFAULT ''      -- appended to every prompt
);

CREATE TABLE user_options (                   -- /prefer option set NAME VALUE -> --NAME
    user_id INTEGER NOT NULL REFERENCES users(id),
    name    TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
);

CREATE TABLE guild_settings (
    guild_id          INTEGER PRIMARY KEY,
    allowed_channels  TEXT NOT NULL DEFAULT '[]', -- JSON list of channel ids; empty = all
    max_jobs_per_user INTEGER,                    -- NULL = TASTEMAKER_MAX_JOBS_PER_USER
    max_jobs          INTEGER,                    -- the whole server's queued + running; NULL = no cap
    banned_words      TEXT NOT NULL DEFAULT '[]'  -- JSON list
);

-- The bot's side of each job: who asked, where to post, what happened.
-- The queue backend keeps its own rows; this table survives either backend.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    user_id         INTEGER NOT NULL REFERENCES users(id),
    guild_id        INTEGER,
    channel_id      INTEGER,
    message_id      INTEGER,                  -- the message that shows progress and the result
    prompt          TEXT NOT NULL,            -- as shown to the member
    request         TEXT NOT NULL,            -- the parsed request (JSON) for rerolls and remix
    parent_image_id INTEGER REFERENCES images(id),
    state           TEXT NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    cursor          TEXT NOT NULL DEFAULT '', -- last queue event handled
    percent         REAL,
    error           TEXT,
    gpu_seconds     REAL,
    created_at      REAL NOT NULL,
    started_at      REAL,
    finished_at     REAL,
    delivered_at    REAL                      -- the final Discord edit went through
);
CREATE INDEX jobs_undelivered ON jobs(delivered_at) WHERE delivered_at IS NULL;
CREATE INDEX jobs_user_state ON jobs(user_id, state);

CREATE TABLE images (
    id         INTEGER PRIMARY KEY,
    job_id     TEXT NOT NULL REFERENCES jobs(id),
    idx        INTEGER NOT NULL,              -- 1..4 in a grid, 1 for a single image
    user_id    INTEGER NOT NULL,
    path       TEXT NOT NULL,                 -- relative to TASTEMAKER_DATA_DIR
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    seed       INTEGER NOT NULL,
    embedding  BLOB,                          -- float32 OpenCLIP image embedding
    created_at REAL NOT NULL,
    UNIQUE (job_id, idx)
);
