-- ipguard store, SQLite flavour. Timestamps are TEXT in one fixed-width UTC form
-- (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, written by the store only) so that text order is time order.

-- Salesforce delivery keys already recorded (outbound message Notification Ids, platform event
-- dedupe keys). Salesforce retries for 24 h, so rows live at least that long (see prune).
CREATE TABLE deliveries (
    source      TEXT NOT NULL,
    key         TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (source, key)
) WITHOUT ROWID;
CREATE INDEX deliveries_received_at ON deliveries (received_at);

-- JWT ids seen on event callouts, refused again until they expire.
CREATE TABLE jtis (
    jti        TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX jtis_expires_at ON jtis (expires_at);

-- One reconcile of one org. AUTOINCREMENT: a run id is never reused.
CREATE TABLE runs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id              TEXT NOT NULL,
    trigger_kind        TEXT NOT NULL,
    started_at          TEXT NOT NULL,
    finished_at         TEXT,
    outcome             TEXT,
    profiles            TEXT NOT NULL,              -- JSON array of profile full names
    deploy_id           TEXT,
    check_only          INTEGER,
    deploy_submitted_at TEXT,
    error               TEXT,
    failures            TEXT NOT NULL DEFAULT '[]', -- JSON array of messages
    plan                TEXT                        -- JSON
);
CREATE INDEX runs_org_deploy ON runs (org_id, id) WHERE deploy_id IS NOT NULL;
CREATE INDEX runs_deploy_id ON runs (deploy_id) WHERE deploy_id IS NOT NULL;

-- Reasons to reconcile; consumed by the run that took them into account.
CREATE TABLE hints (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    detail       TEXT,
    created_at   TEXT NOT NULL,
    run_id       INTEGER REFERENCES runs (id),
    consumed_at  TEXT
);
CREATE INDEX hints_pending ON hints (org_id, id) WHERE run_id IS NULL;

-- Per-org reconcile lease. A row is never deleted (release only expires it), so the fencing
-- token keeps increasing across holders.
CREATE TABLE leases (
    org_id        TEXT PRIMARY KEY,
    holder        TEXT NOT NULL,
    fencing_token INTEGER NOT NULL,
    expires_at    TEXT NOT NULL
) WITHOUT ROWID;
