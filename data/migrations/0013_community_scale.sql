-- Issue 21: a year of a big community (10k members, 500k images, millions of votes).
-- Counts kept by triggers, so no command or page counts millions of rows; indexes for
-- the gallery and for deleting a job; deleted jobs and retention.

-- Deleting a job touches the rows that point at its images (engine/db/retention.py).
CREATE INDEX likes_image ON likes(image_id);
CREATE INDEX likes_grid ON likes(grid_image_id);
CREATE INDEX use_signals_grid ON use_signals(grid_job_id);
CREATE INDEX use_signals_next ON use_signals(next_job_id) WHERE next_job_id IS NOT NULL;
CREATE INDEX jobs_parent ON jobs(parent_image_id) WHERE parent_image_id IS NOT NULL;

-- Each image's likes, for Explore's "most liked" without a COUNT per image.
CREATE TABLE image_likes (
    image_id INTEGER PRIMARY KEY,
    guild_id INTEGER,                         -- its job's server (NULL: a DM job, in no gallery)
    likes    INTEGER NOT NULL
);
INSERT INTO image_likes (image_id, guild_id, likes)
SELECT l.image_id, j.guild_id, COUNT(*) FROM likes l JOIN images i ON i.id = l.image_id JOIN jobs j ON j.id = i.job_id
GROUP BY l.image_id;
CREATE INDEX image_likes_top ON image_likes(guild_id, likes DESC, image_id DESC) WHERE likes > 0;

CREATE TRIGGER image_likes_up AFTER INSERT ON likes BEGIN
    INSERT INTO image_likes (image_id, guild_id, likes)
    VALUES (NEW.image_id, (SELECT j.guild_id FROM images i JOIN jobs j ON j.id = i.job_id WHERE i.id = NEW.image_id), 1)
    ON CONFLICT (image_id) DO UPDATE SET likes = likes + 1;
END;
CREATE TRIGGER image_likes_down AFTER DELETE ON likes BEGIN
    UPDATE image_likes SET likes = likes - 1 WHERE image_id = OLD.image_id;
END;

-- What the community prior is fitted on, per member: votes into main profiles, likes,
-- signals from use (the community prior's staleness check reads one row, not 3M).
CREATE TABLE taste_counts (
    user_id INTEGER PRIMARY KEY,
    votes   INTEGER NOT NULL DEFAULT 0,
    likes   INTEGER NOT NULL DEFAULT 0,
    signals INTEGER NOT NULL DEFAULT 0
);
INSERT INTO taste_counts (user_id, votes, likes, signals)
SELECT user_id, SUM(v), SUM(l), SUM(s) FROM (
    SELECT r.user_id, 1 AS v, 0 AS l, 0 AS s FROM rank_pairs r JOIN profiles p ON p.id = r.profile_id
    WHERE r.choice IN ('left', 'right') AND p.name = 'main'
    UNION ALL SELECT user_id, 0, 1, 0 FROM likes
    UNION ALL SELECT user_id, 0, 0, 1 FROM use_signals
) GROUP BY user_id;

-- Their sums (one row): members with any, and observations in all.
CREATE TABLE taste_totals (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    members      INTEGER NOT NULL,
    observations INTEGER NOT NULL
);
INSERT INTO taste_totals (id, members, observations)
SELECT 1, COUNT(*), COALESCE(SUM(votes + likes + signals), 0) FROM taste_counts WHERE votes + likes + signals > 0;
CREATE TRIGGER taste_totals_new AFTER INSERT ON taste_counts BEGIN
    UPDATE taste_totals SET members = members + (NEW.votes + NEW.likes + NEW.signals > 0),
        observations = observations + NEW.votes + NEW.likes + NEW.signals;
END;
CREATE TRIGGER taste_totals_change AFTER UPDATE ON taste_counts BEGIN
    UPDATE taste_totals SET
        members = members + (NEW.votes + NEW.likes + NEW.signals > 0) - (OLD.votes + OLD.likes + OLD.signals > 0),
        observations = observations + (NEW.votes + NEW.likes + NEW.signals) - (OLD.votes + OLD.likes + OLD.signals);
END;

CREATE TRIGGER taste_counts_vote AFTER UPDATE OF choice ON rank_pairs
WHEN OLD.choice IS NULL AND NEW.choice IN ('left', 'right')
     AND (SELECT name FROM profiles WHERE id = NEW.profile_id) = 'main' BEGIN
    INSERT INTO taste_counts (user_id, votes) VALUES (NEW.user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET votes = votes + 1;
END;
CREATE TRIGGER taste_counts_like AFTER INSERT ON likes BEGIN
    INSERT INTO taste_counts (user_id, likes) VALUES (NEW.user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET likes = likes + 1;
END;
CREATE TRIGGER taste_counts_unlike AFTER DELETE ON likes BEGIN
    UPDATE taste_counts SET likes = likes - 1 WHERE user_id = OLD.user_id;
END;
CREATE TRIGGER taste_counts_signal AFTER INSERT ON use_signals BEGIN
    INSERT INTO taste_counts (user_id, signals) VALUES (NEW.user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET signals = signals + 1;
END;
CREATE TRIGGER taste_counts_unsignal AFTER DELETE ON use_signals BEGIN
    UPDATE taste_counts SET signals = signals - 1 WHERE user_id = OLD.user_id;
END;

-- A job its member deleted (/delete, the web): its images leave every gallery, like and
-- taste at once; their rows and files go once the server's retention has passed (purged_at:
-- its images, uploads and prompt are gone).
ALTER TABLE jobs ADD COLUMN deleted_at REAL;
ALTER TABLE jobs ADD COLUMN purged_at REAL;
CREATE INDEX jobs_deleted ON jobs(deleted_at) WHERE deleted_at IS NOT NULL AND purged_at IS NULL;
-- Deleted jobs whose Discord message still shows them (bot/retention.py scrub_deleted, every
-- minute): its WHERE repeats the query's so SQLite uses it; purged jobs may still be waiting.
CREATE INDEX jobs_unscrubbed ON jobs(deleted_at)
    WHERE deleted_at IS NOT NULL AND message_id IS NOT NULL AND message_id != 0;

-- Explore's "newest": a server's finished jobs, newest first; their images with the content
-- filter's score, read from the index (in the table it sits after the 4 KB embedding).
CREATE INDEX jobs_gallery ON jobs(guild_id, finished_at DESC) WHERE state = 'done' AND deleted_at IS NULL;
CREATE INDEX images_gallery ON images(job_id, idx, nsfw);

-- Days a deleted job's images, or a departed member's, are kept (/admin retention);
-- NULL: the bot's TASTEMAKER_RETENTION_DAYS.
ALTER TABLE guild_settings ADD COLUMN retention_days INTEGER CHECK (retention_days BETWEEN 0 AND 3650);

-- Members who left a server (user_id 0: the bot itself was removed from it). Their jobs
-- there are purged once the retention has passed; coming back before that cancels it.
CREATE TABLE departures (
    guild_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    departed_at REAL NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

-- Each image's whitened embedding z on the current basis (k float32): likes, signals,
-- For you and "more like this" read k numbers instead of the raw 1024, and whiten
-- nothing again. Filled in the background (bot/cogs/upkeep.py), or when first needed.
CREATE TABLE image_taste (
    image_id      INTEGER PRIMARY KEY,
    basis_version INTEGER NOT NULL,
    z             BLOB NOT NULL
);

-- A big profile's latest exact fit (a year of votes, likes and use: thousands of comparisons),
-- so its next vote, even in a new process, takes only the votes answered since
-- (engine/profiles.py _posterior). Its mean and precision are float64.
CREATE TABLE taste_fits (
    profile_id    INTEGER PRIMARY KEY,
    basis_version INTEGER NOT NULL,
    prior_made    REAL NOT NULL,              -- the community prior it was fitted under (created_at; 0: none)
    use_key       TEXT NOT NULL,              -- the member's likes and signals when fitted
    votes         INTEGER NOT NULL,
    voted_through REAL NOT NULL,              -- the latest answered_at among them
    observations  INTEGER NOT NULL,
    mean          BLOB NOT NULL,
    precision     BLOB NOT NULL
);
