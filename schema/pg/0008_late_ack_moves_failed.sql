-- A delivery given up as FAILED and then acknowledged after all moves from
-- deliveries_failed to deliveries_sent: schema/0012_late_ack_moves_failed.sql says why (a
-- second ingestd gave an event up while the first still held it; the first one's PUBACK
-- then made it SENT, and the event was counted both failed and sent). The triggers carry
-- SQLite's names; TG_ARGV[0] is the channel as in coldchain_deliveries_count.
CREATE FUNCTION coldchain_deliveries_uncount() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    channel text;
BEGIN
    IF TG_NARGS > 0 THEN
        channel := TG_ARGV[0];
    ELSE
        channel := NEW.channel;
    END IF;
    UPDATE stat_counters SET value = value - 1
    WHERE name = 'deliveries_failed' AND label = channel;
    RETURN NULL;
END;
$$;
CREATE TRIGGER alert_events_count_unfail AFTER UPDATE OF status ON alert_events
    FOR EACH ROW WHEN (OLD.status = 'FAILED' AND NEW.status = 'SENT')
    EXECUTE FUNCTION coldchain_deliveries_uncount('mqtt');
CREATE TRIGGER deliveries_count_unfail AFTER UPDATE OF status ON notification_deliveries
    FOR EACH ROW WHEN (OLD.status = 'FAILED' AND NEW.status = 'SENT')
    EXECUTE FUNCTION coldchain_deliveries_uncount();

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (8, '0008_late_ack_moves_failed', floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint);
