-- Issue 13: Midjourney's image tools. Helpers A (prompt syntax, /show), B (image prompts,
-- /blend, /describe) and C (zoom, pan, upscale, vary region) each append their own section.

-- (A) Prompt syntax: how many jobs one prompt may expand to ({a, b} permutations, --repeat).
ALTER TABLE guild_settings ADD COLUMN max_permutations INTEGER NOT NULL DEFAULT 4;

-- A prompt that makes several jobs waits here for the member's Yes (the confirm
-- buttons carry its id); each row is used once and expires after 15 minutes.
CREATE TABLE pending_prompts (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    guild_id   INTEGER,
    prompts    TEXT NOT NULL,  -- JSON: [[prompt, repeat], ...] as the member wrote them, braces expanded
    reroll     INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
