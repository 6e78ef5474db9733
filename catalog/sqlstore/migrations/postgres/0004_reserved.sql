-- Placeholder: version 4 is taken by a branch that lands before the audit
-- index (0005). The lead deletes this file at merge, or renumbers 0005.
SELECT 1;
