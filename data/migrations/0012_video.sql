-- Issue 22: Animate. A clip is an image row (its first frame, PNG: what galleries, likes and taste
-- read) with its MP4 beside it (NULL for a still image). A server chooses how many clips a video
-- job makes and what a clip counts against a daily quota.
ALTER TABLE images ADD COLUMN video TEXT;
ALTER TABLE guild_settings ADD COLUMN video_clips INTEGER NOT NULL DEFAULT 4;
ALTER TABLE guild_settings ADD COLUMN video_clip_images INTEGER NOT NULL DEFAULT 8;
