-- Rapport schema, SQLite (the embedded default); mirrors ../postgres. Every record belongs to a workspace; references
-- between records are composite (workspace_id, id) foreign keys, so a record can
-- never point into another workspace.

CREATE TABLE workspaces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'rep', 'viewer')),
    timezone TEXT NOT NULL DEFAULT 'UTC',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, id),
    CONSTRAINT users_email_key UNIQUE (workspace_id, email)
);

CREATE TABLE companies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    domain TEXT,
    industry TEXT,
    employees INTEGER CHECK (employees >= 0),
    annual_revenue REAL CHECK (annual_revenue >= 0),
    country TEXT,
    city TEXT,
    owner_id INTEGER,
    custom TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, id),
    FOREIGN KEY (workspace_id, owner_id) REFERENCES users (workspace_id, id)
);
CREATE INDEX companies_name ON companies (workspace_id, lower(name));

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    first_name TEXT NOT NULL,
    last_name TEXT,
    email TEXT,
    phone TEXT,
    title TEXT,
    company_id INTEGER,
    owner_id INTEGER,
    custom TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, id),
    CONSTRAINT contacts_email_key UNIQUE (workspace_id, email),
    FOREIGN KEY (workspace_id, company_id) REFERENCES companies (workspace_id, id),
    FOREIGN KEY (workspace_id, owner_id) REFERENCES users (workspace_id, id)
);
CREATE INDEX contacts_company ON contacts (workspace_id, company_id);
CREATE INDEX contacts_name ON contacts (workspace_id, lower(first_name), lower(last_name));

CREATE TABLE leads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    email TEXT,
    company_name TEXT,
    title TEXT,
    source TEXT,
    status TEXT NOT NULL DEFAULT 'new'
        CHECK (status IN ('new', 'working', 'qualified', 'unqualified', 'converted')),
    owner_id INTEGER,
    company_id INTEGER,
    contact_id INTEGER,
    converted_at TEXT,
    custom TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, id),
    FOREIGN KEY (workspace_id, owner_id) REFERENCES users (workspace_id, id),
    FOREIGN KEY (workspace_id, company_id) REFERENCES companies (workspace_id, id),
    FOREIGN KEY (workspace_id, contact_id) REFERENCES contacts (workspace_id, id)
);
CREATE INDEX leads_owner ON leads (workspace_id, owner_id, status);

CREATE TABLE pipelines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, id),
    CONSTRAINT pipelines_name_key UNIQUE (workspace_id, name)
);

CREATE TABLE stages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    pipeline_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    position INTEGER NOT NULL CHECK (position >= 0),
    probability REAL NOT NULL CHECK (probability BETWEEN 0 AND 1),
    outcome TEXT NOT NULL DEFAULT 'open' CHECK (outcome IN ('open', 'won', 'lost')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, id),
    FOREIGN KEY (workspace_id, pipeline_id) REFERENCES pipelines (workspace_id, id)
);

CREATE TABLE deals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    pipeline_id INTEGER NOT NULL,
    stage_id INTEGER NOT NULL,
    value REAL NOT NULL DEFAULT 0 CHECK (value >= 0),
    currency TEXT NOT NULL DEFAULT 'USD',
    probability REAL NOT NULL CHECK (probability BETWEEN 0 AND 1),
    expected_close_date TEXT,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost')),
    close_reason TEXT,
    closed_at TEXT,
    company_id INTEGER,
    lead_id INTEGER,
    owner_id INTEGER,
    stage_entered_at TEXT NOT NULL,
    custom TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, id),
    FOREIGN KEY (workspace_id, pipeline_id) REFERENCES pipelines (workspace_id, id),
    FOREIGN KEY (workspace_id, stage_id) REFERENCES stages (workspace_id, id),
    FOREIGN KEY (workspace_id, company_id) REFERENCES companies (workspace_id, id),
    FOREIGN KEY (workspace_id, lead_id) REFERENCES leads (workspace_id, id),
    FOREIGN KEY (workspace_id, owner_id) REFERENCES users (workspace_id, id)
);
CREATE INDEX deals_company ON deals (workspace_id, company_id);
CREATE INDEX deals_owner ON deals (workspace_id, owner_id, status);

CREATE TABLE deal_contacts (
    workspace_id INTEGER NOT NULL,
    deal_id INTEGER NOT NULL,
    contact_id INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, deal_id, contact_id),
    FOREIGN KEY (workspace_id, deal_id) REFERENCES deals (workspace_id, id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, contact_id) REFERENCES contacts (workspace_id, id)
);
CREATE INDEX deal_contacts_contact ON deal_contacts (workspace_id, contact_id);

CREATE TABLE deal_stage_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL,
    deal_id INTEGER NOT NULL,
    from_stage_id INTEGER,
    to_stage_id INTEGER NOT NULL,
    changed_by INTEGER,
    changed_at TEXT NOT NULL,
    seconds_in_previous INTEGER,
    FOREIGN KEY (workspace_id, deal_id) REFERENCES deals (workspace_id, id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, from_stage_id) REFERENCES stages (workspace_id, id),
    FOREIGN KEY (workspace_id, to_stage_id) REFERENCES stages (workspace_id, id),
    FOREIGN KEY (workspace_id, changed_by) REFERENCES users (workspace_id, id)
);
CREATE INDEX deal_stage_history_deal ON deal_stage_history (workspace_id, deal_id, changed_at);

CREATE TABLE activities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    kind TEXT NOT NULL CHECK (kind IN ('email', 'call', 'meeting', 'note')),
    direction TEXT CHECK (direction IN ('inbound', 'outbound', 'internal')),
    subject TEXT,
    body TEXT NOT NULL DEFAULT '',
    occurred_at TEXT NOT NULL,
    duration_seconds INTEGER CHECK (duration_seconds >= 0),
    outcome TEXT,
    sentiment REAL CHECK (sentiment BETWEEN -1 AND 1),
    contact_id INTEGER,
    company_id INTEGER,
    deal_id INTEGER,
    lead_id INTEGER,
    owner_id INTEGER,
    custom TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, id),
    FOREIGN KEY (workspace_id, contact_id) REFERENCES contacts (workspace_id, id),
    FOREIGN KEY (workspace_id, company_id) REFERENCES companies (workspace_id, id),
    FOREIGN KEY (workspace_id, deal_id) REFERENCES deals (workspace_id, id),
    FOREIGN KEY (workspace_id, lead_id) REFERENCES leads (workspace_id, id),
    FOREIGN KEY (workspace_id, owner_id) REFERENCES users (workspace_id, id)
);
CREATE INDEX activities_company ON activities (workspace_id, company_id, occurred_at);
CREATE INDEX activities_contact ON activities (workspace_id, contact_id, occurred_at);
CREATE INDEX activities_deal ON activities (workspace_id, deal_id, occurred_at);
CREATE INDEX activities_lead ON activities (workspace_id, lead_id, occurred_at);

CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    title TEXT NOT NULL,
    description TEXT,
    due_at TEXT,
    priority TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'cancelled')),
    assignee_id INTEGER,
    completed_at TEXT,
    contact_id INTEGER,
    company_id INTEGER,
    deal_id INTEGER,
    lead_id INTEGER,
    custom TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, id),
    FOREIGN KEY (workspace_id, assignee_id) REFERENCES users (workspace_id, id),
    FOREIGN KEY (workspace_id, contact_id) REFERENCES contacts (workspace_id, id),
    FOREIGN KEY (workspace_id, company_id) REFERENCES companies (workspace_id, id),
    FOREIGN KEY (workspace_id, deal_id) REFERENCES deals (workspace_id, id),
    FOREIGN KEY (workspace_id, lead_id) REFERENCES leads (workspace_id, id)
);
CREATE INDEX tasks_assignee ON tasks (workspace_id, assignee_id, status, due_at);

-- Tags on any record: the record is named by type and id (no foreign key, as
-- the target table varies); the store removes a record's tags when it deletes it.
CREATE TABLE tags (
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    record_type TEXT NOT NULL,
    record_id INTEGER NOT NULL,
    tag TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, record_type, record_id, tag)
);
CREATE INDEX tags_by_tag ON tags (workspace_id, tag);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    actor_id INTEGER,
    source TEXT NOT NULL,
    session_id TEXT,
    action TEXT NOT NULL,
    record_type TEXT NOT NULL,
    record_id INTEGER,
    before TEXT,
    after TEXT,
    at TEXT NOT NULL
);
CREATE INDEX audit_record ON audit_log (workspace_id, record_type, record_id, id);
CREATE INDEX audit_actor ON audit_log (workspace_id, actor_id, id);
