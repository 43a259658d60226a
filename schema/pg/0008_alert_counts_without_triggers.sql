-- The alert totals of stat_counters are counted by the store, not by triggers: see
-- schema/0012_alert_counts_without_triggers.sql (the same change on SQLite).
DROP TRIGGER alerts_count_raised ON alerts;
DROP TRIGGER alerts_count_resolved ON alerts;
DROP FUNCTION coldchain_alerts_count_raised();
DROP FUNCTION coldchain_alerts_count_resolved();

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (8, '0008_alert_counts_without_triggers', floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint);
