/* cc_rollup_math.h - the exact rollup terms of a temperature, shared by the write side
 * (store/cc_store_rollup.c) and the read side (api/cc_query.h); docs/queries.md.
 *
 * Numbers are defined so that the rollups and the raw rows give the same answer bit for
 * bit, whatever the order readings arrived in:
 *  - sums of temperatures are sums of integers, cc_query_temp_q(t) = round(t * 2^20);
 *    avg = sum_q / 2^20 / count;
 *  - the mean kinetic temperature sums the integers round(exp(-ΔH/R / T) * 2^120)
 *    exactly in 128 bits (two 62-bit limbs in the rollup tables).
 * The functions keep their cc_query_ names: the read side, its tests and the docs name
 * them so. Pure (libm only, no database): any thread. */
#ifndef CC_ROLLUP_MATH_H
#define CC_ROLLUP_MATH_H

#include <stdint.h>

#define CC_ROLLUP_BUCKET_MS 300000LL  /* readings_5m bucket: 5 minutes */
#define CC_ROLLUP_COARSE_MS 1800000LL /* readings_30m bucket: 30 minutes */
#define CC_QUERY_TEMP_SHIFT 20        /* sum_q = Σ round(t * 2^20) */
#define CC_QUERY_MKT_SHIFT 120        /* mkt terms: round(exp(-ΔH/R/T) * 2^120) */
#define CC_QUERY_MKT_LIMB_BITS 62     /* mkt_hi * 2^62 + mkt_lo */
#define CC_MKT_DH_R_K 10000.0         /* ΔH/R of USP <1160>, kelvin */
#define CC_KELVIN_OFFSET 273.15       /* °C -> K */

/* The bucket of ts (epoch ms): ts floored to a multiple of unit (> 0), also below 1970. */
int64_t cc_rollup_bucket(int64_t ts, int64_t unit);
/* Rollup terms of one temperature (°C). Pure; the same value on every path. */
int64_t cc_query_temp_q(double t);
/* The MKT term of t as two limbs: hi * 2^62 + lo, lo < 2^62; 0 for a non-finite t or
 * one at or below absolute zero. */
void cc_query_mkt_q(double t, uint64_t *hi, uint64_t *lo);
/* Mean temperature of sum_q over count readings, °C (0 when count <= 0). */
double cc_query_avg(int64_t sum_q, int64_t count);
/* Mean kinetic temperature (°C) of count readings whose term sum is hi * 2^62 + lo
 * (0 when count <= 0 or the sum is 0). */
double cc_query_mkt(uint64_t hi, uint64_t lo, int64_t count);

#endif
