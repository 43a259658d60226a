-- The alert totals of stat_counters are counted by the store, not by triggers (issue 13,
-- docs/alerts.md "Alert counts without triggers", 2026-12-08).
--
-- alerts_count_raised and alerts_count_resolved fired on every alert raised and resolved;
-- any statement that fires a trigger makes SQLite open a statement journal around it,
-- and the two together cost an alert change ~18,500 instructions of ~126,000. The only
-- writers of alerts rows are cc_alert_raise and cc_alert_resolve (common/engine/
-- cc_alert_ops.c), which refuse to run outside cc_store_begin's transaction and count
-- each raise and resolve there (cc_stats_count); cc_store_commit writes the
-- totals touched with one UPDATE each just before COMMIT, and a rollback drops them. So
-- the totals stay exact and transactional, as the triggers kept them.
--
-- alert_events_count_update likewise fired on every alert event the delivery worker marked
-- SENT or FAILED (one per alert change); cc_notify_deliver.c counts those changes itself
-- (the row was read PENDING in the same transaction, or is marked SENT only when it was
-- not). The webhook and e-mail triggers of notification_deliveries stay: a few rows per
-- notification at most, claimed and recorded in separate transactions.
-- PostgreSQL: schema/pg/0008.
DROP TRIGGER alerts_count_raised;
DROP TRIGGER alerts_count_resolved;
DROP TRIGGER alert_events_count_update;
