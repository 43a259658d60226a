-- The outbox's due indexes hold PENDING rows only: schema/0010_partial_due_indexes.sql says
-- why (every scan and count of the delivery worker asks for status = 'PENDING'; a sent row
-- leaves the index instead of moving inside it, and the index holds the backlog only).
DROP INDEX notifications_due;
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'PENDING';
DROP INDEX alert_events_due;
CREATE INDEX alert_events_due ON alert_events (next_attempt_at) WHERE status = 'PENDING';

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (7, '0007_partial_due_indexes', floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint);
