/* cc_feed.c - the live feed's fan-out (cc_feed.h): topics to messages, access, queues. */
#include "cc_feed.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cc_json.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_time.h"
#include "cc_validate.h"

struct item {
    char *data;
    size_t len;
};

struct cc_feed_sub {
    struct cc_feed_sub *next; /* the feed's list, under feed->mu */
    struct cc_feed *feed;     /* set once registered: from then on readiness is reported */
    void *data;               /* the consumer's, set before registration */
    struct cc_principal who;
    int64_t expires_ms;        /* 0: never */
    _Atomic int64_t token_ver; /* users.token_version of the token, -1: not checked */

    /* The ready list, under feed->ready_mu. */
    int ready;
    struct cc_feed_sub *ready_prev, *ready_next;

    /* Access cache: written at creation, then only by the message thread. */
    int64_t *allowed; /* sorted cell ids */
    size_t n_allowed;
    int64_t denied[CC_FEED_DENIED_MAX];
    size_t n_denied;
    int64_t acl_at_ms; /* when allowed was loaded */

    /* The queue, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct item *q; /* ring of CC_FEED_QUEUE_MAX */
    size_t head, count, bytes;
    int close_code; /* -1 open; else the code the consumer gets */
};

struct cc_feed {
    pthread_mutex_t mu; /* the list; held during a whole fan-out */
    struct cc_feed_sub *subs;
    size_t n_subs;
    size_t max_subs;
    struct cc_store *st; /* the message thread's */

    /* Lock order: mu, then a subscriber's mu, then ready_mu. */
    pthread_mutex_t ready_mu;
    struct cc_feed_sub *ready_head, *ready_tail;
    int efd; /* eventfd: readable while the ready list may be non-empty */
};

static const char sql_cells[] =
    "SELECT c.id FROM cold_cells c JOIN locations l ON "
    "l.id = c.location_id WHERE " CC_ACCESS_SQL_N("l.customer_id") " ORDER BY c.id LIMIT $3";
static const char sql_user[] = "SELECT role, disabled, token_version FROM users WHERE id = $1";

/* ---- queue ------------------------------------------------------------------------ */

static void queue_clear(struct cc_feed_sub *s)
{
    while (s->count > 0) {
        free(s->q[s->head].data);
        s->q[s->head].data = NULL;
        s->head = (s->head + 1) % CC_FEED_QUEUE_MAX;
        s->count--;
    }
    s->bytes = 0;
}

/* Under s->mu: puts s on its feed's ready list (once) and wakes the consumer when the
 * list was empty. Nothing before registration: the consumer drains a new one anyway. */
static void mark_ready(struct cc_feed_sub *s)
{
    struct cc_feed *f = s->feed;
    int wake = 0;

    if (f == NULL)
        return;
    pthread_mutex_lock(&f->ready_mu);
    if (!s->ready) {
        s->ready = 1;
        s->ready_next = NULL;
        s->ready_prev = f->ready_tail;
        if (f->ready_tail != NULL)
            f->ready_tail->ready_next = s;
        else
            f->ready_head = s;
        f->ready_tail = s;
        wake = s->ready_prev == NULL;
    }
    pthread_mutex_unlock(&f->ready_mu);
    if (wake) {
        uint64_t one = 1;

        /* Fails only when the counter is saturated: it is readable then anyway. */
        if (write(f->efd, &one, sizeof one) < 0 && errno != EAGAIN)
            cc_log_warn("feed_wake_failed", "eventfd write: %s", strerror(errno));
    }
}

/* Under s->mu. Takes data on CC_OK only. */
static int queue_put(struct cc_feed_sub *s, char *data, size_t len)
{
    if (s->close_code >= 0)
        return CC_ERR_TOO_LARGE; /* closed: nothing more goes out */
    if (s->count >= CC_FEED_QUEUE_MAX || s->bytes + len > CC_FEED_QUEUE_BYTES) {
        s->close_code = CC_FEED_CLOSE_SLOW;
        queue_clear(s);
        pthread_cond_signal(&s->cv);
        mark_ready(s);
        return CC_ERR_TOO_LARGE;
    }
    s->q[(s->head + s->count) % CC_FEED_QUEUE_MAX] = (struct item){data, len};
    s->count++;
    s->bytes += len;
    pthread_cond_signal(&s->cv);
    if (s->count == 1)
        mark_ready(s);
    return CC_OK;
}

int cc_feed_sub_push(struct cc_feed_sub *s, const char *msg, size_t len)
{
    char *copy = malloc(len + 1);
    int rc;

    if (copy == NULL)
        return CC_ERR_NOMEM;
    memcpy(copy, msg, len);
    copy[len] = '\0';
    pthread_mutex_lock(&s->mu);
    rc = queue_put(s, copy, len);
    pthread_mutex_unlock(&s->mu);
    if (rc != CC_OK)
        free(copy);
    return rc;
}

void cc_feed_sub_close(struct cc_feed_sub *s, int code)
{
    pthread_mutex_lock(&s->mu);
    if (s->close_code < 0) {
        s->close_code = code;
        queue_clear(s);
        mark_ready(s);
    }
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int cc_feed_sub_next(struct cc_feed_sub *s, int timeout_ms, char **msg, size_t *len,
                     int *close_code)
{
    struct timespec until;
    int res;

    if (timeout_ms < 0)
        timeout_ms = 0;
    until = cc_deadline(CLOCK_REALTIME, (long)timeout_ms);
    pthread_mutex_lock(&s->mu);
    if (s->close_code < 0 && s->expires_ms > 0 && cc_now_ms() >= s->expires_ms) {
        s->close_code = CC_FEED_CLOSE_AUTH;
        queue_clear(s);
    }
    while (s->close_code < 0 && s->count == 0 && timeout_ms > 0) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT)
            break;
    }
    if (s->close_code >= 0) {
        *close_code = s->close_code;
        res = CC_FEED_CLOSE;
    } else if (s->count > 0) {
        *msg = s->q[s->head].data;
        *len = s->q[s->head].len;
        s->q[s->head].data = NULL;
        s->head = (s->head + 1) % CC_FEED_QUEUE_MAX;
        s->count--;
        s->bytes -= *len;
        res = CC_FEED_MSG;
    } else {
        res = CC_FEED_IDLE;
    }
    pthread_mutex_unlock(&s->mu);
    return res;
}

/* ---- access ------------------------------------------------------------------------ */

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* Loads the cells p may read into a new sorted array. CC_OK, CC_ERR_DB, CC_ERR_NOMEM. */
static int load_cells(struct cc_store *st, const struct cc_principal *p, int64_t **out,
                      size_t *n_out)
{
    struct cc_stmt *stmt = NULL;
    int64_t *ids = NULL;
    size_t n = 0;
    int rc;

    ids = malloc(sizeof *ids * CC_FEED_MAX_CELLS);
    if (ids == NULL)
        return CC_ERR_NOMEM;
    rc = cc_stmt_prepare(st, sql_cells, &stmt);
    if (rc == CC_OK)
        rc = cc_access_bind_stmt(stmt, p);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 3, CC_FEED_MAX_CELLS);
    while (rc == CC_OK && (rc = cc_stmt_step(stmt)) == CC_ROW) {
        ids[n++] = cc_stmt_column_int64(stmt, 0);
        rc = CC_OK;
    }
    cc_stmt_release(stmt);
    if (rc != CC_OK) {
        free(ids);
        return rc;
    }
    qsort(ids, n, sizeof *ids, cmp_id);
    *out = ids;
    *n_out = n;
    return CC_OK;
}

/* CC_OK if user p still exists, is enabled and has the same role; CC_ERR_UNAUTHORIZED if
 * not; CC_ERR_DB. */
static int user_active(struct cc_store *st, const struct cc_principal *p, int64_t token_ver)
{
    struct cc_stmt *stmt = NULL;
    int rc;

    rc = cc_stmt_prepare(st, sql_user, &stmt);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, p->user_id);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_ROW) {
        const char *role = cc_stmt_column_text(stmt, 0);

        /* A password change raises token_version (schema/0006): the token this feed was
         * opened with is void from then on, as it is for every HTTP request. */
        rc = cc_role_parse(role) == p->role && cc_stmt_column_int64(stmt, 1) == 0 &&
                     (token_ver < 0 || cc_stmt_column_int64(stmt, 2) == token_ver)
                 ? CC_OK
                 : CC_ERR_UNAUTHORIZED;
    } else if (rc == CC_OK) {
        rc = CC_ERR_UNAUTHORIZED; /* no such user any more */
    }
    cc_stmt_release(stmt);
    return rc;
}

/* Reloads s's allowed cells (message thread). On a failure the old set stays, except
 * that a user who is gone or disabled closes s. */
static void acl_refresh(struct cc_feed *f, struct cc_feed_sub *s, int64_t now_ms)
{
    int64_t *ids = NULL;
    size_t n = 0;
    int rc = user_active(f->st, &s->who, atomic_load(&s->token_ver));

    s->acl_at_ms = now_ms;
    if (rc == CC_ERR_UNAUTHORIZED) {
        cc_feed_sub_close(s, CC_FEED_CLOSE_AUTH);
        return;
    }
    if (rc != CC_OK || load_cells(f->st, &s->who, &ids, &n) != CC_OK)
        return;
    free(s->allowed);
    s->allowed = ids;
    s->n_allowed = n;
    s->n_denied = 0;
}

/* 1 if s may read cell (message thread). */
static int sub_allows(struct cc_feed *f, struct cc_feed_sub *s, int64_t cell, int64_t now_ms)
{
    int rc;

    if (now_ms - s->acl_at_ms >= CC_FEED_ACL_TTL_MS || now_ms < s->acl_at_ms)
        acl_refresh(f, s, now_ms);
    if (s->allowed != NULL && bsearch(&cell, s->allowed, s->n_allowed, sizeof cell, cmp_id) != NULL)
        return 1;
    for (size_t i = 0; i < s->n_denied; i++) {
        if (s->denied[i] == cell)
            return 0;
    }
    /* Unknown here: a cell created since the last load, or someone else's. */
    rc = cc_access_check(f->st, &s->who, CC_ENTITY_COLDCELL, cell, CC_ACCESS_READ);
    if (rc == CC_OK) {
        if (s->n_allowed < CC_FEED_MAX_CELLS) {
            size_t i = s->n_allowed;

            while (i > 0 && s->allowed[i - 1] > cell) {
                s->allowed[i] = s->allowed[i - 1];
                i--;
            }
            s->allowed[i] = cell;
            s->n_allowed++;
        }
        return 1;
    }
    if (rc == CC_ERR_NOT_FOUND && s->n_denied < CC_FEED_DENIED_MAX)
        s->denied[s->n_denied++] = cell;
    return 0; /* not allowed, or the database failed: deny */
}

/* ---- subscribers ------------------------------------------------------------------- */

static void sub_free(struct cc_feed_sub *s)
{
    if (s == NULL)
        return;
    queue_clear(s);
    free(s->q);
    free(s->allowed);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* The hello message: {"type":"hello","userId":N,"coldCellIds":[...]}. */
static char *hello_new(const struct cc_feed_sub *s)
{
    cJSON *o = cJSON_CreateObject(), *ids;
    char *out = NULL;

    if (o == NULL || cJSON_AddStringToObject(o, "type", "hello") == NULL ||
        cJSON_AddNumberToObject(o, "userId", (double)s->who.user_id) == NULL)
        goto out;
    ids = cJSON_AddArrayToObject(o, "coldCellIds");
    if (ids == NULL)
        goto out;
    for (size_t i = 0; i < s->n_allowed; i++) {
        cJSON *n = cJSON_CreateNumber((double)s->allowed[i]);

        if (n == NULL || !cJSON_AddItemToArray(ids, n)) {
            cJSON_Delete(n);
            goto out;
        }
    }
    out = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    return out;
}

/* Under f->mu: subscribers of user_id registered now. */
static size_t user_subs(const struct cc_feed *f, int64_t user_id)
{
    size_t n = 0;

    for (const struct cc_feed_sub *s = f->subs; s != NULL; s = s->next)
        n += s->who.user_id == user_id;
    return n;
}

int cc_feed_sub_new(struct cc_feed *f, struct cc_store *st, const struct cc_principal *p,
                    int64_t expires_ms, void *data, struct cc_feed_sub **out)
{
    struct cc_feed_sub *s = NULL;
    char *hello = NULL;
    int rc;

    s = calloc(1, sizeof *s);
    if (s == NULL)
        return CC_ERR_NOMEM;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->close_code = -1;
    s->who = *p;
    s->expires_ms = expires_ms;
    atomic_init(&s->token_ver, -1);
    s->data = data;
    s->q = calloc(CC_FEED_QUEUE_MAX, sizeof *s->q);
    if (s->q == NULL) {
        rc = CC_ERR_NOMEM;
        goto fail;
    }
    rc = load_cells(st, p, &s->allowed, &s->n_allowed);
    if (rc != CC_OK)
        goto fail;
    s->acl_at_ms = cc_now_ms();
    hello = hello_new(s);
    if (hello == NULL) {
        rc = CC_ERR_NOMEM;
        goto fail;
    }
    rc = queue_put(s, hello, strlen(hello));
    if (rc != CC_OK)
        goto fail;
    hello = NULL;

    /* The limits are checked where the subscriber is inserted, so that concurrent
     * connects of one user cannot all pass. */
    pthread_mutex_lock(&f->mu);
    if (user_subs(f, p->user_id) >= CC_FEED_PER_USER_MAX)
        rc = CC_ERR_RATE_LIMITED;
    else if (f->n_subs >= f->max_subs)
        rc = CC_ERR_TOO_LARGE;
    if (rc == CC_OK) {
        pthread_mutex_lock(&s->mu);
        s->feed = f;
        pthread_mutex_unlock(&s->mu);
        s->next = f->subs;
        f->subs = s;
        f->n_subs++;
    }
    pthread_mutex_unlock(&f->mu);
    if (rc != CC_OK)
        goto fail;
    *out = s;
    return CC_OK;

fail:
    free(hello);
    sub_free(s);
    return rc;
}

void cc_feed_sub_remove(struct cc_feed *f, struct cc_feed_sub *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&f->mu);
    for (struct cc_feed_sub **pp = &f->subs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            f->n_subs--;
            break;
        }
    }
    pthread_mutex_lock(&f->ready_mu);
    if (s->ready) {
        if (s->ready_prev != NULL)
            s->ready_prev->ready_next = s->ready_next;
        else
            f->ready_head = s->ready_next;
        if (s->ready_next != NULL)
            s->ready_next->ready_prev = s->ready_prev;
        else
            f->ready_tail = s->ready_prev;
        s->ready = 0;
    }
    pthread_mutex_unlock(&f->ready_mu);
    pthread_mutex_unlock(&f->mu);
    sub_free(s);
}

void *cc_feed_sub_data(const struct cc_feed_sub *s)
{
    return s->data;
}

void cc_feed_sub_set_token_version(struct cc_feed_sub *s, int64_t ver)
{
    atomic_store(&s->token_ver, ver);
}

int cc_feed_sub_verify(struct cc_feed_sub *s, struct cc_store *st)
{
    int rc = user_active(st, &s->who, atomic_load(&s->token_ver));

    if (rc == CC_ERR_UNAUTHORIZED)
        cc_feed_sub_close(s, CC_FEED_CLOSE_AUTH);
    return rc;
}

int cc_feed_client_message(struct cc_feed_sub *s, const char *msg, size_t len)
{
    static const char pong[] = "{\"type\":\"pong\"}";
    cJSON *o;
    const cJSON *t;
    int rc = CC_ERR_VALIDATION;

    if (len == 0 || len > CC_FEED_CLIENT_MSG_MAX)
        return CC_ERR_VALIDATION;
    o = cc_json_parse_outside(msg, len, NULL);
    t = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (cJSON_IsString(t) && strcmp(t->valuestring, "ping") == 0)
        rc = cc_feed_sub_push(s, pong, sizeof pong - 1);
    cJSON_Delete(o);
    return rc;
}

/* ---- the feed ---------------------------------------------------------------------- */

int cc_feed_new(struct cc_store *st, struct cc_feed **out)
{
    struct cc_feed *f = calloc(1, sizeof *f);

    if (f == NULL)
        return CC_ERR_NOMEM;
    f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (f->efd < 0) {
        free(f);
        return CC_ERR_IO;
    }
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->ready_mu, NULL);
    f->st = st;
    f->max_subs = SIZE_MAX;
    *out = f;
    return CC_OK;
}

void cc_feed_set_max(struct cc_feed *f, size_t max)
{
    pthread_mutex_lock(&f->mu);
    f->max_subs = max;
    pthread_mutex_unlock(&f->mu);
}

int cc_feed_notify_fd(struct cc_feed *f)
{
    return f->efd;
}

size_t cc_feed_ready(struct cc_feed *f, struct cc_feed_sub **out, size_t max)
{
    uint64_t count;
    size_t n = 0;

    /* Read the counter first: a subscriber made ready after this read writes it again. */
    if (read(f->efd, &count, sizeof count) < 0 && errno != EAGAIN)
        cc_log_warn("feed_wake_failed", "eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&f->ready_mu);
    while (n < max && f->ready_head != NULL) {
        struct cc_feed_sub *s = f->ready_head;

        f->ready_head = s->ready_next;
        if (f->ready_head != NULL)
            f->ready_head->ready_prev = NULL;
        else
            f->ready_tail = NULL;
        s->ready = 0;
        s->ready_next = s->ready_prev = NULL;
        out[n++] = s;
    }
    if (f->ready_head != NULL) {
        uint64_t one = 1;

        /* Left for the next call: keep the consumer awake for them. */
        if (write(f->efd, &one, sizeof one) < 0 && errno != EAGAIN)
            cc_log_warn("feed_wake_failed", "eventfd write: %s", strerror(errno));
    }
    pthread_mutex_unlock(&f->ready_mu);
    return n;
}

void cc_feed_free(struct cc_feed *f)
{
    if (f == NULL)
        return;
    while (f->subs != NULL) {
        struct cc_feed_sub *s = f->subs;

        f->subs = s->next;
        sub_free(s);
    }
    pthread_mutex_destroy(&f->ready_mu);
    pthread_mutex_destroy(&f->mu);
    close(f->efd);
    free(f);
}

size_t cc_feed_count(struct cc_feed *f)
{
    size_t n;

    pthread_mutex_lock(&f->mu);
    n = f->n_subs;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Queues msg for every subscriber that may read cell. Under f->mu. Returns how many. */
static size_t fan_out(struct cc_feed *f, int64_t cell, const char *msg, size_t len, int64_t now_ms)
{
    size_t n = 0;

    for (struct cc_feed_sub *s = f->subs; s != NULL; s = s->next) {
        if (!sub_allows(f, s, cell, now_ms))
            continue;
        if (cc_feed_sub_push(s, msg, len) == CC_OK)
            n++;
    }
    return n;
}

/* Parses "<prefix><segment><suffix>" into seg (bounded, no '/'). 1 on a match. */
static int topic_segment(const char *topic, const char *prefix, const char *suffix, char *seg,
                         size_t seglen)
{
    size_t pl = strlen(prefix), sl = strlen(suffix), tl = strlen(topic), n;

    if (tl <= pl + sl || strncmp(topic, prefix, pl) != 0 || strcmp(topic + tl - sl, suffix) != 0)
        return 0;
    n = tl - pl - sl;
    if (n >= seglen || memchr(topic + pl, '/', n) != NULL)
        return 0;
    memcpy(seg, topic + pl, n);
    seg[n] = '\0';
    return 1;
}

/* {"type":"reading","coldCellId":N,"reading":{...,"deviceId","serialNumber"}}, printed. */
static char *reading_msg_new(const struct cc_device *dev, const struct cc_reading *rd)
{
    cJSON *o = cJSON_CreateObject(), *r = cc_reading_to_json(rd), *it, *nx;
    char *out = NULL;

    /* docs/websocket.md: optional fields are omitted when absent, not null. */
    for (it = r != NULL ? r->child : NULL; it != NULL; it = nx) {
        nx = it->next;
        if (cJSON_IsNull(it))
            cJSON_Delete(cJSON_DetachItemViaPointer(r, it));
    }
    if (o == NULL || r == NULL || cJSON_AddStringToObject(o, "type", "reading") == NULL ||
        cJSON_AddNumberToObject(o, "coldCellId", (double)dev->cold_cell_id) == NULL ||
        cJSON_AddNumberToObject(r, "deviceId", (double)dev->id) == NULL ||
        cJSON_AddStringToObject(r, "serialNumber", dev->serial) == NULL)
        goto out;
    cJSON_AddItemToObject(o, "reading", r);
    r = NULL;
    out = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(r);
    cJSON_Delete(o);
    return out;
}

static int on_readings(struct cc_feed *f, const char *serial, const void *payload, size_t len,
                       int64_t now_ms, size_t *queued)
{
    struct cc_device dev;
    struct cc_reading *rs = NULL;
    size_t n = 0;
    cJSON *err = NULL;
    int rc;

    rc = cc_store_device_by_serial(f->st, serial, &dev);
    if (rc != CC_OK)
        return rc;
    rc = cc_validate_readings(payload, len, now_ms, &rs, &n, NULL, &err);
    cJSON_Delete(err);
    if (rc != CC_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        char *msg = reading_msg_new(&dev, &rs[i]);

        if (msg == NULL) {
            rc = CC_ERR_NOMEM;
            goto out;
        }
        *queued += fan_out(f, dev.cold_cell_id, msg, strlen(msg), now_ms);
        free(msg);
    }
out:
    free(rs);
    return rc;
}

static int on_alert(struct cc_feed *f, const char *cell_s, const void *payload, size_t len,
                    int64_t now_ms, size_t *queued)
{
    cJSON *alert = NULL, *o = NULL, *cid;
    char *msg = NULL, *end = NULL;
    long long cell;
    int rc = CC_OK;

    errno = 0;
    cell = strtoll(cell_s, &end, 10);
    if (errno != 0 || end == cell_s || *end != '\0' || cell <= 0)
        return CC_ERR_VALIDATION;
    if (len > CC_FEED_MAX_ALERT)
        return CC_ERR_TOO_LARGE;
    alert = cc_json_parse_outside(payload, len, NULL); /* depth-gated: see cc_json.h */
    if (!cJSON_IsObject(alert)) {
        rc = CC_ERR_VALIDATION;
        goto out;
    }
    /* The topic names the cell; a payload naming another one is not trusted. */
    cid = cJSON_GetObjectItemCaseSensitive(alert, "coldCellId");
    if (cid != NULL && (!cJSON_IsNumber(cid) || cid->valuedouble != (double)cell)) {
        rc = CC_ERR_VALIDATION;
        goto out;
    }
    o = cJSON_CreateObject();
    if (o == NULL || cJSON_AddStringToObject(o, "type", "alert") == NULL) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    cJSON_AddItemToObject(o, "alert", alert);
    alert = NULL;
    msg = cJSON_PrintUnformatted(o);
    if (msg == NULL) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    *queued += fan_out(f, (int64_t)cell, msg, strlen(msg), now_ms);
out:
    free(msg);
    cJSON_Delete(alert);
    cJSON_Delete(o);
    return rc;
}

int cc_feed_on_message(struct cc_feed *f, const char *topic, const void *payload, size_t len,
                       int64_t now_ms, size_t *queued)
{
    char seg[CC_SERIAL_MAX + 1];
    size_t n = 0;
    int rc;

    if (topic_segment(topic, "devices/", "/readings", seg, sizeof seg)) {
        pthread_mutex_lock(&f->mu);
        rc = f->subs != NULL ? on_readings(f, seg, payload, len, now_ms, &n) : CC_OK;
        pthread_mutex_unlock(&f->mu);
    } else if (topic_segment(topic, "alerts/", "", seg, sizeof seg)) {
        pthread_mutex_lock(&f->mu);
        rc = f->subs != NULL ? on_alert(f, seg, payload, len, now_ms, &n) : CC_OK;
        pthread_mutex_unlock(&f->mu);
    } else {
        rc = CC_ERR_VALIDATION;
    }
    if (queued != NULL)
        *queued = n;
    return rc;
}
