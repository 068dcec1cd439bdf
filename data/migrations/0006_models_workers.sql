-- Owner presets and worker health (issue 14).

-- The server's default model preset (/admin model default); NULL: the bot's TASTEMAKER_MODEL.
ALTER TABLE guild_settings ADD COLUMN default_model TEXT;

-- Worker health, as each worker reports it (engine/queue.py report_worker): the
-- status is engine.queue_contract.WorkerStatus as JSON; last_seen is the wall clock
-- when it was stored. Rows not refreshed for a day are dropped.
CREATE TABLE queue_workers (
    id        TEXT PRIMARY KEY,
    status    TEXT NOT NULL,
    last_seen REAL NOT NULL
);
