-- The fingerprints of the keys this federation was started with (the CA's
-- roots, the bundle-signing key), recorded by the first control plane: one
-- with other keys refuses to start against this store.
CREATE TABLE federation_keys (
    name        TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
);
