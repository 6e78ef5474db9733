-- The federation-wide audit index (package audit/index). Gateways ship their
-- hash-chained logs here; everything below can be rebuilt from those logs
-- (lienthong audit reindex). Times are Unix microseconds (UTC) in both
-- dialects, so queries and cursors are the same SQL.

-- One row per gateway that ships: its enrolled checkpoint key (the newest the
-- operator accepted; a genesis must name it) and where its
-- chain stands (next seq expected, hash of the entry before it).
CREATE TABLE audit_gateways (
    gateway        TEXT PRIMARY KEY,
    public_key     BYTEA,
    key_enrolled   BIGINT,
    next_seq       BIGINT NOT NULL,
    head           TEXT NOT NULL,
    -- verified_seq: the last seq covered by a checkpoint the index verified.
    verified_seq   BIGINT NOT NULL
);

-- The checkpoint key of each segment: from the seq of the genesis that
-- names it on. Checkpoints are verified with the key of their segment, so a
-- key rotated by the operator leaves earlier checkpoints verifiable.
CREATE TABLE audit_keys (
    gateway    TEXT NOT NULL,
    from_seq   BIGINT NOT NULL,
    public_key BYTEA NOT NULL,
    PRIMARY KEY (gateway, from_seq)
);

-- Every entry held, by gateway and seq: its hash (the chain) and its RFC 9162
-- leaf hash (checkpoint roots). Entry bytes stay in the gateway's log.
CREATE TABLE audit_entries (
    gateway TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    hash    TEXT NOT NULL,
    leaf    BYTEA NOT NULL,
    kind    TEXT NOT NULL,
    PRIMARY KEY (gateway, seq)
);

-- Exchange records, one per record entry, for auditor queries.
CREATE TABLE audit_records (
    gateway         TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    at              BIGINT NOT NULL,
    exchange_id     TEXT NOT NULL,
    side            TEXT NOT NULL,
    phase           TEXT NOT NULL,
    consumer        TEXT NOT NULL,
    consumer_member TEXT NOT NULL,
    provider        TEXT NOT NULL,
    provider_member TEXT NOT NULL,
    dataset         TEXT NOT NULL,
    mode            TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    case_ref        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    subjects        BIGINT NOT NULL,
    fields          TEXT NOT NULL,
    grant_id        TEXT NOT NULL,
    reasons         TEXT NOT NULL,
    status          BIGINT NOT NULL,
    bytes           BIGINT NOT NULL,
    latency_ms      DOUBLE PRECISION NOT NULL,
    request_hash    TEXT NOT NULL,
    policy_revision TEXT NOT NULL,
    PRIMARY KEY (gateway, seq)
);
CREATE INDEX audit_records_at ON audit_records (at, gateway, seq);
CREATE INDEX audit_records_consumer_member ON audit_records (consumer_member, at);
CREATE INDEX audit_records_provider_member ON audit_records (provider_member, at);
CREATE INDEX audit_records_exchange ON audit_records (exchange_id);
CREATE INDEX audit_records_subject ON audit_records (subject, at) WHERE subject <> '';

-- The citizen tracker's index: one row per subject a provider's gateway
-- disclosed (an allowed provider-side outcome), newest first by (at, gateway, seq).
CREATE TABLE audit_disclosures (
    subject BYTEA NOT NULL,
    at      BIGINT NOT NULL,
    gateway TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    PRIMARY KEY (subject, at, gateway, seq)
);

-- Checkpoints received (in the log or posted on their own), verified once
-- the entries they cover are held. Their time is in Unix nanoseconds, as
-- signed (the signature covers it to the nanosecond).
CREATE TABLE audit_checkpoints (
    gateway   TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    from_seq  BIGINT NOT NULL,
    head      TEXT NOT NULL,
    root      TEXT NOT NULL,
    at        BIGINT NOT NULL,
    signature BYTEA NOT NULL,
    verified  BIGINT NOT NULL,
    PRIMARY KEY (gateway, seq)
);

-- Alerts: a gap, a fork, a broken link, a bad checkpoint or key.
CREATE TABLE audit_alerts (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    gateway TEXT NOT NULL,
    member  TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX audit_alerts_gateway ON audit_alerts (gateway, id);
