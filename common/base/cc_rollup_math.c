/* cc_rollup_math.c - the exact rollup terms, see cc_rollup_math.h and docs/queries.md. */
#include "cc_rollup_math.h"

#include <math.h>

#define LIMB_MASK ((((uint64_t)1) << CC_QUERY_MKT_LIMB_BITS) - 1)
#define MKT_TERM_CAP 0x1p110 /* no single term above 2^110 (only for T far above 150 °C) */

typedef unsigned __int128 u128;

int64_t cc_rollup_bucket(int64_t ts, int64_t unit)
{
    int64_t r = ts % unit;

    return r < 0 ? ts - r - unit : ts - r;
}

int64_t cc_query_temp_q(double t)
{
    /* |t| <= 150 after validation: |t * 2^20| < 2^28, exact and far from overflow. */
    if (!isfinite(t) || fabs(t) > 1e9)
        return 0;
    return (int64_t)llround(ldexp(t, CC_QUERY_TEMP_SHIFT));
}

void cc_query_mkt_q(double t, uint64_t *hi, uint64_t *lo)
{
    double k = t + CC_KELVIN_OFFSET;
    double x;
    u128 v;

    if (!isfinite(k) || k <= 0.0) {
        *hi = 0;
        *lo = 0;
        return;
    }
    /* Between -100 and 150 °C the term is 8e-26 .. 5.5e-11: scaled by 2^120 it is an
     * integer of 37 to 86 bits, so rounding loses nothing a double still holds. */
    x = round(ldexp(exp(-CC_MKT_DH_R_K / k), CC_QUERY_MKT_SHIFT));
    if (x > MKT_TERM_CAP)
        x = MKT_TERM_CAP;
    v = (u128)x;
    *hi = (uint64_t)(v >> CC_QUERY_MKT_LIMB_BITS);
    *lo = (uint64_t)(v & LIMB_MASK);
}

double cc_query_avg(int64_t sum_q, int64_t count)
{
    if (count <= 0)
        return 0.0;
    return ldexp((double)sum_q, -CC_QUERY_TEMP_SHIFT) / (double)count;
}

double cc_query_mkt(uint64_t hi, uint64_t lo, int64_t count)
{
    u128 v = ((u128)hi << CC_QUERY_MKT_LIMB_BITS) + lo;
    double mean_ln;

    if (count <= 0 || v == 0)
        return 0.0;
    /* ln(mean) = ln(sum) - 120 ln 2 - ln(count). */
    mean_ln = log((double)v) - CC_QUERY_MKT_SHIFT * M_LN2 - log((double)count);
    return CC_MKT_DH_R_K / -mean_ln - CC_KELVIN_OFFSET;
}
