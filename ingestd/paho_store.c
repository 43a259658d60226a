/* paho_store.c - Paho persistence over cc_kvlog (see paho_store.h). */
#include "paho_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cc_log.h"
#include "cc_rc.h"
#include "disk.h"

/* Paho's persistence callbacks: 0 is success, MQTTCLIENT_PERSISTENCE_ERROR otherwise. */
static int p_open(void **handle, const char *client_id, const char *server_uri, void *context)
{
    (void)client_id;
    (void)server_uri;
    *handle = context;
    return 0;
}

static int p_close(void *handle)
{
    (void)handle; /* ingestd owns the store and closes it after the client */
    return 0;
}

/* After a failed write: reopens the log, which drops a torn tail and loads the same
 * entries the old map holds (only successful writes reach the map). 1 if the disk guard
 * is in the full state (the write is then worth one more try). */
static int after_failure(struct ingest_paho_store *s, int err)
{
    struct cc_kvlog *fresh = NULL;
    int full = ingest_disk_failed(s->disk, "MQTT client store", err);

    full = ingest_disk_check(s->disk, "MQTT client store") || full;
    if (cc_kvlog_open(s->path, &fresh) == CC_OK) {
        cc_kvlog_close(s->kv);
        s->kv = fresh;
    }
    return full;
}

static int p_put(void *handle, char *key, int n, char *bufs[], int lens[])
{
    struct ingest_paho_store *s = handle;
    int rc = cc_kvlog_put(s->kv, key, n, bufs, lens);

    if (rc == CC_ERR_IO && after_failure(s, errno))
        rc = cc_kvlog_put(s->kv, key, n, bufs, lens);
    if (rc != CC_OK)
        cc_log_error("paho_store_put_failed", "%s: %s; the message is held in memory only", key,
                     cc_rc_code(rc));
    return rc == CC_OK ? 0 : MQTTCLIENT_PERSISTENCE_ERROR;
}

static int p_get(void *handle, char *key, char **buf, int *len)
{
    struct ingest_paho_store *s = handle;
    return cc_kvlog_get(s->kv, key, buf, len) == CC_OK ? 0 : MQTTCLIENT_PERSISTENCE_ERROR;
}

static int p_remove(void *handle, char *key)
{
    struct ingest_paho_store *s = handle;
    int rc = cc_kvlog_remove(s->kv, key);

    if (rc == CC_ERR_IO && after_failure(s, errno))
        rc = cc_kvlog_remove(s->kv, key);
    return (rc == CC_OK || rc == CC_ERR_NOT_FOUND) ? 0 : MQTTCLIENT_PERSISTENCE_ERROR;
}

static int p_keys(void *handle, char ***keys, int *n)
{
    struct ingest_paho_store *s = handle;
    return cc_kvlog_keys(s->kv, keys, n) == CC_OK ? 0 : MQTTCLIENT_PERSISTENCE_ERROR;
}

static int p_clear(void *handle)
{
    struct ingest_paho_store *s = handle;
    return cc_kvlog_clear(s->kv) == CC_OK ? 0 : MQTTCLIENT_PERSISTENCE_ERROR;
}

static int p_containskey(void *handle, char *key)
{
    struct ingest_paho_store *s = handle;
    return cc_kvlog_contains(s->kv, key) ? 0 : MQTTCLIENT_PERSISTENCE_ERROR;
}

void ingest_paho_store_init(MQTTClient_persistence *p, struct ingest_paho_store *s)
{
    memset(p, 0, sizeof(*p));
    p->context = s;
    p->popen = p_open;
    p->pclose = p_close;
    p->pput = p_put;
    p->pget = p_get;
    p->premove = p_remove;
    p->pkeys = p_keys;
    p->pclear = p_clear;
    p->pcontainskey = p_containskey;
}

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
