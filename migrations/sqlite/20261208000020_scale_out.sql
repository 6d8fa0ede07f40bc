-- What several `rapport serve` processes on one database must agree on.
-- Mirrors ../postgres. Times are milliseconds since the epoch (integers), so
-- both databases compute with them alike.

-- Who runs a chat session's turn now: one row while a turn is under way,
-- taken with a conditional upsert (only when absent or expired), renewed
-- while the turn runs, deleted at its end. A holder that dies stops renewing
-- and the lease expires.
CREATE TABLE session_leases (
    session_id INTEGER PRIMARY KEY REFERENCES agent_sessions (id) ON DELETE CASCADE,
    holder TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);

-- The rate limit's token bucket of each API key: tokens in thousandths, and
-- when it was last refilled.
CREATE TABLE rate_buckets (
    key_id INTEGER PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    tokens INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
