-- The alert totals of stat_counters, and the alert events delivered, are counted by the
-- store, not by triggers: see schema/0012_alert_counts_without_triggers.sql (the same
-- change on SQLite).
DROP TRIGGER alerts_count_raised ON alerts;
DROP TRIGGER alerts_count_resolved ON alerts;
DROP FUNCTION coldchain_alerts_count_raised();
DROP FUNCTION coldchain_alerts_count_resolved();
DROP TRIGGER alert_events_count_update ON alert_events;

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (8, '0008_alert_counts_without_triggers', floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint);
