-- A user's sessions: the user a session is bound to (NULL: unbound), and a
-- partial index so that listing or revoking one user's sessions reads only
-- that user's rows. Unbound rows get no index entry, so they cost nothing.
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS user_id text;

CREATE INDEX IF NOT EXISTS sessions_user_id_idx ON sessions (user_id) WHERE user_id IS NOT NULL;
