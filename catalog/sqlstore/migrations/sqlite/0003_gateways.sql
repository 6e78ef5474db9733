-- Where each member's gateway accepts peers, and the system it presents.
CREATE TABLE gateways (
    member     TEXT PRIMARY KEY REFERENCES members (code),
    system     TEXT NOT NULL REFERENCES systems (id),
    address    TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
