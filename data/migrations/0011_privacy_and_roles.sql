-- Privacy is the member's choice per kind (issue 20): taste (main, named profiles and
-- tunes) or moodboard. Every profile of a kind holds the choice, so a new version of any
-- of them, and a new profile of that kind, starts as chosen. A kind with any private
-- profile was chosen private: all its profiles become private (never sharing what was hidden).
UPDATE profiles SET public = 0
WHERE public = 1 AND EXISTS (
    SELECT 1 FROM profiles p
    WHERE p.user_id = profiles.user_id AND p.public = 0 AND (p.kind = 'moodboard') = (profiles.kind = 'moodboard')
);

-- The member's roles on a server as the bot last saw them (a command there), space-separated
-- ids: the web companion applies role quotas to the jobs it queues with them.
ALTER TABLE web_members ADD COLUMN roles TEXT NOT NULL DEFAULT '';
