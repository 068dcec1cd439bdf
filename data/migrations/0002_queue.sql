-- Owned by the SQLite queue backend (engine/queue.py).
-- The bot and its local worker processes share these tables through WAL;
-- every write happens in a BEGIN IMMEDIATE transaction.

CREATE TABLE queue_jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- arrival order (kept across retries)
    id           TEXT NOT NULL UNIQUE,
    user_id      INTEGER NOT NULL,
    guild_key    TEXT NOT NULL,                     -- guild id, or 'dm:<user id>' outside guilds
    round        INTEGER NOT NULL,                  -- fair order (engine/queue.py): the member's round,
    turn         INTEGER NOT NULL,                  -- the guild's turn within it, then seq
    state        TEXT NOT NULL
                 CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    job          TEXT NOT NULL,                     -- Job.to_json()
    tries        INTEGER NOT NULL DEFAULT 0,        -- claims so far
    max_tries    INTEGER NOT NULL,
    worker       TEXT,                              -- holder of the lease while running
    lease_until  REAL,                              -- wall clock (time.time()) while running
    submitted_at REAL NOT NULL,
    queued_at    REAL NOT NULL,                     -- last time it entered the queue
    started_at   REAL,                              -- last claim
    finished_at  REAL                               -- set once terminal
);
CREATE INDEX queue_jobs_order ON queue_jobs(round, turn, seq) WHERE state = 'queued';
CREATE INDEX queue_jobs_member ON queue_jobs(user_id, round) WHERE state = 'queued';
CREATE INDEX queue_jobs_guild ON queue_jobs(guild_key, round) WHERE state = 'queued';
CREATE INDEX queue_jobs_lease ON queue_jobs(lease_until) WHERE state = 'running';
CREATE INDEX queue_jobs_finished ON queue_jobs(finished_at) WHERE finished_at IS NOT NULL;

-- The highest round claimed so far: a member with nothing queued joins the next one.
CREATE TABLE queue_clock (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    round INTEGER NOT NULL
);
INSERT INTO queue_clock VALUES (1, 0);

-- Events up to the bot. The row id is the cursor handed back to read_events.
-- Only the newest progress row of a job is kept; the DONE row carries the result.
CREATE TABLE queue_events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    type   TEXT NOT NULL,
    event  TEXT NOT NULL                            -- JobEvent.to_json() without the cursor
);
CREATE INDEX queue_events_job ON queue_events(job_id, id);
