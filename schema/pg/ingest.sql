-- The PostgreSQL store's batch insert of readings (issue 14 point 3; docs/postgresql.md
-- "The batch insert"). Not a migration: the PG store (cc_store_pg.c, which gets this text
-- embedded at build time as cc_pg_ingest_sql) prepares this one statement and runs it once
-- per batch (at most CC_PG_INSERT_ROWS_MAX readings), in one round trip:
--   1. store the batch's readings, ON CONFLICT (device_id, ts) DO NOTHING: a reading
--      already stored (redelivery, journal replay) is skipped, as INSERT OR IGNORE is;
--   2. return the key (device_id, ts) of every reading it stored, so the caller knows
--      which ones are new (alerts, devices.newest_ts, and the rollups: only the rows
--      stored feed readings_5m and readings_30m, which the store upserts next in the same
--      transaction from the sums it computes itself, cc_store_pg_rollup.c).
--
-- Parameters: equal-length arrays, element i being reading i of the batch
--   $1  bigint[]            device_id
--   $2  bigint[]            cold_cell_id (the device's cell)
--   $3  bigint[]            ts (epoch ms)
--   $4  double precision[]  temperature (°C)
--   $5  double precision[]  humidity (NULL elements for none)
--   $6  integer[]           power_status, 0/1/NULL
--   $7  integer[]           door_status, 0/1/NULL
--   $8  double precision[]  battery_level
--   $9  bigint[]            received_at (epoch ms)
-- Arrays of unequal length pad with NULLs and fail on NOT NULL: nothing is stored.
--
-- The caller sends the batch in key order with the duplicates inside it already left out
-- (the first occurrence of a (device_id, ts) kept, as SQLite's one-by-one INSERT OR IGNORE
-- keeps it). A duplicate sent anyway is still skipped by ON CONFLICT (the rows are
-- inserted in array order, so the first one wins) and its key returned once. Doing that
-- dedup, the ordering and the rollup sums in the client instead of over CTEs here saves
-- the server a sort, two hash joins, the numeric MKT arithmetic and several copies of
-- every row (docs/postgresql.md, "Third pass").
--
-- A reading whose device does not exist (deleted meanwhile) is not stored and not
-- returned; a lock on the batch's devices stands in for readings' foreign key (one lock
-- per device, not a check per row): the device cannot be deleted before this transaction
-- ends. The lock is FOR NO KEY UPDATE, not the FOR KEY SHARE a foreign key needs, because
-- the same transaction updates these devices next (cc_store_devices_seen); on the ingest
-- path cc_store_devices_by_serial has locked them already, and this step then writes
-- nothing. Lock order: devices in id order; readings are inserted in key order.
WITH b AS (
    SELECT *
    FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::double precision[],
                $5::double precision[], $6::integer[], $7::integer[], $8::double precision[],
                $9::bigint[])
         WITH ORDINALITY AS b (device_id, cold_cell_id, ts, temperature, humidity,
                               power_status, door_status, battery_level, received_at, ord)
),
dev AS (
    SELECT d.id FROM devices d WHERE d.id IN (SELECT device_id FROM b)
    ORDER BY d.id
    FOR NO KEY UPDATE
)
INSERT INTO readings (device_id, cold_cell_id, ts, temperature, humidity, power_status,
                      door_status, battery_level, received_at)
SELECT b.device_id, b.cold_cell_id, b.ts, b.temperature, b.humidity, b.power_status,
       b.door_status, b.battery_level, b.received_at
FROM b
WHERE b.device_id IN (SELECT id FROM dev)
ORDER BY b.ord
ON CONFLICT (device_id, ts) DO NOTHING
RETURNING device_id, ts;
