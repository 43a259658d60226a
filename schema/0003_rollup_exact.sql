-- Exact rollup sums and the time span of each five-minute bucket (docs/queries.md).
--
-- readings_5m.sum_temp and mkt_sum (0001) are floating-point sums whose last bits depend
-- on the order readings arrived in. The readings query needs answers equal to the raw
-- computation whatever that order, so each bucket also keeps integer sums:
--   sum_q            = Σ round(t · 2^20)                 (t in °C)
--   mkt_hi, mkt_lo   = Σ round(exp(-10000 / T) · 2^120)  (T in K) = mkt_hi · 2^62 + mkt_lo,
--                      0 <= mkt_lo < 2^62, carried in the ingest upsert
-- and the first and last reading times, from which minutesOutOfRange chains buckets.
-- Written by cc_query_rollup_add in the ingest transaction; cc_query_rollup_rebuild
-- recomputes buckets from raw readings.
ALTER TABLE readings_5m ADD COLUMN sum_q INTEGER NOT NULL DEFAULT 0;
ALTER TABLE readings_5m ADD COLUMN mkt_hi INTEGER NOT NULL DEFAULT 0;
ALTER TABLE readings_5m ADD COLUMN mkt_lo INTEGER NOT NULL DEFAULT 0;
ALTER TABLE readings_5m ADD COLUMN first_ts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE readings_5m ADD COLUMN last_ts INTEGER NOT NULL DEFAULT 0;

-- Thirty-minute rollups per cell with the same exact columns, kept beside readings_5m
-- in the same upsert: a 7- or 30-day query reads 48 rows a day instead of 288, and
-- goes down to the five-minute rows only where a half hour straddles a threshold.
CREATE TABLE readings_30m (
    cold_cell_id INTEGER NOT NULL REFERENCES cold_cells (id) ON DELETE CASCADE,
    bucket_ts    INTEGER NOT NULL,                  -- multiple of 1800000
    min_temp     REAL    NOT NULL,
    max_temp     REAL    NOT NULL,
    count        INTEGER NOT NULL,
    sum_q        INTEGER NOT NULL,
    mkt_hi       INTEGER NOT NULL,
    mkt_lo       INTEGER NOT NULL,
    first_ts     INTEGER NOT NULL,
    last_ts      INTEGER NOT NULL,
    PRIMARY KEY (cold_cell_id, bucket_ts)
) WITHOUT ROWID;
