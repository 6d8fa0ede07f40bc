-- Pipelines (SQLite; mirrors ../postgres): where imported records came from,
-- the registry of trained model versions, and the scores written back.

-- An imported record's id in its source (a leadforge bundle, a CSV file's key
-- column), so importing the same source again updates instead of duplicating.
CREATE TABLE source_ids (
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    source TEXT NOT NULL,
    record_type TEXT NOT NULL,
    external_id TEXT NOT NULL,
    record_id INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, source, record_type, external_id)
);
CREATE INDEX source_ids_record ON source_ids (workspace_id, record_type, record_id);

-- Every trained model is a version; at most one champion per task.
CREATE TABLE model_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    task TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    algorithm TEXT NOT NULL,
    features TEXT NOT NULL DEFAULT '[]',
    window_start TEXT,
    window_end TEXT,
    data_fingerprint TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}',
    -- The model as JSON (preprocessing and parameters).
    artifact TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('champion', 'challenger', 'retired')),
    decision TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (workspace_id, task, version)
);
CREATE UNIQUE INDEX model_versions_champion ON model_versions (workspace_id, task) WHERE status = 'champion';

-- The latest score of a record for a task, with the features that moved it most.
CREATE TABLE scores (
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    record_type TEXT NOT NULL,
    record_id INTEGER NOT NULL,
    task TEXT NOT NULL,
    score REAL NOT NULL CHECK (score BETWEEN 0 AND 1),
    reasons TEXT NOT NULL DEFAULT '[]',
    model_version INTEGER NOT NULL,
    scored_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, task, record_type, record_id)
);
