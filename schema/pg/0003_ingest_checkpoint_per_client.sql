-- ingestd's journal position per client id: schema/0008_ingest_checkpoint_per_client.sql
-- says why (several ingestd, one journal each, one committed position each).
CREATE TABLE ingest_checkpoints (
    client_id      text   PRIMARY KEY,
    journal_gen    bigint NOT NULL,
    journal_offset bigint NOT NULL
);
INSERT INTO ingest_checkpoints (client_id, journal_gen, journal_offset)
SELECT 'coldchain-ingestd', journal_gen, journal_offset FROM ingest_checkpoint WHERE id = 1;

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (3, '0003_ingest_checkpoint_per_client',
        floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint);
