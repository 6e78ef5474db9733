-- Liên Thông catalog, schema version 1 (PostgreSQL).
-- Times are TIMESTAMPTZ (microseconds), nested values JSONB, documents and
-- trail snapshots BYTEA (kept byte for byte). Every column a filter uses is
-- a plain column.

CREATE TABLE members (
    code       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    contacts   JSONB,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE systems (
    id             TEXT PRIMARY KEY,
    member         TEXT NOT NULL REFERENCES members (code),
    name           TEXT NOT NULL,
    security_level INTEGER NOT NULL,
    assessment_id  BIGINT,
    revoked_at     TIMESTAMPTZ,
    revoke_reason  TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX systems_member ON systems (member);

-- Every recorded assessment; systems.assessment_id points at the current one.
CREATE TABLE assessments (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    system_id   TEXT NOT NULL REFERENCES systems (id),
    level       INTEGER NOT NULL,
    assessed_by TEXT NOT NULL,
    reference   TEXT NOT NULL,
    valid_until TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX assessments_system ON assessments (system_id, id);
ALTER TABLE systems ADD CONSTRAINT systems_assessment_fk
    FOREIGN KEY (assessment_id) REFERENCES assessments (id);

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
    fields             JSONB,
    document           BYTEA,
    published_at       TIMESTAMPTZ NOT NULL,
    published_by       TEXT NOT NULL,
    PRIMARY KEY (system_id, code, version)
);
CREATE INDEX datasets_member ON datasets (member);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    member      TEXT REFERENCES members (code), -- NULL for platform admins
    secret_hash BYTEA,
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
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
    fields          JSONB,
    purpose         JSONB,
    legal_basis     JSONB,
    valid_from      TIMESTAMPTZ NOT NULL,
    valid_until     TIMESTAMPTZ NOT NULL,
    row_scope       JSONB,
    modes           JSONB,
    approved        JSONB,
    reason          TEXT NOT NULL,
    grant_id        TEXT NOT NULL,
    requested_by    TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    history         JSONB
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
    fields          JSONB,
    purposes        JSONB,
    legal_basis     JSONB,
    modes           JSONB,
    row_scope       JSONB,
    valid_from      TIMESTAMPTZ NOT NULL,
    valid_until     TIMESTAMPTZ NOT NULL,
    state           TEXT NOT NULL,
    approved_by     TEXT NOT NULL,
    revoked_at      TIMESTAMPTZ,
    revoke_reason   TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    history         JSONB
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
    not_before    TIMESTAMPTZ NOT NULL,
    not_after     TIMESTAMPTZ NOT NULL,
    pem           TEXT NOT NULL,
    revoked_at    TIMESTAMPTZ,
    revoke_reason TEXT NOT NULL
);
CREATE INDEX certificates_system ON certificates (system_id);
CREATE INDEX certificates_member ON certificates (member);

-- Seq comes from an identity; Update's advisory lock makes the commit order
-- equal the Seq order, so the newest visible Seq is a safe watermark.
CREATE TABLE trail (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    member      TEXT NOT NULL,
    action      TEXT NOT NULL,
    object      TEXT NOT NULL,
    before_doc  BYTEA,
    after_doc   BYTEA,
    outcome     TEXT NOT NULL
);
CREATE INDEX trail_member ON trail (member, seq);
CREATE INDEX trail_object ON trail (object, seq);
