-- The login IP ranges ipguard asserted on each profile (docs/contract.md §1 Owned ranges): an owned range
-- that is no longer desired is removed; any other range is someone else's, whatever its
-- description. A profile with rows here "has history": the record wins over the text.
CREATE TABLE owned_ranges (
    org_id        TEXT NOT NULL,
    profile       TEXT NOT NULL,
    start_address TEXT NOT NULL,
    end_address   TEXT NOT NULL,
    recorded_at   TEXT NOT NULL,
    PRIMARY KEY (org_id, profile, start_address, end_address)
) WITHOUT ROWID;
