-- ipguard store, PostgreSQL flavour. Every timestamp is stamped and compared with the
-- database's clock (now()), never an instance's, so instances with skewed clocks agree.

-- Salesforce delivery keys already recorded (outbound message Notification Ids, platform event
-- dedupe keys). Salesforce retries for 24 h, so rows live at least that long (see prune).
CREATE TABLE deliveries (
    source      TEXT NOT NULL,
    key         TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, key)
);
CREATE INDEX deliveries_received_at ON deliveries (received_at);

-- JWT ids seen on event callouts, refused again until they expire.
CREATE TABLE jtis (
    jti        TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX jtis_expires_at ON jtis (expires_at);

-- One reconcile of one org.
CREATE TABLE runs (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id              TEXT NOT NULL,
    trigger_kind        TEXT NOT NULL,
    started_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at         TIMESTAMPTZ,
    outcome             TEXT,
    profiles            JSONB NOT NULL,
    deploy_id           TEXT,
    check_only          BOOLEAN,
    deploy_submitted_at TIMESTAMPTZ,
    error               TEXT,
    failures            JSONB NOT NULL DEFAULT '[]',
    plan                JSONB
);
CREATE INDEX runs_org_deploy ON runs (org_id, id) WHERE deploy_id IS NOT NULL;
CREATE INDEX runs_deploy_id ON runs (deploy_id) WHERE deploy_id IS NOT NULL;

-- Reasons to reconcile; consumed by the run that took them into account.
CREATE TABLE hints (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id       TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    detail       TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    run_id       BIGINT REFERENCES runs (id),
    consumed_at  TIMESTAMPTZ
);
CREATE INDEX hints_pending ON hints (org_id, id) WHERE run_id IS NULL;

-- Per-org reconcile lease. A row is never deleted (release only expires it), so the fencing
-- token keeps increasing across holders.
CREATE TABLE leases (
    org_id        TEXT PRIMARY KEY,
    holder        TEXT NOT NULL,
    fencing_token BIGINT NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);
