-- Taste: rank pool, bases, votes, likes, profile versions and codes.
-- Embeddings are stored raw (float32, not normalised) so that votes and likes
-- survive a new basis: they are whitened again under whichever basis is current.

-- One whitening basis per rank-pool build (engine.taste.Basis.to_bytes()).
-- The current basis is the highest version.
CREATE TABLE bases (
    version    INTEGER PRIMARY KEY,
    preset     TEXT NOT NULL,                 -- the model preset whose OpenCLIP made the embeddings
    dim        INTEGER NOT NULL,              -- d, the embedding size
    k          INTEGER NOT NULL,
    images     INTEGER NOT NULL,              -- pool images it was built from
    created_at REAL NOT NULL,
    data       BLOB NOT NULL
);

-- The rank pool: each prompt in several styles, same seed, so a pair differs in style.
CREATE TABLE pool_images (
    id            INTEGER PRIMARY KEY,
    prompt_id     INTEGER NOT NULL,           -- a group: the images of one POOL job
    prompt        TEXT NOT NULL,
    style         TEXT NOT NULL,
    path          TEXT NOT NULL,              -- relative to TASTEMAKER_DATA_DIR
    seed          INTEGER NOT NULL,
    preset        TEXT NOT NULL,
    embedding     BLOB NOT NULL,              -- float32 OpenCLIP image embedding
    basis_version INTEGER,                    -- first basis built with it; NULL until then
    created_at    REAL NOT NULL
);
CREATE INDEX pool_images_group ON pool_images(prompt_id);
CREATE INDEX pool_images_basis ON pool_images(basis_version);

-- Text embeddings of the style words, for /info explanations.
CREATE TABLE style_words (
    word      TEXT NOT NULL,
    preset    TEXT NOT NULL,
    embedding BLOB NOT NULL,                  -- float32 OpenCLIP text embedding
    PRIMARY KEY (word, preset)
);

-- Each pair shown by /rank. Its id is in the buttons' custom_id, so a click
-- after a restart still lands, and a second click on an answered pair is refused.
CREATE TABLE rank_pairs (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL,
    left_id     INTEGER NOT NULL REFERENCES pool_images(id),
    right_id    INTEGER NOT NULL REFERENCES pool_images(id),
    shown_at    REAL NOT NULL,
    choice      TEXT CHECK (choice IS NULL OR choice IN ('left', 'right', 'skip')),
    answered_at REAL
);
CREATE INDEX rank_pairs_user ON rank_pairs(user_id, choice);

-- A like is a weighted win of the image over the others shown beside it: the
-- other images of its grid. grid_image_id is the liked image itself when it is
-- in a grid, or the grid image it came from (an upscale's parent_image_id).
-- Likes on a member's own images are not stored (they would not count).
CREATE TABLE likes (
    user_id       INTEGER NOT NULL,
    image_id      INTEGER NOT NULL REFERENCES images(id),
    grid_image_id INTEGER NOT NULL REFERENCES images(id),
    created_at    REAL NOT NULL,
    PRIMARY KEY (user_id, image_id)
);

-- Immutable snapshots of a profile: a code names one version forever.
-- A votes profile is snapshotted again when its (votes, likes, basis_version)
-- differ from its latest snapshot's.
CREATE TABLE profile_versions (
    code          TEXT PRIMARY KEY,           -- 7 chars [a-z2-7]
    user_id       INTEGER NOT NULL,           -- the owner
    kind          TEXT NOT NULL CHECK (kind IN ('votes', 'moodboard')),
    version       INTEGER NOT NULL,           -- 1, 2, ... per owner and kind
    basis_version INTEGER NOT NULL REFERENCES bases(version),
    w             BLOB NOT NULL,              -- float64 (k,) taste in that basis's whitened space
    votes         INTEGER NOT NULL,
    likes         INTEGER NOT NULL,
    images        INTEGER NOT NULL DEFAULT 0, -- moodboard: how many images it was built from
    confidence    REAL NOT NULL DEFAULT 0,
    public        INTEGER NOT NULL DEFAULT 1,
    created_at    REAL NOT NULL
);
CREATE INDEX profile_versions_owner ON profile_versions(user_id, kind, version);

-- Cache of the community prior (empirical Bayes) per basis; recomputed when stale.
CREATE TABLE community_priors (
    basis_version INTEGER PRIMARY KEY REFERENCES bases(version),
    members       INTEGER NOT NULL,           -- members whose data it was fitted on
    observations  INTEGER NOT NULL,           -- community votes + likes at that time
    data          BLOB NOT NULL,              -- npz: mean (k,), cov (k, k)
    created_at    REAL NOT NULL
);
