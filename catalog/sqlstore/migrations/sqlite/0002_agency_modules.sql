-- Providers' own Rego modules, which can only narrow the base policy.
CREATE TABLE agency_modules (
    provider   TEXT PRIMARY KEY REFERENCES systems (id),
    source     BLOB NOT NULL,
    digest     TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
