-- devices: half of every page left free (PostgreSQL only; SQLite updates rows in place).
--
-- The ingest path updates every device of a batch once per batch (last_seen_at,
-- newest_ts, status: cc_store_devices_seen). None of those columns is indexed, so the new
-- row version can stay on its page as a HOT update (no index entry in devices' three
-- indexes, pruned without VACUUM) when the page has room; a full page (fillfactor 100,
-- the default) makes every update a cold one. Measured by tools/bench_store.c (1,000
-- devices, batches of 1,000 readings): the batch's devices UPDATE went from 27 ms to
-- 7 ms. Pages written before this migration keep their layout until rewritten (VACUUM
-- FULL); devices is small, so that is cheap if wanted.
ALTER TABLE devices SET (fillfactor = 50);

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (2, '0002_devices_fillfactor',
        floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint);
