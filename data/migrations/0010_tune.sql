-- /tune (issue 12): Midjourney's Style Tuner. The member's own prompt is drawn
-- in 16 or 32 styles by one POOL job; the member picks from pairs of the
-- renders, and the picks become a 'tune' profile with a code.

-- state: 'drawing' (the job runs), 'picking' (renders stored), 'finishing'
-- (the profile is being made), 'made' (code set), 'failed' (too few renders
-- passed the server's content filter).
CREATE TABLE tunes (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    guild_id   INTEGER,
    job_id     TEXT NOT NULL UNIQUE,
    prompt     TEXT NOT NULL,
    name       TEXT,                          -- the profile name asked for; NULL: "tune N"
    styles     INTEGER NOT NULL CHECK (styles IN (16, 32)),
    state      TEXT NOT NULL DEFAULT 'drawing'
               CHECK (state IN ('drawing', 'picking', 'finishing', 'made', 'failed')),
    code       TEXT,                          -- the profile's code once made
    created_at REAL NOT NULL
);
CREATE INDEX tunes_user ON tunes(user_id);

-- The renders kept (those the server's NSFW policy blocks are dropped), as PNG
-- files under <data dir>/tune/<tune id>/ and raw OpenCLIP embeddings (float32),
-- whitened with the current basis when used.
CREATE TABLE tune_images (
    id        INTEGER PRIMARY KEY,
    tune_id   INTEGER NOT NULL REFERENCES tunes(id) ON DELETE CASCADE,
    style     TEXT NOT NULL,
    path      TEXT NOT NULL,                  -- relative to the data dir
    embedding BLOB NOT NULL,
    nsfw      REAL
);
CREATE INDEX tune_images_tune ON tune_images(tune_id);

-- Each pair shown (its id goes into the buttons) and the member's pick.
CREATE TABLE tune_pairs (
    id          INTEGER PRIMARY KEY,
    tune_id     INTEGER NOT NULL REFERENCES tunes(id) ON DELETE CASCADE,
    left_id     INTEGER NOT NULL REFERENCES tune_images(id),
    right_id    INTEGER NOT NULL REFERENCES tune_images(id),
    choice      TEXT CHECK (choice IN ('left', 'right', 'skip')),
    shown_at    REAL NOT NULL,
    answered_at REAL
);
CREATE INDEX tune_pairs_tune ON tune_pairs(tune_id);
