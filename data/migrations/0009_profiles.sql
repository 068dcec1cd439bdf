-- Taste from everything members do (issue 12): several profiles per member,
-- signals from use, a default mix, a server's house taste.

-- A member's named profiles, as Midjourney V7 has: 'main' (votes from /rank,
-- likes and signals from use) made on first need, others ranked on purpose
-- (/rank profile:), moodboards and style tunes. A code is one version of one
-- profile. A deleted profile leaves the list but its codes keep working.
CREATE TABLE profiles (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('votes', 'moodboard', 'tune')),
    public         INTEGER NOT NULL DEFAULT 1, -- what its new versions start as
    default_weight REAL,                       -- mixed into a bare --p with this weight; NULL: not a default
    created_at     REAL NOT NULL,
    deleted_at     REAL
);
CREATE UNIQUE INDEX profiles_owner_name ON profiles(user_id, name COLLATE NOCASE) WHERE deleted_at IS NULL;

-- Every member with taste data gets their main profile, private if they chose so.
INSERT INTO profiles (user_id, name, kind, public, created_at)
SELECT u.user_id, 'main', 'votes',
       COALESCE((SELECT public FROM profile_privacy p WHERE p.user_id = u.user_id AND p.kind = 'votes'), 1),
       CAST(strftime('%s', 'now') AS REAL)
FROM (SELECT user_id FROM rank_pairs UNION SELECT user_id FROM likes
      UNION SELECT user_id FROM profile_versions WHERE kind = 'votes' UNION SELECT user_id FROM profile_privacy) u;

-- Each moodboard was a version of one shared 'moodboard' profile; now each is its own.
INSERT INTO profiles (user_id, name, kind, public, created_at)
SELECT user_id, 'moodboard ' || version, 'moodboard', public, created_at FROM profile_versions WHERE kind = 'moodboard';

ALTER TABLE profile_versions ADD COLUMN profile_id INTEGER REFERENCES profiles(id);
-- signals: the signals from use a version was fitted on.
ALTER TABLE profile_versions ADD COLUMN signals INTEGER NOT NULL DEFAULT 0;
UPDATE profile_versions SET profile_id = (
    SELECT id FROM profiles p WHERE p.user_id = profile_versions.user_id AND p.name = 'main') WHERE kind = 'votes';
UPDATE profile_versions SET profile_id = (
    SELECT id FROM profiles p WHERE p.user_id = profile_versions.user_id
    AND p.name = 'moodboard ' || profile_versions.version) WHERE kind = 'moodboard';
UPDATE profile_versions SET version = 1 WHERE kind = 'moodboard';
CREATE INDEX profile_versions_profile ON profile_versions(profile_id, version);

-- A /rank vote teaches one profile (the main one unless /rank profile: names another).
ALTER TABLE rank_pairs ADD COLUMN profile_id INTEGER REFERENCES profiles(id);
UPDATE rank_pairs SET profile_id = (SELECT id FROM profiles p WHERE p.user_id = rank_pairs.user_id AND p.name = 'main');
CREATE INDEX rank_pairs_profile ON rank_pairs(profile_id, choice);

DROP TABLE profile_privacy;

-- Signals from use: a U or V click chose one image of the member's own grid
-- over the other three; a 🔄 reroll weakly rejected all four in favour of the
-- grid it drew. They teach the main profile (engine/taste.py use_comparisons),
-- unless the member turned learning from use off.
CREATE TABLE use_signals (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('upscale', 'vary', 'reroll')),
    grid_job_id TEXT NOT NULL REFERENCES jobs(id),
    image_id    INTEGER REFERENCES images(id),  -- upscale, vary: the chosen image of the grid
    next_job_id TEXT REFERENCES jobs(id),       -- reroll: the grid it drew
    created_at  REAL NOT NULL
);
CREATE UNIQUE INDEX use_signals_once ON use_signals(user_id, kind, grid_job_id, COALESCE(image_id, 0));

ALTER TABLE user_settings ADD COLUMN learn_from_use INTEGER NOT NULL DEFAULT 1;

-- A server's house taste: a code mixed into every prompt at a weight the owner sets.
-- house_taste is a code or 'server'; house_taste_owner set it, so their private code may serve.
ALTER TABLE guild_settings ADD COLUMN house_taste TEXT;
ALTER TABLE guild_settings ADD COLUMN house_taste_weight REAL NOT NULL DEFAULT 0.25;
ALTER TABLE guild_settings ADD COLUMN house_taste_owner INTEGER;

-- A 🔄 whose prompt (a Remix edit) makes several jobs asks first: the question keeps
-- the grid it rerolls, so the first job queued on Yes records the reroll as a signal from use.
ALTER TABLE pending_prompts ADD COLUMN reroll_of TEXT;
