-- The vector index is derived from the database: every change to an activity's
-- indexed text or links queues the activity here, in the same transaction as
-- the change, whichever path made it (tools, bulk inserts, seeding, merges).
-- `rapport ingest` drains the queue and acknowledges rows only after the index
-- has been flushed, so a crash leaves them to be redone.
CREATE TABLE index_outbox (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id BIGINT NOT NULL,
    activity_id BIGINT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
    queued_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX index_outbox_workspace ON index_outbox (workspace_id, seq);

CREATE FUNCTION activities_outbox_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO index_outbox (workspace_id, activity_id, op)
        VALUES (OLD.workspace_id, OLD.id, 'delete');
        RETURN OLD;
    END IF;
    INSERT INTO index_outbox (workspace_id, activity_id, op)
    VALUES (NEW.workspace_id, NEW.id, 'upsert');
    RETURN NEW;
END;
$$;

CREATE TRIGGER activities_outbox_insert AFTER INSERT ON activities
FOR EACH ROW EXECUTE FUNCTION activities_outbox_enqueue();

-- Only the columns that reach the index; a sentiment score does not re-embed.
CREATE TRIGGER activities_outbox_update
AFTER UPDATE OF kind, subject, body, occurred_at, contact_id, company_id, deal_id, lead_id, owner_id
ON activities
FOR EACH ROW EXECUTE FUNCTION activities_outbox_enqueue();

CREATE TRIGGER activities_outbox_delete AFTER DELETE ON activities
FOR EACH ROW EXECUTE FUNCTION activities_outbox_enqueue();

-- Activities that existed before this migration are queued once.
INSERT INTO index_outbox (workspace_id, activity_id, op)
SELECT workspace_id, id, 'upsert' FROM activities ORDER BY id;
