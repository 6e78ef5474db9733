-- Liên Thông catalog, schema version 1 (SQLite).
-- Times are UTC text 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (sorts as the instant).
-- Nested values are JSON text; every column a filter uses is a plain column.

CREATE TABLE members (
    code       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    contacts   TEXT,
    created_at TEXT NOT NULL
);

-- Every recorded assessment; systems.assessment_id points at the current one.
CREATE TABLE assessments (
    id          INTEGER PRIMARY KEY,
    system_id   TEXT NOT NULL REFERENCES systems (id),
    level       INTEGER NOT NULL,
    assessed_by TEXT NOT NULL,
    reference   TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX assessments_system ON assessments (system_id, id);

CREATE TABLE systems (
    id             TEXT PRIMARY KEY,
    member         TEXT NOT NULL REFERENCES members (code),
    name           TEXT NOT NULL,
    security_level INTEGER NOT NULL,
    assessment_id  INTEGER REFERENCES assessments (id),
    revoked_at     TEXT,
    revoke_reason  TEXT NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE INDEX systems_member ON systems (member);

CREATE TABLE datasets (
    system_id          TEXT NOT NULL REFERENCES systems (id),
    code               TEXT NOT NULL,
    version            INTEGER NOT NULL,
    member             TEXT NOT NULL,
    title              TEXT NOT NULL,
    description        TEXT NOT NULL,
    record_schema      TEXT NOT NULL,
    min_consumer_level INTEGER NOT NULL,
    digest             TEXT NOT NULL,
    fields             TEXT,
    document           BLOB,
    published_at       TEXT NOT NULL,
    published_by       TEXT NOT NULL,
    PRIMARY KEY (system_id, code, version)
);
CREATE INDEX datasets_member ON datasets (member);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    member      TEXT REFERENCES members (code), -- NULL for platform admins
    secret_hash BLOB,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);
CREATE INDEX tokens_member ON tokens (member);

-- consumer_member and provider_member are the member parts of the system
-- ids, kept so that "requests of member X" is an indexed lookup.
CREATE TABLE access_requests (
    id              TEXT PRIMARY KEY,
    consumer        TEXT NOT NULL REFERENCES systems (id),
    consumer_member TEXT NOT NULL,
    provider        TEXT NOT NULL REFERENCES systems (id),
    provider_member TEXT NOT NULL,
    dataset         TEXT NOT NULL,
    state           TEXT NOT NULL,
    fields          TEXT,
    purpose         TEXT,
    legal_basis     TEXT,
    valid_from      TEXT NOT NULL,
    valid_until     TEXT NOT NULL,
    row_scope       TEXT,
    modes           TEXT,
    approved        TEXT,
    reason          TEXT NOT NULL,
    grant_id        TEXT NOT NULL,
    requested_by    TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    history         TEXT
);
CREATE INDEX access_requests_consumer ON access_requests (consumer);
CREATE INDEX access_requests_provider ON access_requests (provider, dataset);
CREATE INDEX access_requests_consumer_member ON access_requests (consumer_member);
CREATE INDEX access_requests_provider_member ON access_requests (provider_member);
CREATE INDEX access_requests_state ON access_requests (state);

CREATE TABLE grants (
    id              TEXT PRIMARY KEY,
    request_id      TEXT NOT NULL,
    consumer        TEXT NOT NULL REFERENCES systems (id),
    consumer_member TEXT NOT NULL,
    provider        TEXT NOT NULL REFERENCES systems (id),
    provider_member TEXT NOT NULL,
    dataset         TEXT NOT NULL,
    fields          TEXT,
    purposes        TEXT,
    legal_basis     TEXT,
    modes           TEXT,
    row_scope       TEXT,
    valid_from      TEXT NOT NULL,
    valid_until     TEXT NOT NULL,
    state           TEXT NOT NULL,
    approved_by     TEXT NOT NULL,
    revoked_at      TEXT,
    revoke_reason   TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    history         TEXT
);
CREATE INDEX grants_request ON grants (request_id);
CREATE INDEX grants_consumer ON grants (consumer);
CREATE INDEX grants_provider ON grants (provider, dataset);
CREATE INDEX grants_consumer_member ON grants (consumer_member);
CREATE INDEX grants_provider_member ON grants (provider_member);
CREATE INDEX grants_state ON grants (state);

CREATE TABLE certificates (
    serial        TEXT PRIMARY KEY,
    system_id     TEXT NOT NULL REFERENCES systems (id),
    member        TEXT NOT NULL,
    spiffe        TEXT NOT NULL,
    authority     TEXT NOT NULL,
    not_before    TEXT NOT NULL,
    not_after     TEXT NOT NULL,
    pem           TEXT NOT NULL,
    revoked_at    TEXT,
    revoke_reason TEXT NOT NULL
);
CREATE INDEX certificates_system ON certificates (system_id);
CREATE INDEX certificates_member ON certificates (member);

-- AUTOINCREMENT: a Seq is never handed out twice, even after the newest
-- entries are deleted.
CREATE TABLE trail (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at TEXT NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    member      TEXT NOT NULL,
    action      TEXT NOT NULL,
    object      TEXT NOT NULL,
    before_doc  BLOB,
    after_doc   BLOB,
    outcome     TEXT NOT NULL
);
CREATE INDEX trail_member ON trail (member, seq);
CREATE INDEX trail_object ON trail (object, seq);
