-- The web app: passwords, browser sessions, sign-in attempts and saved views.
-- Mirrors ../postgres.

-- An argon2id PHC string; NULL until `rapport users set-password` (or an
-- invitation) gives the user one. Never selected by the generic record code.
ALTER TABLE users ADD COLUMN password_hash TEXT;

-- A browser session. Only the SHA-256 of the cookie's token is stored, so a
-- copy of this table cannot be replayed as cookies. Revoked at sign-out.
CREATE TABLE web_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    user_id INTEGER NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    UNIQUE (workspace_id, id),
    FOREIGN KEY (workspace_id, user_id) REFERENCES users (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX web_sessions_user ON web_sessions (workspace_id, user_id, id);

-- Every sign-in attempt, for the rate limit (failures per email and per
-- client address in a window) and for an operator reading what happened.
CREATE TABLE signin_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL,
    client TEXT NOT NULL,
    succeeded INTEGER NOT NULL CHECK (succeeded IN (0, 1)),
    at TEXT NOT NULL
);
CREATE INDEX signin_attempts_email ON signin_attempts (email, at);
CREATE INDEX signin_attempts_client ON signin_attempts (client, at);

-- A record table's filter, sort and columns, kept under a name: personal
-- (only its owner sees it) or shared with the workspace.
CREATE TABLE saved_views (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    user_id INTEGER NOT NULL,
    record_type TEXT NOT NULL,
    name TEXT NOT NULL,
    shared INTEGER NOT NULL CHECK (shared IN (0, 1)),
    query TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (workspace_id, id),
    FOREIGN KEY (workspace_id, user_id) REFERENCES users (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX saved_views_type ON saved_views (workspace_id, record_type, id);
