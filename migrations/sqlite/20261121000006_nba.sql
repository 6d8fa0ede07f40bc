-- Next-best actions and online experiments (SQLite; mirrors ../postgres).

-- What a rep said about a suggested action: done, dismissed (with an optional
-- reason) or snoozed until a time. The action is named by a stable key
-- (rule:record_type:record_id); the latest row per (user, key) is in force.
-- `outcome` is filled later by `rapport nba outcomes` when the record moved
-- forward within the window (deal advanced, lead converted, account renewed…).
CREATE TABLE nba_feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    user_id INTEGER NOT NULL,
    action_key TEXT NOT NULL,
    rule TEXT NOT NULL,
    record_type TEXT NOT NULL,
    record_id INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'dismissed', 'snoozed')),
    reason TEXT,
    snoozed_until TEXT,
    created_at TEXT NOT NULL,
    outcome TEXT,
    outcome_at TEXT,
    CHECK (status <> 'snoozed' OR snoozed_until IS NOT NULL),
    FOREIGN KEY (workspace_id, user_id) REFERENCES users (workspace_id, id)
);
CREATE INDEX nba_feedback_user ON nba_feedback (workspace_id, user_id, action_key, id);

-- An experiment: named variants with traffic weights (JSON [{"name", "weight"}]).
CREATE TABLE experiments (
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    unit_type TEXT NOT NULL,
    variants TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, name)
);

-- A unit (a rep, an account, a lead) saw an item (e.g. a suggested action)
-- under its variant; the first exposure of a (unit, item) pair counts.
CREATE TABLE experiment_exposures (
    workspace_id INTEGER NOT NULL,
    experiment TEXT NOT NULL,
    unit TEXT NOT NULL,
    item TEXT NOT NULL,
    variant TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, experiment, unit, item),
    FOREIGN KEY (workspace_id, experiment) REFERENCES experiments (workspace_id, name)
);

-- An outcome of an exposed item (the deal advanced, the lead converted…).
CREATE TABLE experiment_events (
    workspace_id INTEGER NOT NULL,
    experiment TEXT NOT NULL,
    unit TEXT NOT NULL,
    item TEXT NOT NULL,
    event TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, experiment, unit, item, event),
    FOREIGN KEY (workspace_id, experiment, unit, item)
        REFERENCES experiment_exposures (workspace_id, experiment, unit, item)
);
