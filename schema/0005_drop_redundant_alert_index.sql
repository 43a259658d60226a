-- alerts_active_first (first_triggered_at WHERE status = 'ACTIVE') served the escalation
-- scan, which alerts_status_first (status, first_triggered_at) serves as well: SQLite
-- plans "SEARCH alerts USING INDEX alerts_status_first (status=? AND
-- first_triggered_at<?)" for it, in first_triggered_at order. Every alert raise and
-- every resolve wrote both; the alert engine writes one index less now.
DROP INDEX IF EXISTS alerts_active_first;
