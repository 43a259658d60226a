-- ingestd's journal position per client id (issue 15 point 4, docs/scaling.md).
--
-- Several ingestd on one database (members of a share group, INGEST_SHARE_GROUP) each keep
-- their own receive journal (<data dir>/<client id>.journal), so each needs its own committed
-- position: with the one row of ingest_checkpoint, a member restarting after a crash replayed
-- its journal from whatever position another member committed last, and skipped what it had
-- acknowledged and not stored when that position was ahead of its own. A client id without
-- a row replays its whole journal (repeats are duplicates, absorbed by the unique index).
-- The position kept so far goes to the default client id, the one an upgraded ingestd
-- without INGEST_CLIENT_ID runs under; ingest_checkpoint stays, unused.
CREATE TABLE ingest_checkpoints (
    client_id      TEXT    PRIMARY KEY,
    journal_gen    INTEGER NOT NULL,
    journal_offset INTEGER NOT NULL
);
INSERT INTO ingest_checkpoints (client_id, journal_gen, journal_offset)
SELECT 'coldchain-ingestd', journal_gen, journal_offset FROM ingest_checkpoint WHERE id = 1;
