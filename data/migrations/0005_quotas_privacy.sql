-- Quotas and lasting privacy (issue 10).

-- Privacy is the member's choice for a profile (votes, or their moodboards):
-- every new version (profile_versions.public) starts with it. No row: public.
CREATE TABLE profile_privacy (
    user_id INTEGER NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('votes', 'moodboard')),
    public  INTEGER NOT NULL,
    PRIMARY KEY (user_id, kind)
);

-- A member whose latest version is private stays private.
INSERT INTO profile_privacy (user_id, kind, public)
SELECT user_id, kind, 0 FROM profile_versions p
WHERE public = 0 AND version = (
    SELECT MAX(version) FROM profile_versions q WHERE q.user_id = p.user_id AND q.kind = p.kind
);

-- Daily image quotas (UTC days). The per-member default is a server setting
-- (NULL = unlimited); a role's quota replaces it for members with that role,
-- the most generous of their roles winning (0 = unlimited).
ALTER TABLE guild_settings ADD COLUMN daily_images_per_member INTEGER;

CREATE TABLE role_quotas (
    guild_id     INTEGER NOT NULL,
    role_id      INTEGER NOT NULL,
    daily_images INTEGER NOT NULL CHECK (daily_images >= 0),
    PRIMARY KEY (guild_id, role_id)
);

-- The images a job makes (a grid 4, an upscale 1, a moodboard 0), counted
-- against the quota from the moment it is queued until it fails or is cancelled.
ALTER TABLE jobs ADD COLUMN images INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET images = (SELECT COUNT(*) FROM images i WHERE i.job_id = jobs.id) WHERE state = 'done';
UPDATE jobs SET images = CASE kind WHEN 'upscale' THEN 1 WHEN 'imagine' THEN 4 WHEN 'variation' THEN 4 ELSE 0 END
WHERE state IN ('queued', 'running');
CREATE INDEX jobs_user_day ON jobs(user_id, created_at);
