-- Sessions keyed by the SHA-256 of the client's token (the raw token is
-- never stored). Expired rows are never returned; the cleanup deletes them.
CREATE TABLE IF NOT EXISTS sessions (
    id         text        PRIMARY KEY,
    data       bytea       NOT NULL,
    expires    timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS sessions_expires_idx ON sessions (expires);
