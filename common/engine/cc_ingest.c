/* cc_ingest.c - the one ingestion path of MQTT and HTTP, see cc_ingest.h.
 *
 * A batch is stored in runs: consecutive readings messages, up to
 * CC_INGEST_RUN_READINGS_MAX readings. A run validates its messages (no database), looks
 * its devices up, inserts its readings, loads the alert state of its devices, applies
 * the readings to it in order and marks the devices seen: five store calls per run, not
 * per message. A status message or a bad topic is handled alone between runs, since it
 * changes what a later message of its device sees (its status). Each run looks its
 * devices up again, so it starts from what the runs before it committed. */
#include "cc_ingest.h"

#include <stdlib.h>
#include <string.h>

#include "cc_alert.h"
#include "cc_error.h"
#include "cc_ingest_cache.h"
#include "cc_rc.h"
#include "cc_validate.h"

#define TOPIC_PREFIX "devices/"

enum topic_kind { TOPIC_READINGS, TOPIC_STATUS };

/* A valid reading and its position in the payload, for a stable sort by ts. */
struct item {
    struct cc_reading r;
    size_t pos;
};

static int item_cmp(const void *a, const void *b)
{
    const struct item *x = a, *y = b;

    if (x->r.ts_ms != y->r.ts_ms)
        return x->r.ts_ms < y->r.ts_ms ? -1 : 1;
    return x->pos < y->pos ? -1 : (x->pos > y->pos);
}

void cc_ingest_result_clear(struct cc_ingest_result *res)
{
    if (res == NULL)
        return;
    cJSON_Delete(res->error);
    memset(res, 0, sizeof *res);
}

/* Number of payload items named by the details of a validation error: "[3].ts" and
 * "[3].temperature" are one item; a field without "[i]" means the payload was one
 * object. Details come in item order. */
static size_t refused_items(const cJSON *err)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(err, "error");
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(e, "details");
    const cJSON *d;
    size_t n = 0;
    unsigned long prev = 0;

    cJSON_ArrayForEach(d, details)
    {
        const char *f = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "field"));
        unsigned long i;

        if (f == NULL || f[0] != '[')
            return 1;
        i = strtoul(f + 1, NULL, 10);
        if (n == 0 || i != prev)
            n++;
        prev = i;
    }
    return n > 0 ? n : 1;
}

/* Sets res->error to a new error object. CC_OK or CC_ERR_NOMEM. */
static int set_error(struct cc_ingest_result *res, int code, const char *message)
{
    cJSON_Delete(res->error);
    res->error = cc_error_new(code, message);
    return res->error != NULL ? CC_OK : CC_ERR_NOMEM;
}

/* Parses "devices/{serial}/readings" or "devices/{serial}/status" strictly: the
 * serial has 1..CC_SERIAL_MAX bytes, none of them '/', '+', '#' or a control
 * character. 1 (and serial, kind) on a match, else 0. */
static int parse_topic(const char *topic, char serial[CC_SERIAL_MAX + 1], int *kind)
{
    const char *s, *slash;
    size_t n;

    if (topic == NULL || strncmp(topic, TOPIC_PREFIX, strlen(TOPIC_PREFIX)) != 0)
        return 0;
    s = topic + strlen(TOPIC_PREFIX);
    slash = strchr(s, '/');
    if (slash == NULL)
        return 0;
    n = (size_t)(slash - s);
    if (n < 1 || n > CC_SERIAL_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '+' || c == '#' || c < 0x20 || c == 0x7F)
            return 0;
    }
    if (strcmp(slash + 1, "readings") == 0)
        *kind = TOPIC_READINGS;
    else if (strcmp(slash + 1, "status") == 0)
        *kind = TOPIC_STATUS;
    else
        return 0;
    memcpy(serial, s, n);
    serial[n] = '\0';
    return 1;
}

/* Handles a status message. CC_OK (res->error set if refused) or a database code. */
static int ingest_status(struct cc_store *st, const char *serial, const char *payload, size_t len,
                         int64_t received_at, struct cc_ingest_result *res)
{
    struct cc_device dev;
    char firmware[CC_FIRMWARE_MAX + 1];
    cJSON *err = NULL;
    int online = 0;
    int rc;

    rc = cc_store_device_by_serial(st, serial, &dev);
    if (rc == CC_ERR_NOT_FOUND) {
        res->rejected = 1;
        return set_error(res, CC_ERR_NOT_FOUND, "device not found");
    }
    if (rc != CC_OK)
        return rc;
    rc = cc_validate_status(payload, len, &online, firmware, &err);
    if (rc != CC_OK) {
        if (err == NULL)
            return CC_ERR_NOMEM;
        res->rejected = 1;
        res->error = err;
        return CC_OK;
    }
    rc = cc_store_device_status(st, dev.id, online, firmware, received_at);
    if (rc == CC_ERR_NOT_FOUND)
        rc = CC_ERR_DB; /* looked up a moment ago in the same transaction */
    if (rc == CC_OK) {
        struct cc_ingest_cache *cache = cc_ingest_cache_for(st);
        struct cc_ingest_cached *e = cache != NULL ? cc_ingest_cache_get(cache, serial) : NULL;

        if (e != NULL) /* the engine reads no status, but the copy stays the row's */
            strcpy(e->dev.status, online ? "ONLINE" : "OFFLINE");
    }
    return rc;
}

/* A readings message as a run sees it: MQTT's cc_ingest_msg, or HTTP's stand-in. */
struct ingest_msg_view {
    struct cc_ingest_msg *m;
    const char *serial;
    int mode; /* enum cc_ingest_mode */
    int rc;   /* the HTTP answer's code (cc_ingest_readings) */
};

/* What a run knows about one of its messages. */
struct work {
    int validated; /* vrc, rs, n, err hold cc_validate_readings' answer */
    int vrc;
    struct cc_reading *rs; /* valid readings in payload order */
    size_t n;
    cJSON *err;         /* refused items (or the whole payload when vrc != CC_OK) */
    struct item *items; /* rs sorted by ts, when the message is stored */
    size_t row0;        /* its first row in the run's rows */
    size_t acc;         /* its device's accumulator */
    int stored;         /* device found and readings valid enough to store */
};

/* One device of a run: where its alert state and newest reading stand. */
struct acc {
    struct cc_device cur; /* has_newest/newest_ts advance as readings are applied */
    struct cc_alert_state state;
    int64_t seen_at;
};

static void work_free(struct work *w)
{
    free(w->rs);
    free(w->items);
    cJSON_Delete(w->err);
    memset(w, 0, sizeof *w);
}

static void validate(struct ingest_msg_view *v, struct work *w)
{
    struct cc_ingest_msg *m = v->m;

    w->validated = 1;
    w->vrc = cc_validate_readings(m->payload, m->len, m->received_at, &w->rs, &w->n, NULL, &w->err);
}

/* Readings the run would hold for w (0 when it stores none). */
static size_t run_weight(const struct work *w)
{
    return w->vrc == CC_OK ? w->n : 0;
}

/* A message of a run keyed by its device, to gather the messages of one device. */
struct keyed {
    int64_t device_id;
    size_t i;
};

static int by_device(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;

    if (x->device_id != y->device_id)
        return x->device_id < y->device_id ? -1 : 1;
    return x->i < y->i ? -1 : (x->i > y->i);
}

/* Decides what happens to message i of the run once its device is known: the refusal
 * to report, or the sorted readings to store. CC_OK or CC_ERR_NOMEM. */
static int settle(struct ingest_msg_view *v, struct work *w, int found)
{
    struct cc_ingest_result *res = &v->m->res;

    if (!found) {
        res->rejected = 1;
        v->rc = CC_ERR_NOT_FOUND;
        return set_error(res, CC_ERR_NOT_FOUND, "device not found");
    }
    if (w->vrc != CC_OK) {
        /* Not JSON, or a wrong shape as a whole (or out of memory: err is NULL). */
        if (w->err == NULL)
            return CC_ERR_NOMEM;
        res->rejected = 1;
        res->error = w->err;
        w->err = NULL;
        v->rc = w->vrc;
        return CC_OK;
    }
    if (w->n == 0 && w->err == NULL) {
        /* cc_validate_readings never answers so; kept safe all the same. */
        res->rejected = 1;
        v->rc = CC_ERR_VALIDATION;
        return set_error(res, CC_ERR_VALIDATION, "no readings");
    }
    if (w->err != NULL && (v->mode == CC_INGEST_ALL_OR_NOTHING || w->n == 0)) {
        res->rejected = w->n + refused_items(w->err);
        res->error = w->err;
        w->err = NULL;
        v->rc = CC_ERR_VALIDATION;
        return CC_OK;
    }
    w->items = malloc(w->n * sizeof *w->items);
    if (w->items == NULL)
        return CC_ERR_NOMEM;
    for (size_t i = 0; i < w->n; i++) {
        w->items[i].r = w->rs[i];
        w->items[i].pos = i;
    }
    /* Alert state follows timestamps, not arrival: a backfill array may be in any
     * order. */
    qsort(w->items, w->n, sizeof *w->items, item_cmp);
    w->stored = 1;
    return CC_OK;
}

/* cc_store_devices_by_serial through the cache: the serials it holds are answered from
 * it, the others looked up in one call and added. */
static int devices_lookup(struct cc_store *st, struct cc_ingest_cache *cache, const char **serials,
                          size_t k, struct cc_device *devs, unsigned char *found)
{
    const char **miss;
    size_t *at, nmiss = 0;
    struct cc_device *mdevs;
    unsigned char *mfound;
    int rc = CC_ERR_NOMEM;

    if (cache == NULL)
        return cc_store_devices_by_serial(st, serials, k, devs, found);
    miss = malloc(k * sizeof *miss);
    at = malloc(k * sizeof *at);
    mdevs = malloc(k * sizeof *mdevs);
    mfound = malloc(k);
    if (miss == NULL || at == NULL || mdevs == NULL || mfound == NULL)
        goto out;
    for (size_t i = 0; i < k; i++) {
        const struct cc_ingest_cached *e = cc_ingest_cache_get(cache, serials[i]);

        found[i] = e != NULL;
        if (e != NULL) {
            devs[i] = e->dev;
        } else {
            miss[nmiss] = serials[i];
            at[nmiss++] = i;
        }
    }
    rc = nmiss > 0 ? cc_store_devices_by_serial(st, miss, nmiss, mdevs, mfound) : CC_OK;
    for (size_t j = 0; rc == CC_OK && j < nmiss; j++) {
        found[at[j]] = mfound[j];
        if (mfound[j]) {
            devs[at[j]] = mdevs[j];
            cc_ingest_cache_put(cache, &mdevs[j]);
        }
    }
out:
    free(miss);
    free(at);
    free(mdevs);
    free(mfound);
    return rc;
}

/* cc_alert_states_load through the cache: the states it holds are copied, the others
 * loaded in one call. */
static int states_load(struct cc_store *st, struct cc_ingest_cache *cache,
                       const struct cc_device **devs, size_t n, struct cc_alert_state *out)
{
    const struct cc_device **miss;
    size_t *at, nmiss = 0;
    struct cc_alert_state *loaded;
    int rc = CC_ERR_NOMEM;

    if (cache == NULL)
        return cc_alert_states_load(st, devs, n, out);
    miss = malloc((n ? n : 1) * sizeof *miss);
    at = malloc((n ? n : 1) * sizeof *at);
    loaded = malloc((n ? n : 1) * sizeof *loaded);
    if (miss == NULL || at == NULL || loaded == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const struct cc_ingest_cached *e = cc_ingest_cache_get(cache, devs[i]->serial);

        if (e != NULL && e->has_state && e->dev.id == devs[i]->id) {
            out[i] = e->state;
        } else {
            miss[nmiss] = devs[i];
            at[nmiss++] = i;
        }
    }
    rc = nmiss > 0 ? cc_alert_states_load(st, miss, nmiss, loaded) : CC_OK;
    for (size_t j = 0; rc == CC_OK && j < nmiss; j++)
        out[at[j]] = loaded[j];
out:
    free(miss);
    free(at);
    free(loaded);
    return rc;
}

/* After a run stored: its devices as the run left them (newest reading, status, and the
 * alert state of those whose state it loaded and applied readings to). */
static void cache_keep(struct cc_ingest_cache *cache, const struct acc *accs, size_t nacc,
                       const unsigned char *wants)
{
    for (size_t a = 0; a < nacc; a++) {
        struct cc_ingest_cached *e = cc_ingest_cache_put(cache, &accs[a].cur);

        strcpy(e->dev.status, "ONLINE"); /* as cc_store_devices_seen wrote it */
        if (wants[a]) {
            e->state = accs[a].state;
            e->has_state = 1;
        }
    }
}

/* Stores the run v[0..k) (every message validated). CC_OK or CC_ERR_DB / CC_ERR_NOMEM. */
static int store_run(struct cc_store *st, struct ingest_msg_view *v, struct work *ws, size_t k)
{
    const char **serials = NULL;
    struct cc_device *devs = NULL;
    unsigned char *found = NULL, *inserted = NULL, *wants = NULL;
    struct cc_store_row *rows = NULL;
    struct keyed *order = NULL;
    size_t *state_of = NULL;
    struct acc *accs = NULL;
    const struct cc_device **acc_devs = NULL;
    struct cc_store_seen *seen = NULL;
    size_t nrows = 0, nacc = 0, nstate = 0;
    struct cc_ingest_cache *cache = cc_ingest_cache_for(st);
    int rc = CC_ERR_NOMEM;

    serials = malloc(k * sizeof *serials);
    devs = malloc(k * sizeof *devs);
    found = malloc(k);
    order = malloc(k * sizeof *order);
    state_of = malloc(k * sizeof *state_of);
    accs = malloc(k * sizeof *accs);
    acc_devs = malloc(k * sizeof *acc_devs);
    seen = malloc(k * sizeof *seen);
    if (!serials || !devs || !found || !order || !state_of || !accs || !acc_devs || !seen)
        goto out;
    for (size_t i = 0; i < k; i++)
        serials[i] = v[i].serial;
    rc = devices_lookup(st, cache, serials, k, devs, found);
    if (rc != CC_OK)
        goto out;
    for (size_t i = 0; i < k; i++) {
        rc = settle(&v[i], &ws[i], found[i]);
        if (rc != CC_OK)
            goto out;
        if (ws[i].stored) {
            ws[i].row0 = nrows;
            nrows += ws[i].n;
        }
    }

    /* One accumulator per device, in the order of device ids. */
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (ws[i].stored) {
            order[m].device_id = devs[i].id;
            order[m++].i = i;
        }
    }
    qsort(order, m, sizeof *order, by_device);
    for (size_t j = 0; j < m; j++) {
        size_t i = order[j].i;
        if (nacc == 0 || accs[nacc - 1].cur.id != devs[i].id) {
            accs[nacc].cur = devs[i];
            accs[nacc].seen_at = v[i].m->received_at;
            nacc++;
        } else if (v[i].m->received_at > accs[nacc - 1].seen_at) {
            accs[nacc - 1].seen_at = v[i].m->received_at;
        }
        ws[i].acc = nacc - 1;
    }

    rows = malloc((nrows ? nrows : 1) * sizeof *rows);
    inserted = malloc(nrows ? nrows : 1);
    if (rows == NULL || inserted == NULL) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < k; i++) {
        if (!ws[i].stored)
            continue;
        for (size_t j = 0; j < ws[i].n; j++) {
            rows[ws[i].row0 + j].dev = &devs[i];
            rows[ws[i].row0 + j].r = &ws[i].items[j].r;
            rows[ws[i].row0 + j].received_at = v[i].m->received_at;
        }
    }
    rc = cc_store_readings_insert(st, rows, nrows, inserted);
    if (rc != CC_OK)
        goto out;

    /* The alert state of every device with a new reading. */
    wants = calloc(nacc ? nacc : 1, 1);
    if (wants == NULL) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; ws[i].stored && j < ws[i].n; j++)
            if (inserted[ws[i].row0 + j])
                wants[ws[i].acc] = 1;
    struct cc_alert_state *states = malloc((nacc ? nacc : 1) * sizeof *states);
    if (states == NULL) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    for (size_t a = 0; a < nacc; a++) {
        if (wants[a]) {
            state_of[a] = nstate;
            acc_devs[nstate++] = &accs[a].cur;
        }
    }
    rc = states_load(st, cache, acc_devs, nstate, states);
    for (size_t a = 0; rc == CC_OK && a < nacc; a++)
        if (wants[a])
            accs[a].state = states[state_of[a]];
    free(states);
    if (rc != CC_OK)
        goto out;

    /* The readings, message by message and in ts order within one. */
    for (size_t i = 0; i < k; i++) {
        struct cc_ingest_result *res = &v[i].m->res;
        struct acc *ac;

        if (!ws[i].stored)
            continue;
        ac = &accs[ws[i].acc];
        for (size_t j = 0; j < ws[i].n; j++) {
            const struct cc_reading *r = &ws[i].items[j].r;

            if (!inserted[ws[i].row0 + j]) {
                res->duplicates++;
                continue;
            }
            res->accepted++;
            if (ac->cur.has_newest && r->ts_ms < ac->cur.newest_ts) {
                /* Stored, but older than what the alerts already saw: judging it now
                 * would undo what newer readings decided. newest_ts was read under the
                 * device's lock (cc_store_devices_by_serial), so another process's
                 * newer reading counts here too. */
                res->late++;
                continue;
            }
            rc = cc_alert_apply(st, &ac->cur, r, v[i].m->received_at, &ac->state);
            if (rc != CC_OK)
                goto out;
            ac->cur.has_newest = 1;
            ac->cur.newest_ts = r->ts_ms;
        }
        res->rejected = ws[i].err != NULL ? refused_items(ws[i].err) : 0;
        res->error = ws[i].err; /* items refused in PARTIAL mode, or NULL */
        ws[i].err = NULL;
        res->last = ws[i].rs[ws[i].n - 1];
        res->has_last = 1;
        v[i].rc = CC_OK;
    }
    for (size_t a = 0; a < nacc; a++) {
        seen[a].device_id = accs[a].cur.id;
        seen[a].seen_at = accs[a].seen_at;
        seen[a].has_newest = accs[a].cur.has_newest;
        seen[a].newest_ts = accs[a].cur.newest_ts;
        seen[a].locked_tx = accs[a].cur.locked_tx;
    }
    rc = cc_store_devices_seen(st, seen, nacc);
    if (rc == CC_OK && cache != NULL)
        cache_keep(cache, accs, nacc, wants);
out:
    if (rc != CC_OK && cache != NULL)
        cc_ingest_cache_clear(cache); /* it may hold what the rollback will undo */
    if (rc != CC_OK && rc != CC_ERR_NOMEM)
        rc = CC_ERR_DB; /* the alert engine, a device row gone mid-transaction: roll back */
    free(serials);
    free(devs);
    free(found);
    free(inserted);
    free(rows);
    free(order);
    free(state_of);
    free(accs);
    free(acc_devs);
    free(seen);
    free(wants);
    return rc;
}

static int dead_letter(struct cc_store *st, const struct cc_ingest_msg *m)
{
    if (m->res.error == NULL || m->topic == NULL)
        return CC_OK; /* nothing refused, or HTTP: the refusal is the answer */
    /* Whole message or some items refused: keep the message as a dead letter. */
    return cc_store_dead_letter(st, m->received_at, m->topic, m->payload, m->len,
                                cc_error_code(m->res.error), cc_error_message(m->res.error));
}

/* Stores the readings messages v[0..k) in runs of at most CC_INGEST_RUN_READINGS_MAX
 * readings (a message larger than that is a run alone), each followed by the dead
 * letters of its messages. CC_OK or CC_ERR_DB / CC_ERR_NOMEM. */
static int readings_runs(struct cc_store *st, struct ingest_msg_view *v, size_t k)
{
    struct work *ws = calloc(k ? k : 1, sizeof *ws);
    size_t i = 0;
    int rc = CC_OK;

    if (ws == NULL)
        return CC_ERR_NOMEM;
    while (rc == CC_OK && i < k) {
        size_t j = i, total = 0;

        while (j < k) {
            if (!ws[j].validated)
                validate(&v[j], &ws[j]);
            if (j > i && total + run_weight(&ws[j]) > CC_INGEST_RUN_READINGS_MAX)
                break;
            total += run_weight(&ws[j]);
            j++;
        }
        rc = store_run(st, v + i, ws + i, j - i);
        for (size_t x = i; rc == CC_OK && x < j; x++)
            rc = dead_letter(st, v[x].m);
        for (size_t x = i; x < j; x++)
            work_free(&ws[x]);
        i = j;
    }
    for (; i < k; i++)
        work_free(&ws[i]);
    free(ws);
    return rc;
}

int cc_ingest_readings(struct cc_store *st, const char *serial, const char *payload, size_t len,
                       int64_t received_at, int mode, struct cc_ingest_result *res)
{
    struct cc_ingest_msg m = {.payload = payload, .len = len, .received_at = received_at};
    struct ingest_msg_view v;
    int rc;

    v.m = &m;
    v.serial = serial != NULL ? serial : "";
    v.mode = mode;
    v.rc = CC_ERR_INTERNAL;
    rc = readings_runs(st, &v, 1);
    if (rc != CC_OK) {
        cc_ingest_result_clear(&m.res);
        memset(res, 0, sizeof *res);
        return rc;
    }
    *res = m.res;
    return v.rc;
}

int cc_ingest_batch(struct cc_store *st, struct cc_ingest_msg *msgs, size_t n)
{
    struct ingest_msg_view *views = malloc((n ? n : 1) * sizeof *views);
    size_t i = 0;
    int rc = CC_OK;

    if (views == NULL)
        return CC_ERR_NOMEM;
    for (size_t x = 0; x < n; x++) {
        memset(&msgs[x].res, 0, sizeof msgs[x].res);
        msgs[x].serial[0] = '\0';
    }
    while (rc == CC_OK && i < n) {
        struct cc_ingest_msg *m = &msgs[i];
        size_t k = 0;
        int kind = 0;

        if (!parse_topic(m->topic, m->serial, &kind)) {
            m->res.rejected = 1;
            rc = set_error(&m->res, CC_ERR_VALIDATION, "unknown topic");
            if (rc == CC_OK)
                rc = dead_letter(st, m);
            i++;
            continue;
        }
        if (kind == TOPIC_STATUS) {
            rc = ingest_status(st, m->serial, m->payload, m->len, m->received_at, &m->res);
            if (rc == CC_OK)
                rc = dead_letter(st, m);
            i++;
            continue;
        }
        /* A run of readings messages, up to the next status message or bad topic. */
        while (i + k < n) {
            struct cc_ingest_msg *x = &msgs[i + k];

            if (k > 0 && (!parse_topic(x->topic, x->serial, &kind) || kind != TOPIC_READINGS)) {
                x->serial[0] = '\0';
                break;
            }
            views[k].m = x;
            views[k].serial = x->serial;
            views[k].mode = CC_INGEST_PARTIAL;
            views[k].rc = CC_OK;
            k++;
        }
        rc = readings_runs(st, views, k);
        i += k;
    }
    free(views);
    if (rc != CC_OK) {
        for (size_t x = 0; x < n; x++)
            cc_ingest_result_clear(&msgs[x].res);
        if (rc != CC_ERR_NOMEM)
            rc = CC_ERR_DB;
    }
    return rc;
}

int cc_ingest_mqtt(struct cc_store *st, const char *topic, const char *payload, size_t len,
                   int64_t received_at, struct cc_ingest_result *res,
                   char serial_out[CC_SERIAL_MAX + 1])
{
    struct cc_ingest_msg m = {
        .topic = topic, .payload = payload, .len = len, .received_at = received_at};
    int rc;

    rc = cc_ingest_batch(st, &m, 1);
    *res = m.res;
    memcpy(serial_out, m.serial, sizeof m.serial);
    return rc;
}
