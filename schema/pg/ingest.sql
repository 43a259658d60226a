-- The PostgreSQL store's batch insert of readings (issue 14 point 3; docs/postgresql.md
-- "The batch insert"). Not a migration: the PG store (cc_store_pg.c, which gets this text
-- embedded at build time as cc_pg_ingest_sql) prepares this one statement
-- and runs it once per batch (at most CC_MAX_BATCH readings), in one round trip:
--   1. store the batch's readings, ON CONFLICT (device_id, ts) DO NOTHING: a reading
--      already stored (redelivery, journal replay) is skipped, as INSERT OR IGNORE is;
--   2. upsert readings_5m and readings_30m from ONLY the rows step 1 inserted (its
--      RETURNING feeds the rollup upserts through CTEs), with the exact sums of
--      base/cc_rollup_math.c and store/cc_store_rollup.c's upsert, bit for bit;
--   3. return the position (1-based) in the batch of every reading it stored, so the
--      caller knows which ones are new (alerts, devices.newest_ts) and which duplicates.
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
--   $10 bigint[]            mkt_hi  } cc_query_mkt_q(temperature) computed by the client:
--   $11 bigint[]            mkt_lo  } hi * 2^62 + lo, 0 <= lo < 2^62
-- Arrays of unequal length pad with NULLs and fail on NOT NULL: nothing is stored.
--
-- Why the client sends the MKT term: it is round(exp(-10000 / T) * 2^120), and the read
-- side (api/cc_query) recomputes it in C from raw readings where a bucket is cut, so the
-- rollup must hold the client's exp(), not the server's (another libm may differ in the
-- last bit). sum_q needs no transcendental function: coldchain_temp_q (0001_init.sql)
-- computes llround(t * 2^20) with exact operations only.
--
-- Duplicates inside the batch: the first occurrence of a (device_id, ts) is the one
-- stored, as SQLite's one-by-one INSERT OR IGNORE does. A reading whose device does not
-- exist (deleted meanwhile) is not stored and not returned; a lock on the batch's devices
-- stands in for readings' foreign key (one lock per device, not a check per row): the
-- device cannot be deleted before this transaction ends. The lock is FOR NO KEY UPDATE,
-- not the FOR KEY SHARE a foreign key needs, because the same transaction updates these
-- devices next (cc_store_devices_seen: last_seen_at, newest_ts), whose own lock step then
-- finds the rows already locked by us and writes nothing: one tuple lock and its WAL
-- record per device and batch fewer (measured: docs/postgresql.md "The batch insert").
-- The cost: a second writer of the same devices waits here instead of at that update.
--
-- Lock order: rows are inserted and buckets upserted in key order, so two writers whose
-- batches share devices or buckets wait for each other instead of deadlocking.
WITH batch AS (
    SELECT DISTINCT ON (b.device_id, b.ts) b.*
    FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::double precision[],
                $5::double precision[], $6::integer[], $7::integer[], $8::double precision[],
                $9::bigint[], $10::bigint[], $11::bigint[])
         WITH ORDINALITY AS b (device_id, cold_cell_id, ts, temperature, humidity,
                               power_status, door_status, battery_level, received_at,
                               mkt_hi, mkt_lo, ord)
    ORDER BY b.device_id, b.ts, b.ord
),
dev AS (
    SELECT d.id FROM devices d WHERE d.id IN (SELECT device_id FROM batch)
    ORDER BY d.id
    FOR NO KEY UPDATE
),
ins AS (
    INSERT INTO readings (device_id, cold_cell_id, ts, temperature, humidity, power_status,
                          door_status, battery_level, received_at)
    SELECT b.device_id, b.cold_cell_id, b.ts, b.temperature, b.humidity, b.power_status,
           b.door_status, b.battery_level, b.received_at
    FROM batch b JOIN dev ON dev.id = b.device_id
    ORDER BY b.device_id, b.ts
    ON CONFLICT (device_id, ts) DO NOTHING
    RETURNING device_id, ts
),
new AS (
    SELECT b.* FROM ins JOIN batch b ON b.device_id = ins.device_id AND b.ts = ins.ts
),
terms AS (
    SELECT cold_cell_id, ts, temperature,
           ts - ((ts % 300000) + 300000) % 300000 AS b5,      -- CC_ROLLUP_BUCKET_MS, floored
           coldchain_temp_q(temperature) AS q,
           mkt_hi::numeric * 4611686018427387904 + mkt_lo AS mkt,
           -- 0001's floating MKT sum, as acc_add adds it (order-dependent, read by nothing);
           -- exp() of less than -745 is an underflow error here, 0 in C.
           CASE WHEN temperature + 273.15 > 15
                THEN exp(-10000 / (temperature + 273.15)) ELSE 0 END AS mkt_f
    FROM new
),
-- The rows aggregated once, per 5-minute bucket; the 30-minute rollup sums these few
-- rows instead of the batch's readings again. Exact: a 30-minute bucket is the union of
-- its 5-minute ones (1800000 is a multiple of 300000, both floored from 0), and min, max,
-- count, sum_q, the numeric MKT sum, first and last add up over a union. (sum_temp and
-- mkt_sum, the doubles, are only in readings_5m, summed over the readings as before.)
agg5 AS (
    SELECT cold_cell_id, b5,
           b5 - ((b5 % 1800000) + 1800000) % 1800000 AS b30,  -- CC_ROLLUP_COARSE_MS
           min(temperature) AS min_t, max(temperature) AS max_t, sum(temperature) AS sum_t,
           count(*) AS n, sum(mkt_f) AS mkt_f, sum(q) AS q, sum(mkt) AS mkt,
           min(ts) AS first_ts, max(ts) AS last_ts
    FROM terms GROUP BY cold_cell_id, b5
),
up5 AS (
    INSERT INTO readings_5m (cold_cell_id, bucket_ts, min_temp, max_temp, sum_temp, count,
                             mkt_sum, sum_q, mkt_hi, mkt_lo, first_ts, last_ts)
    SELECT cold_cell_id, b5, min_t, max_t, sum_t, n, mkt_f, q,
           div(mkt, 4611686018427387904), mod(mkt, 4611686018427387904), first_ts, last_ts
    FROM agg5
    ORDER BY cold_cell_id, b5
    -- The MKT sum is two 62-bit limbs: lo + lo' < 2^63 never overflows, and its carry goes
    -- to hi. Every right-hand side sees the old row, so mkt_hi sees the old mkt_lo.
    ON CONFLICT (cold_cell_id, bucket_ts) DO UPDATE SET
        min_temp = least(readings_5m.min_temp, excluded.min_temp),
        max_temp = greatest(readings_5m.max_temp, excluded.max_temp),
        sum_temp = readings_5m.sum_temp + excluded.sum_temp,
        count = readings_5m.count + excluded.count,
        mkt_sum = readings_5m.mkt_sum + excluded.mkt_sum,
        sum_q = readings_5m.sum_q + excluded.sum_q,
        mkt_hi = readings_5m.mkt_hi + excluded.mkt_hi
                 + ((readings_5m.mkt_lo + excluded.mkt_lo) >> 62),
        mkt_lo = (readings_5m.mkt_lo + excluded.mkt_lo) & 4611686018427387903,
        first_ts = least(readings_5m.first_ts, excluded.first_ts),
        last_ts = greatest(readings_5m.last_ts, excluded.last_ts)
),
up30 AS (
    INSERT INTO readings_30m (cold_cell_id, bucket_ts, min_temp, max_temp, count, sum_q,
                              mkt_hi, mkt_lo, first_ts, last_ts)
    SELECT cold_cell_id, b30, min(min_t), max(max_t), sum(n), sum(q),
           div(sum(mkt), 4611686018427387904), mod(sum(mkt), 4611686018427387904),
           min(first_ts), max(last_ts)
    FROM agg5 GROUP BY cold_cell_id, b30
    ORDER BY cold_cell_id, b30
    ON CONFLICT (cold_cell_id, bucket_ts) DO UPDATE SET
        min_temp = least(readings_30m.min_temp, excluded.min_temp),
        max_temp = greatest(readings_30m.max_temp, excluded.max_temp),
        count = readings_30m.count + excluded.count,
        sum_q = readings_30m.sum_q + excluded.sum_q,
        mkt_hi = readings_30m.mkt_hi + excluded.mkt_hi
                 + ((readings_30m.mkt_lo + excluded.mkt_lo) >> 62),
        mkt_lo = (readings_30m.mkt_lo + excluded.mkt_lo) & 4611686018427387903,
        first_ts = least(readings_30m.first_ts, excluded.first_ts),
        last_ts = greatest(readings_30m.last_ts, excluded.last_ts)
)
SELECT ord FROM new ORDER BY ord;
