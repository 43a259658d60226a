-- readings_5m and readings_30m: room on every page for the batch insert's updates, so that
-- they are HOT (issue 14, ingest cost; schema/pg/0002 did the same for devices).
--
-- Every batch updates the current 5- and 30-minute bucket of each cell it has readings for
-- (schema/pg/ingest.sql, ON CONFLICT DO UPDATE): a bucket row gets a new version per batch
-- until its period ends. Those rows are the newest, so they sit on the last pages, which
-- the new buckets' inserts fill up; with the default fillfactor (100) the new version
-- rarely fits on its page and the update is a cold one: a new entry in the primary key's
-- index, and the old version left for VACUUM. Measured by tools/bench_store.c (100 cells,
-- a batch a minute): 25 % of readings_5m's updates were HOT before, and readings_30m's
-- 89 %. The updated columns are not indexed, so with free space on the page they can all
-- be HOT. The tables are small (288 + 48 rows per cell and day), so the space is cheap.
-- Pages written before this migration keep their layout until rewritten.
ALTER TABLE readings_5m SET (fillfactor = 50);
ALTER TABLE readings_30m SET (fillfactor = 50);

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (6, '0006_rollups_fillfactor', floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint);
