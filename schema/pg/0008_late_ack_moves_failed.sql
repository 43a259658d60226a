-- A delivery given up as FAILED and then acknowledged after all moves from
-- deliveries_failed to deliveries_sent: schema/0012_late_ack_moves_failed.sql says why (a
-- second ingestd gave an event up while the first still held it; the first one's PUBACK
-- then made it SENT, and the event was counted both failed and sent). The function behind
-- alert_events_count_update and deliveries_count_update (and deliveries_count_insert, for
-- which TG_OP is INSERT) takes the failure back in the same transaction.
CREATE OR REPLACE FUNCTION coldchain_deliveries_count() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    channel text;
BEGIN
    -- Two branches: alert_events has no channel column, and NEW.channel is looked up
    -- only when the statement naming it runs.
    IF TG_NARGS > 0 THEN
        channel := TG_ARGV[0];
    ELSE
        channel := NEW.channel;
    END IF;
    UPDATE stat_counters SET value = value + 1
    WHERE name = CASE NEW.status WHEN 'SENT' THEN 'deliveries_sent' ELSE 'deliveries_failed' END
      AND label = channel;
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status = 'FAILED' THEN
            UPDATE stat_counters SET value = value - 1
            WHERE name = 'deliveries_failed' AND label = channel;
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (8, '0008_late_ack_moves_failed', floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint);
