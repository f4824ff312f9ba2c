-- A deploy is closed when polling it can no longer tell its end (Salesforce no longer knows
-- its id, or it is older than the deploy timeout): its run ends `unknown` with the reason and
-- it is never resumed again.
ALTER TABLE runs ADD COLUMN deploy_closed INTEGER NOT NULL DEFAULT 0;

-- One row rewritten by /readyz: the store is ready only while it can commit a write.
CREATE TABLE store_probe (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at TEXT NOT NULL
);

-- What the leader last saw of each org (sources, desired ranges, profiles, lock-out, last
-- error), so every instance behind the router shows the same /status.
CREATE TABLE org_status (
    org_id     TEXT PRIMARY KEY,
    snapshot   TEXT NOT NULL,   -- JSON
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
