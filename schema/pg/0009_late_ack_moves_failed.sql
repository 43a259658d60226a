-- A delivery given up as FAILED and then sent after all moves from deliveries_failed to
-- deliveries_sent: schema/0013_late_ack_moves_failed.sql says why. The function behind
-- deliveries_count_update (and deliveries_count_insert, for which TG_OP is INSERT) takes
-- the failure back in the same transaction; the alert events' counts are the delivery
-- worker's since 0008 (cc_notify_deliver.c mark_acked). The alert_events branch (TG_ARGV)
-- stays so that the function is the same whatever trigger calls it.
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
VALUES (9, '0009_late_ack_moves_failed', floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint);
