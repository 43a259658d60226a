-- The outbox's due indexes hold PENDING rows only (issue 13, docs/alerts.md "The cost of
-- one alert change").
--
-- The delivery worker's scans (cc_notify_deliver.c: EVENTS_DUE, DUE, SUMMARY_DUE) and the
-- pending counts of /metrics (cc_stats.c) all ask for status = 'PENDING'. With the index on
-- (status, next_attempt_at) every row stayed in it for good: sending one moved its entry
-- from the PENDING part to the SENT part (a delete and an insert in the b-tree), and the
-- index grew with the whole history of the outbox. A partial index drops the entry when the
-- row is sent or given up, and holds only the backlog. The names stay, so the schema of
-- both stores keeps naming the same indexes (schema/pg/0007_partial_due_indexes.sql).
DROP INDEX notifications_due;
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'PENDING';
DROP INDEX alert_events_due;
CREATE INDEX alert_events_due ON alert_events (next_attempt_at) WHERE status = 'PENDING';
