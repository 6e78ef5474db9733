-- Shipping lag: where each gateway's log ends, as its shipper reports it
-- with each shipment or in an idle heartbeat, next to where the index's
-- copy ends (next_seq - 1). Times are Unix microseconds; 0 means never.
--   log_head:      the last seq the gateway's log holds (durably written);
--   head_at:       when it was reported;
--   shipped_at:    when the index last accepted new entries;
--   lag:           log_head minus the entries held, at the last report;
--   growing_since: when the lag began to grow without shrinking since
--                  (0 while it shrinks or is zero).
ALTER TABLE audit_gateways ADD COLUMN log_head INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_gateways ADD COLUMN head_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_gateways ADD COLUMN shipped_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_gateways ADD COLUMN lag INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_gateways ADD COLUMN growing_since INTEGER NOT NULL DEFAULT 0;
