-- The citizen tracker lists every outcome that names a subject, on either
-- side and whatever it answered (audit/index: concerns), not only the
-- provider side's allowed ones. Outcomes indexed before this version that
-- were left out of audit_disclosures are added from their record's subject
-- (a list answer's further subjects are only in the logs: `lienthong audit
-- reindex` into a fresh store adds them). Subjects are stored as their
-- bytes when hex, as audit/index's subjectKey does.
INSERT INTO audit_disclosures (subject, at, gateway, seq)
SELECT COALESCE(unhex(subject), CAST(subject AS BLOB)), at, gateway, seq
FROM audit_records
WHERE phase = 'outcome' AND subject <> ''
ON CONFLICT DO NOTHING;
