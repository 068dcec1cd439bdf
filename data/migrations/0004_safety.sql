-- Safety: the NSFW policy of each server (issue 10).

-- block: an image scoring at or over the threshold is never posted (the default);
-- spoiler: it is posted as a spoiler; allow: posted as is in age-restricted
-- channels only (elsewhere, block). nsfw_keep: blocked images are kept on disk
-- under quarantine/ for the owner to review instead of being dropped.
ALTER TABLE guild_settings ADD COLUMN nsfw_policy TEXT NOT NULL DEFAULT 'block'
    CHECK (nsfw_policy IN ('block', 'spoiler', 'allow'));
ALTER TABLE guild_settings ADD COLUMN nsfw_threshold REAL NOT NULL DEFAULT 0.6
    CHECK (nsfw_threshold BETWEEN 0 AND 1);
ALTER TABLE guild_settings ADD COLUMN nsfw_keep INTEGER NOT NULL DEFAULT 0;

-- Each stored image's open_nsfw score (NULL: made before the check existed).
-- A blocked image gets no row at all, so nothing (U/V buttons, likes, taste,
-- explore) can reach it; a spoilered one is stored with its score, and every
-- place that shows it again hides it behind a spoiler.
ALTER TABLE images ADD COLUMN nsfw REAL;
