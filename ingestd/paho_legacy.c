/* paho_legacy.c - recovery of a Paho store left by an older ingestd (see paho_legacy.h). */
#include "paho_legacy.h"

#include <stdlib.h>
#include <string.h>

#include "cc_log.h"
#include "cc_rc.h"

int ingest_parse_publish(const char *pkt, size_t n, struct ingest_publish *out)
{
    const unsigned char *p = (const unsigned char *)pkt;
    size_t i = 1, rem = 0, mult = 1, tlen;
    int qos;

    if (n < 2 || (p[0] >> 4) != 3) /* packet type 3: PUBLISH */
        return CC_ERR_VALIDATION;
    qos = (p[0] >> 1) & 3;
    do { /* remaining length: 1-4 bytes, 7 bits each */
        if (i >= n || i > 4)
            return CC_ERR_VALIDATION;
        rem += (p[i] & 127u) * mult;
        mult *= 128;
    } while (p[i++] & 128u);
    if (rem != n - i || rem < 2)
        return CC_ERR_VALIDATION;
    tlen = (size_t)p[i] << 8 | p[i + 1];
    i += 2;
    if (tlen == 0 || tlen > n - i)
        return CC_ERR_VALIDATION;
    out->topic = pkt + i;
    out->topic_len = tlen;
    i += tlen;
    if (qos > 0) {
        if (n - i < 2)
            return CC_ERR_VALIDATION;
        i += 2; /* packet identifier */
    }
    out->payload = pkt + i;
    out->len = n - i;
    return CC_OK;
}

int ingest_recover_received(struct cc_kvlog *kv, struct cc_journal *j, int64_t now_ms,
                            cc_journal_fn fn, void *ctx, int *count)
{
    char **keys = NULL;
    int n = 0, rc, found = 0;

    rc = cc_kvlog_keys(kv, &keys, &n);
    if (rc != CC_OK)
        return rc;
    for (int k = 0; k < n && rc == CC_OK; k++) {
        char *pkt = NULL;
        int len = 0;
        struct ingest_publish pub;
        struct cc_journal_pos pos;

        if (strncmp(keys[k], "r-", 2) != 0)
            continue;
        if (cc_kvlog_get(kv, keys[k], &pkt, &len) != CC_OK)
            continue;
        if (ingest_parse_publish(pkt, (size_t)len, &pub) != CC_OK) {
            cc_log_error("recover_bad_packet", "stored message %s is not a PUBLISH packet",
                         keys[k]);
            free(pkt);
            continue;
        }
        rc = cc_journal_append(j, now_ms, pub.topic, pub.topic_len, pub.payload, pub.len, &pos);
        if (rc == CC_OK)
            rc = fn(ctx, now_ms, pub.topic, pub.topic_len, pub.payload, pub.len, pos);
        if (rc == CC_OK)
            found++;
        free(pkt);
    }
    for (int k = 0; k < n; k++)
        free(keys[k]);
    free(keys);
    *count = found;
    return rc;
}
