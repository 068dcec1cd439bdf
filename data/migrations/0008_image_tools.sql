-- Issue 13: Midjourney's image tools. Helpers A (prompt syntax, /show), B (image prompts,
-- /blend, /describe) and C (zoom, pan, upscale, vary region) each append their own section.

-- (A) Prompt syntax: how many jobs one prompt may expand to ({a, b} permutations, --repeat).
ALTER TABLE guild_settings ADD COLUMN max_permutations INTEGER NOT NULL DEFAULT 4;
