-- Conversations with the agent: sessions, their log of entries (messages,
-- tool results, turn statistics, as JSON) and proposals awaiting approval.
CREATE TABLE agent_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    user_id INTEGER NOT NULL,
    title TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, id),
    FOREIGN KEY (workspace_id, user_id) REFERENCES users (workspace_id, id)
);
CREATE INDEX agent_sessions_user ON agent_sessions (workspace_id, user_id, id);

CREATE TABLE agent_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL,
    session_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    at TEXT NOT NULL,
    FOREIGN KEY (workspace_id, session_id) REFERENCES agent_sessions (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX agent_entries_session ON agent_entries (workspace_id, session_id, id);

CREATE TABLE agent_proposals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL,
    session_id INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    args TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'applied', 'rejected', 'conflict', 'failed')),
    result TEXT,
    created_at TEXT NOT NULL,
    decided_at TEXT,
    FOREIGN KEY (workspace_id, session_id) REFERENCES agent_sessions (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX agent_proposals_session ON agent_proposals (workspace_id, session_id, id);
CREATE INDEX audit_session ON audit_log (workspace_id, session_id, id);
