/* cc_dbi_pg.c - cc_dbi.h on PostgreSQL 15 through libpq: the only file that includes
 * libpq-fe.h.
 *
 * A cached statement is PQprepare'd once per connection under a generated name ("s12")
 * and described once (its parameter count); each execution is one PQexecPrepared with
 * text parameters (blobs binary) and text results (binary for a statement that asked,
 * cc_stmt_set_binary_results), the whole result fetched on the first step. A transient statement
 * (cc_dbi.h) is described the same way but runs through PQexecParams, so that nothing of it
 * outlives its release on the server. A statement sent ahead (cc_stmt_send) goes out in
 * libpq's pipeline mode instead, and its result is read (PG_ARRIVED) when it or a later
 * one is stepped, or before anything else uses the connection (pipe_drain). */
#include <endian.h> /* be64toh and kin (_GNU_SOURCE) */
#include <errno.h>  /* program_invocation_short_name (_GNU_SOURCE) */
#include <poll.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_store_impl.h"

/* Type OIDs of the columns read specially (PostgreSQL's catalog/pg_type_d.h, stable
 * since 7.x; the server headers are not part of libpq-dev). */
#define PG_BOOLOID 16
#define PG_BYTEAOID 17
#define PG_INT8OID 20
#define PG_INT2OID 21
#define PG_INT4OID 23
#define PG_TEXTOID 25
#define PG_FLOAT4OID 700
#define PG_FLOAT8OID 701
#define PG_BPCHAROID 1042
#define PG_VARCHAROID 1043
/* A parameter's copy larger than this is freed at release instead of kept for the next
 * execution, so that one large value does not stay pinned for the store's life. */
#define CC_DBI_PG_KEEP_BYTES 256
#define PG_NAME_LEN 16 /* "s" + a 32-bit counter + NUL */
/* Columns whose type and format a result keeps at hand (take_result): every read of a
 * column checks both, and asking libpq each time cost more than the decoding (the 30-day
 * query reads ~15,000 values). Columns past it ask libpq. */
#define PG_COLS_KEPT 16
#define CC_PG_CONNECT_TIMEOUT_S "5" /* seconds (libpq's connect_timeout) unless the URL says */
/* How long the idle check (conn_dropped) waits for a terminated backend's end of file after
 * its FATAL message arrived alone, ms: the backend closes right after sending it. */
#define CC_PG_DROP_EOF_MS 20

struct cc_stmt_pg {
    char name[PG_NAME_LEN];              /* "" for a transient statement */
    int nparams;                         /* $1..$nparams, from PQdescribePrepared */
    PGresult *res;                       /* the execution's result, NULL before the first step */
    int row, nrows;                      /* current row of res */
    const char *val[CC_STMT_PARAMS_MAX]; /* NULL: SQL NULL */
    int len[CC_STMT_PARAMS_MAX];
    int fmt[CC_STMT_PARAMS_MAX];   /* 0 text, 1 binary */
    char *buf[CC_STMT_PARAMS_MAX]; /* the copies val points into */
    size_t cap[CC_STMT_PARAMS_MAX];
    unsigned char *blob; /* bytea of (row, blob_col) decoded, PQfreemem'd */
    size_t blob_len;
    int blob_col;
    int binary; /* resultFormat of this execution: 1 binary (cc_stmt_set_binary_results) */
    enum { PG_IDLE, PG_SENT, PG_ARRIVED, PG_ROWS } state; /* this execution's */
    int ncols;                                            /* of res, PG_ROWS */
    unsigned coltype[PG_COLS_KEPT];                       /* PQftype of the first columns */
    unsigned char colbin[PG_COLS_KEPT]; /* PQfformat of the first columns (1: binary) */
};

static int exec_on(PGconn *conn, const char *sql);

static const char read_begin_sql[] = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/* libpq prints NOTICEs (DROP ... IF EXISTS) to stderr, which carries our JSON log lines. */
static void notice(void *arg, const char *message)
{
    (void)arg;
    cc_log_debug("db_notice", "%.*s", (int)strcspn(message, "\n"), message);
}

int cc_dbi_pg_open(const char *url, int flags, struct pg_conn **out)
{
    /* The program's name as the connection's application_name (unless the URL sets one):
     * pg_stat_activity then tells apid's, ingestd's, the broker's and ccctl's apart. */
    /* A bound on connecting, which libpq leaves unbounded by default: a server host that
     * stopped answering must not hang a daemon's start or the broker's single thread (its
     * plugin reopens the store). Given before dbname, so a URL's own value wins. */
    const char *const keys[] = {"connect_timeout", "dbname", "fallback_application_name", NULL};
    const char *const values[] = {CC_PG_CONNECT_TIMEOUT_S, url, program_invocation_short_name,
                                  NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1 /* expand dbname: the URL */);

    if (conn == NULL) {
        cc_log_error("db_open_failed", "PostgreSQL: out of memory");
        return CC_ERR_NOMEM;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        /* libpq's message names the host and the reason, never the password. */
        cc_log_error("db_open_failed", "PostgreSQL: %.*s", (int)strcspn(PQerrorMessage(conn), "\n"),
                     PQerrorMessage(conn));
        PQfinish(conn);
        return CC_ERR_DB;
    }
    PQsetNoticeProcessor(conn, notice, NULL);
    *out = conn;
    if ((flags & CC_STORE_READONLY) &&
        exec_on(conn, "SET default_transaction_read_only = on") != CC_OK) {
        PQfinish(conn);
        return CC_ERR_DB;
    }
    return CC_OK;
}

void cc_dbi_pg_close(struct pg_conn *conn)
{
    if (conn != NULL)
        PQfinish(conn);
}

/* Maps a failed result (or none: out of memory, connection lost) to a code; logs all but
 * a unique violation. Class 22 (data exception) messages quote the offending value, so
 * they are logged by SQLSTATE only. */
static int result_failed(PGconn *conn, const PGresult *res, const char *sql)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char head[CC_DBI_HEAD_LEN];

    if (state != NULL && strcmp(state, "23505") == 0)
        return CC_ERR_CONFLICT;
    if (msg == NULL)
        msg = PQerrorMessage(conn);
    if (state != NULL && strncmp(state, "22", 2) == 0)
        msg = "(data exception, message withheld: it may quote a value)";
    cc_dbi_sql_head(sql, head, sizeof head);
    cc_log_error("db_step_failed", "%s: SQLSTATE %s: %.*s", head, state != NULL ? state : "-",
                 (int)strcspn(msg, "\n"), msg);
    return CC_ERR_DB;
}

/* Notes a failure that ends the session (cc_store_retry_safe): the server's FATAL to a
 * terminated backend (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now)
 * or a connection exception (class 08). libpq reads the end of file behind it later. */
static void note_failure(struct cc_store *st, const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (state == NULL || strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0)
        st->pg_lost |= state != NULL || PQstatus(st->pg) != CONNECTION_OK;
}

/* Runs parameterless sql on conn. CC_OK, CC_ERR_CONFLICT or CC_ERR_DB (logged). */
static int exec_on(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType status = PQresultStatus(res);
    int rc = CC_OK;

    if (res == NULL || (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK))
        rc = result_failed(conn, res, sql);
    PQclear(res);
    return rc;
}

/* Whether sql only reads or only opens or ends a transaction without committing it: a plain
 * SELECT (a query calling a function that writes is no such statement: run it inside
 * cc_store_begin), BEGIN, ROLLBACK. */
static int reads_only(const char *sql)
{
    static const char *const words[] = {"SELECT", "BEGIN", "ROLLBACK"};

    sql += strspn(sql, " \t\r\n(");
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);

        if (strncasecmp(sql, words[i], n) == 0 && (sql[n] == '\0' || strchr(" \t\r\n;", sql[n])))
            return 1;
    }
    return 0;
}

/* Notes a round trip about to go out with sql (cc_store_retry_safe): one that may commit
 * something is a COMMIT, or a statement other than reads_only's run outside a transaction
 * (autocommit). Inside a transaction only its COMMIT commits; a READ ONLY one writes
 * nothing. */
static void note_sent(struct cc_store *st, const char *sql)
{
    PGTransactionStatusType ts;

    if (st->pg_wrote || st->pg_readonly || st->pg_read_open || st->pg_begin_due)
        return;
    if (strcasecmp(sql, "COMMIT") == 0) {
        st->pg_wrote = 1;
        return;
    }
    ts = PQtransactionStatus(st->pg);
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR || reads_only(sql))
        return;
    st->pg_wrote = 1; /* PQTRANS_ACTIVE (a pipeline under way) counts: its status is unknown */
}

/* Marks the statements still waiting for a result as failed (a lost connection, a
 * pipeline libpq refused): their step reports it. */
static void pipe_fail(struct cc_store *st)
{
    for (int i = 0; i < st->pg_n_sent; i++) {
        if (st->pg_sent[i] == NULL)
            continue; /* a deferred BEGIN */
        st->pg_sent[i]->pg->res = NULL;
        st->pg_sent[i]->pg->state = PG_ARRIVED;
    }
    st->pg_n_sent = 0;
    st->pg_unsynced = 0;
    st->pg_syncs = 0;
}

/* The next result of the pipeline that is not a sync's answer, or NULL when libpq has
 * none coming (a NULL ends each statement's results; two in a row: nothing pending). */
static PGresult *pipe_next(struct cc_store *st)
{
    int nulls = 0;

    while (nulls < 2) {
        PGresult *r = PQgetResult(st->pg);

        if (r == NULL) {
            nulls++;
        } else if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            st->pg_syncs--;
            nulls = 0;
        } else {
            return r;
        }
    }
    return NULL;
}

/* Reads the results of the statements sent, oldest first, into them until upto's has
 * arrived (upto NULL: every one). Sends the sync that makes the server answer first when
 * statements went out since the last. CC_OK or CC_ERR_DB (every statement still waiting
 * fails; logged). */
static int pipe_read(struct cc_store *st, const struct cc_stmt *upto)
{
    if (st->pg_unsynced > 0) {
        if (!PQpipelineSync(st->pg)) {
            cc_log_error("db_step_failed", "PostgreSQL pipeline sync: %.*s",
                         (int)strcspn(PQerrorMessage(st->pg), "\n"), PQerrorMessage(st->pg));
            pipe_fail(st);
            return CC_ERR_DB;
        }
        st->pg_unsynced = 0;
        st->pg_syncs++;
        st->pg_waits++;
    }
    while (st->pg_n_sent > 0 && (upto == NULL || upto->pg->state == PG_SENT)) {
        struct cc_stmt *s = st->pg_sent[0];
        PGresult *r = pipe_next(st);

        if (r == NULL) {
            cc_log_error("db_step_failed", "PostgreSQL pipeline: a result is missing: %.*s",
                         (int)strcspn(PQerrorMessage(st->pg), "\n"), PQerrorMessage(st->pg));
            pipe_fail(st);
            return CC_ERR_DB;
        }
        if (s == NULL) { /* the deferred BEGIN: a failure fails the statements after it */
            if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                note_failure(st, r);
                result_failed(st->pg, r, read_begin_sql);
            }
            PQclear(r);
        } else {
            s->pg->res = r;
            s->pg->state = PG_ARRIVED;
        }
        st->pg_n_sent--;
        memmove(st->pg_sent, st->pg_sent + 1, (size_t)st->pg_n_sent * sizeof st->pg_sent[0]);
    }
    return CC_OK;
}

/* Reads every result still on its way and leaves pipeline mode, so that the connection
 * can run a statement on its own. CC_OK or CC_ERR_DB (logged). */
static int pipe_drain(struct cc_store *st)
{
    int rc;

    if (PQpipelineStatus(st->pg) == PQ_PIPELINE_OFF)
        return CC_OK;
    rc = pipe_read(st, NULL);
    while (rc == CC_OK && st->pg_syncs > 0) {
        PGresult *r = pipe_next(st); /* after the last statement: only syncs' answers */

        if (r != NULL || st->pg_syncs > 0) {
            cc_log_error("db_step_failed", "PostgreSQL pipeline: a sync's answer is missing: %.*s",
                         (int)strcspn(PQerrorMessage(st->pg), "\n"), PQerrorMessage(st->pg));
            PQclear(r);
            pipe_fail(st);
            rc = CC_ERR_DB;
        }
    }
    if (!PQexitPipelineMode(st->pg)) {
        cc_log_error("db_step_failed", "PostgreSQL pipeline mode: %.*s",
                     (int)strcspn(PQerrorMessage(st->pg), "\n"), PQerrorMessage(st->pg));
        return CC_ERR_DB;
    }
    return rc;
}

int cc_dbi_pg_send(struct cc_stmt *s)
{
    struct cc_store *st = s->st;
    struct cc_stmt_pg *p = s->pg;
    int rc, ok;

    if (p->state != PG_IDLE || p->res != NULL)
        return CC_ERR_INTERNAL;
    if (st->pg_n_sent >= CC_STMT_SEND_MAX - 1 && (rc = pipe_read(st, NULL)) != CC_OK)
        return rc; /* - 1: room for a deferred BEGIN too */
    if (PQpipelineStatus(st->pg) == PQ_PIPELINE_OFF && !PQenterPipelineMode(st->pg)) {
        cc_log_error("db_step_failed", "PostgreSQL pipeline mode: %.*s",
                     (int)strcspn(PQerrorMessage(st->pg), "\n"), PQerrorMessage(st->pg));
        return CC_ERR_DB;
    }
    if (st->pg_begin_due) {
        if (!PQsendQueryParams(st->pg, read_begin_sql, 0, NULL, NULL, NULL, NULL, 0))
            return result_failed(st->pg, NULL, read_begin_sql);
        st->pg_begin_due = 0;
        st->pg_sent[st->pg_n_sent++] = NULL;
        st->pg_unsynced++;
    }
    note_sent(st, s->sql);
    if (s->cached)
        ok = PQsendQueryPrepared(st->pg, p->name, p->nparams, p->val, p->len, p->fmt, p->binary);
    else
        ok = PQsendQueryParams(st->pg, s->sql, p->nparams, NULL, p->val, p->len, p->fmt, p->binary);
    if (!ok)
        return result_failed(st->pg, NULL, s->sql);
    st->pg_sent[st->pg_n_sent++] = s;
    st->pg_unsynced++;
    p->state = PG_SENT;
    return CC_OK;
}

int cc_dbi_pg_read_begin(struct cc_store *st)
{
    st->pg_begin_due = 1;
    st->pg_read_open = 1;
    return CC_OK;
}

/* Runs a deferred BEGIN on its own (before a statement that cannot go with it). */
static int begin_now(struct cc_store *st)
{
    if (!st->pg_begin_due)
        return CC_OK;
    st->pg_begin_due = 0;
    st->pg_waits++;
    return exec_on(st->pg, read_begin_sql);
}

int cc_dbi_pg_exec(struct cc_store *st, const char *sql)
{
    int rc = pipe_drain(st);

    if (rc == CC_OK && st->pg_begin_due && strcmp(sql, "ROLLBACK") == 0) {
        st->pg_begin_due = 0; /* nothing ran in it */
        return CC_OK;
    }
    if (rc == CC_OK)
        rc = begin_now(st);
    if (rc != CC_OK)
        return rc;
    note_sent(st, sql);
    st->pg_waits++;
    return exec_on(st->pg, sql);
}

int cc_dbi_pg_commit(struct cc_store *st)
{
    PGresult *res;
    int rc = pipe_drain(st);

    if (rc != CC_OK)
        return rc;
    if (st->pg_begin_due) {
        st->pg_begin_due = 0; /* nothing ran in it */
        return CC_OK;
    }
    note_sent(st, "COMMIT");
    st->pg_waits++;
    res = PQexec(st->pg, "COMMIT");
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        note_failure(st, res);
        rc = result_failed(st->pg, res, "COMMIT");
    } else if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
        /* COMMIT of a transaction a failed statement aborted succeeds as a ROLLBACK. */
        cc_log_error("db_commit_failed", "the transaction was aborted and rolled back");
        rc = CC_ERR_DB;
    }
    PQclear(res);
    return rc;
}

/* Whether the server dropped an idle connection, found out without a round trip: while
 * nothing was asked, anything readable on the socket is the FATAL a terminated backend
 * sends before its end of file (pg_ctl stop or restart, pg_terminate_backend, a crash),
 * which libpq reads as the connection lost. Anything else read (a NOTICE) stays buffered. */
static int conn_dropped(PGconn *conn)
{
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};

    if (pfd.fd < 0)
        return 1;
    if (poll(&pfd, 1, 0) <= 0)
        return 0;
    if (!PQconsumeInput(conn))
        return 1;
    if (PQstatus(conn) == CONNECTION_OK && poll(&pfd, 1, CC_PG_DROP_EOF_MS) > 0 &&
        !PQconsumeInput(conn))
        return 1;
    return PQstatus(conn) != CONNECTION_OK;
}

/* Whether a statement may run alone on st now: nothing under way, no transaction. */
static int conn_idle(const struct cc_store *st)
{
    return !st->in_tx && !st->pg_read_open && st->pg_n_sent == 0 && st->pg_syncs == 0 &&
           PQpipelineStatus(st->pg) == PQ_PIPELINE_OFF &&
           PQtransactionStatus(st->pg) == PQTRANS_IDLE;
}

int cc_dbi_pg_lost(struct cc_store *st)
{
    /* A statement that met a terminated backend failed with its FATAL message; the end of
     * file behind it may not have been read yet. */
    return PQstatus(st->pg) != CONNECTION_OK || conn_dropped(st->pg);
}

int cc_dbi_pg_revive(struct cc_store *st, int force)
{
    PGconn *conn = st->pg;
    int lost = PQstatus(conn) != CONNECTION_OK;

    /* What a pipeline left (a sync's answer after a failure) is read first: a connection
     * whose pipeline cannot be ended with nothing waiting is over too. */
    if (!lost && st->pg_n_sent == 0 && !st->in_tx && !st->pg_read_open &&
        PQpipelineStatus(conn) != PQ_PIPELINE_OFF && pipe_drain(st) != CC_OK)
        lost = 1;
    if (!lost && conn_idle(st))
        lost = conn_dropped(conn);
    if (!lost && !force)
        return 0;
    st->pg_lost = 1;
    if (st->in_tx || st->pg_read_open) {
        cc_log_error("db_unavailable", "PostgreSQL: the connection was lost inside a transaction");
        return -1; /* not reset before its owner ends it (cc_store_rollback, read_end) */
    }
    pipe_fail(st); /* the statements still waiting: their results went with the session */
    PQreset(conn);
    if (PQstatus(conn) != CONNECTION_OK) {
        cc_log_error("db_unavailable", "PostgreSQL: %.*s", (int)strcspn(PQerrorMessage(conn), "\n"),
                     PQerrorMessage(conn));
        return -1;
    }
    if (PQpipelineStatus(conn) != PQ_PIPELINE_OFF)
        PQexitPipelineMode(conn);
    if (st->pg_readonly && exec_on(conn, "SET default_transaction_read_only = on") != CC_OK)
        return -1;
    if (lost)
        cc_log_warn("db_reconnected", "PostgreSQL: the connection was lost and is open again");
    else
        cc_log_info("db_reconnected", "PostgreSQL: the connection was opened anew, as asked");
    return 1;
}

int cc_dbi_pg_in_transaction(struct cc_store *st)
{
    if (PQstatus(st->pg) != CONNECTION_OK) {
        st->pg_begin_due = 0; /* a transaction, begun or due, went with the session */
        return 0;
    }
    if (st->pg_begin_due)
        return 1;
    pipe_drain(st); /* a failure is logged, and the status then says what is left */
    return PQtransactionStatus(st->pg) != PQTRANS_IDLE;
}

int cc_dbi_pg_prepare(struct cc_store *st, struct cc_stmt *s)
{
    struct cc_stmt_pg *p = calloc(1, sizeof *p);
    PGresult *res = NULL;
    int prepared = 0;
    int rc = CC_ERR_DB;

    if (p == NULL)
        return CC_ERR_NOMEM;
    s->pg = p;
    if (pipe_drain(st) != CC_OK)
        goto out;
    st->pg_waits += 2;
    if (s->cached)
        snprintf(p->name, sizeof p->name, "s%u", ++st->pg_names);
    res = PQprepare(st->pg, p->name, s->sql, 0, NULL);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = result_failed(st->pg, res, s->sql);
        goto out;
    }
    prepared = s->cached; /* the unnamed statement of a transient is the server's to drop */
    PQclear(res);
    res = PQdescribePrepared(st->pg, p->name);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = result_failed(st->pg, res, s->sql);
        goto out;
    }
    p->nparams = PQnparams(res);
    if (p->nparams > CC_STMT_PARAMS_MAX) {
        char head[CC_DBI_HEAD_LEN];

        cc_dbi_sql_head(s->sql, head, sizeof head);
        cc_log_error("db_prepare_failed", "%s: a $N above CC_STMT_PARAMS_MAX", head);
        goto out;
    }
    rc = CC_OK;
out:
    PQclear(res);
    if (rc != CC_OK && prepared) {
        /* Prepared but refused here: drop it from the server too. */
        char sql[PG_NAME_LEN + 16];

        snprintf(sql, sizeof sql, "DEALLOCATE %s", p->name);
        PQclear(PQexec(st->pg, sql));
    }
    return rc;
}

void cc_dbi_pg_free(struct cc_stmt *s)
{
    struct cc_stmt_pg *p = s->pg;

    if (p == NULL)
        return;
    if (p->state == PG_SENT)
        pipe_read(s->st, s); /* the queue must not keep a freed statement */
    PQclear(p->res);
    PQfreemem(p->blob);
    for (int i = 0; i < CC_STMT_PARAMS_MAX; i++)
        free(p->buf[i]);
    free(p);
    s->pg = NULL;
}

static int no_param(const struct cc_stmt *s, int n)
{
    char head[CC_DBI_HEAD_LEN];

    cc_dbi_sql_head(s->sql, head, sizeof head);
    cc_log_error("db_bind_failed", "no parameter $%d in: %s", n, head);
    return CC_ERR_DB;
}

int cc_dbi_pg_bind(struct cc_stmt *s, int n, const void *v, size_t len, int binary)
{
    struct cc_stmt_pg *p = s->pg;
    int i = n - 1;

    if (n > p->nparams)
        return no_param(s, n);
    if (p->cap[i] < len + 1) {
        char *b = realloc(p->buf[i], len + 1);

        if (b == NULL)
            return CC_ERR_NOMEM;
        p->buf[i] = b;
        p->cap[i] = len + 1;
    }
    memcpy(p->buf[i], v, len);
    p->buf[i][len] = '\0'; /* text parameters are NUL-terminated */
    p->val[i] = p->buf[i];
    p->len[i] = (int)len;
    p->fmt[i] = binary;
    return CC_OK;
}

int cc_dbi_pg_bind_null(struct cc_stmt *s, int n)
{
    struct cc_stmt_pg *p = s->pg;

    if (n > p->nparams)
        return no_param(s, n);
    p->val[n - 1] = NULL;
    return CC_OK;
}

/* Checks the result that arrived for s and makes its rows current. CC_OK or the failure
 * (logged; the result dropped, so that a further step would run s again). */
static int take_result(struct cc_stmt *s)
{
    struct cc_stmt_pg *p = s->pg;
    PGconn *conn = s->st->pg;
    ExecStatusType status = PQresultStatus(p->res);
    const char *tuples;
    int rc;

    if (p->res == NULL || (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)) {
        if (p->res == NULL && PQstatus(conn) == CONNECTION_OK) {
            char head[CC_DBI_HEAD_LEN]; /* pipe_fail's: the session that ran it is gone */

            cc_dbi_sql_head(s->sql, head, sizeof head);
            cc_log_error("db_step_failed", "%s: its result was lost with the connection", head);
            rc = CC_ERR_DB;
        } else if (status == PGRES_PIPELINE_ABORTED) {
            char head[CC_DBI_HEAD_LEN];

            cc_dbi_sql_head(s->sql, head, sizeof head);
            cc_log_error("db_step_failed", "%s: not run: a statement sent before it failed", head);
            rc = CC_ERR_DB;
        } else {
            note_failure(s->st, p->res);
            rc = result_failed(conn, p->res, s->sql);
        }
        PQclear(p->res);
        p->res = NULL;
        p->state = PG_IDLE;
        return rc;
    }
    p->state = PG_ROWS;
    p->ncols = PQnfields(p->res);
    for (int c = 0; c < p->ncols && c < PG_COLS_KEPT; c++) {
        p->coltype[c] = (unsigned)PQftype(p->res, c);
        p->colbin[c] = PQfformat(p->res, c) == 1;
    }
    p->nrows = status == PGRES_TUPLES_OK ? PQntuples(p->res) : 0;
    p->row = -1;
    tuples = PQcmdTuples(p->res); /* "" for a plain SELECT */
    /* A query reports its row count here too: only writes count as changes. */
    if (strncmp(PQcmdStatus(p->res), "SELECT", 6) == 0)
        s->changes = 0;
    else
        s->changes = *tuples != '\0' ? strtoll(tuples, NULL, 10) : 0;
    return CC_OK;
}

int cc_dbi_pg_step(struct cc_stmt *s)
{
    struct cc_stmt_pg *p = s->pg;
    struct cc_store *st = s->st;
    int rc;

    if (p->state == PG_IDLE && st->pg_begin_due && (rc = cc_dbi_pg_send(s)) != CC_OK)
        return rc; /* the deferred BEGIN and s in one round trip */
    if (p->state == PG_SENT && (rc = pipe_read(st, s)) != CC_OK)
        return rc;
    if (p->state == PG_SENT) {
        /* Not in the queue any more, yet no result: never "done, no rows". */
        char head[CC_DBI_HEAD_LEN];

        cc_dbi_sql_head(s->sql, head, sizeof head);
        cc_log_error("db_step_failed", "%s: its result was lost with the connection", head);
        p->state = PG_IDLE;
        return CC_ERR_DB;
    }
    if (p->state == PG_IDLE) {
        rc = pipe_drain(st);
        if (rc != CC_OK)
            return rc;
        note_sent(st, s->sql);
        st->pg_waits++;
        if (s->cached)
            p->res = PQexecPrepared(st->pg, p->name, p->nparams, p->val, p->len, p->fmt, p->binary);
        else
            p->res =
                PQexecParams(st->pg, s->sql, p->nparams, NULL, p->val, p->len, p->fmt, p->binary);
        p->state = PG_ARRIVED;
    }
    if (p->state == PG_ARRIVED && (rc = take_result(s)) != CC_OK)
        return rc;
    PQfreemem(p->blob);
    p->blob = NULL;
    if (p->row < p->nrows)
        p->row++;
    return p->row < p->nrows ? CC_ROW : CC_OK;
}

/* The current row's value at col, or NULL for SQL NULL or no such row or column. */
static const char *value(struct cc_stmt *s, int col)
{
    struct cc_stmt_pg *p = s->pg;

    if (p->res == NULL || p->row < 0 || p->row >= p->nrows || col < 0 || col >= p->ncols ||
        PQgetisnull(p->res, p->row, col))
        return NULL;
    return PQgetvalue(p->res, p->row, col);
}

int cc_dbi_pg_is_null(struct cc_stmt *s, int col)
{
    return value(s, col) == NULL;
}

int cc_dbi_pg_set_binary(struct cc_stmt *s)
{
    if (s->pg->res != NULL || s->pg->state != PG_IDLE)
        return CC_ERR_INTERNAL; /* already run: its format is settled */
    s->pg->binary = 1;
    return CC_OK;
}

/* The text types, whose binary form is their text's bytes (the client encoding, as in
 * text format) and which libpq follows with a zero byte in binary format too ("The value
 * is actually followed by a zero byte in this case too", libpq's PQgetvalue): a text
 * value has no NUL of its own, so the bytes are the same NUL-terminated string. */
static int is_text_type(unsigned oid)
{
    return oid == PG_TEXTOID || oid == PG_VARCHAROID || oid == PG_BPCHAROID;
}

/* Whether col of the current result came in binary format. */
static int is_binary(const struct cc_stmt_pg *p, int col)
{
    if (p->res == NULL || col < 0 || col >= p->ncols)
        return 0;
    return col < PG_COLS_KEPT ? p->colbin[col] : PQfformat(p->res, col) == 1;
}

/* The type OID of col, a column of the current result. */
static unsigned col_type(const struct cc_stmt_pg *p, int col)
{
    return col < PG_COLS_KEPT ? p->coltype[col] : (unsigned)PQftype(p->res, col);
}

/* Logs a binary column read as something it cannot be read as. */
static void bad_binary(const struct cc_stmt *s, int col, const char *why)
{
    char head[CC_DBI_HEAD_LEN];

    cc_dbi_sql_head(s->sql, head, sizeof head);
    cc_log_error("db_column_type", "binary column %d (type oid %u) %s in: %s", col,
                 col_type(s->pg, col), why, head);
}

/* The width a fixed-size number type has in binary format, 0 for any other type. */
static int binary_width(unsigned oid)
{
    switch (oid) {
    case PG_INT8OID:
    case PG_FLOAT8OID:
        return 8;
    case PG_INT4OID:
    case PG_FLOAT4OID:
        return 4;
    case PG_INT2OID:
        return 2;
    case PG_BOOLOID:
        return 1;
    default:
        return 0;
    }
}

enum cc_dbi_pg_num cc_dbi_pg_binary_number(struct cc_stmt *s, int col, int64_t *i, double *d)
{
    struct cc_stmt_pg *p = s->pg;
    const char *v;
    unsigned oid;
    int width, len;
    uint64_t u8;
    uint32_t u4;
    uint16_t u2;
    float f;

    if (!is_binary(p, col))
        return CC_DBI_PG_TEXT;
    oid = col_type(p, col);
    if (is_text_type(oid))
        return CC_DBI_PG_TEXT; /* the same bytes as in text format: parsed as text */
    v = value(s, col);
    if (v == NULL)
        return CC_DBI_PG_NONE;
    width = binary_width(oid);
    if (width == 0) {
        bad_binary(s, col, "is not a number type read in binary");
        return CC_DBI_PG_NONE;
    }
    /* The server's length, checked before any byte is read: never trusted. */
    len = PQgetlength(p->res, p->row, col);
    if (len != width) {
        bad_binary(s, col, "has the wrong length");
        return CC_DBI_PG_NONE;
    }
    switch (oid) {
    case PG_INT8OID:
        memcpy(&u8, v, 8);
        *i = (int64_t)be64toh(u8);
        return CC_DBI_PG_INT;
    case PG_INT4OID:
        memcpy(&u4, v, 4);
        *i = (int32_t)be32toh(u4);
        return CC_DBI_PG_INT;
    case PG_INT2OID:
        memcpy(&u2, v, 2);
        *i = (int16_t)be16toh(u2);
        return CC_DBI_PG_INT;
    case PG_BOOLOID:
        *i = v[0] != 0;
        return CC_DBI_PG_INT;
    case PG_FLOAT8OID:
        memcpy(&u8, v, 8);
        u8 = be64toh(u8);
        memcpy(d, &u8, 8); /* IEEE 754 binary64 on both ends */
        return CC_DBI_PG_DOUBLE;
    default: /* PG_FLOAT4OID */
        memcpy(&u4, v, 4);
        u4 = be32toh(u4);
        memcpy(&f, &u4, 4);
        *d = f;
        return CC_DBI_PG_DOUBLE;
    }
}

int cc_dbi_pg_test_set_value(struct cc_stmt *s, int col, const void *v, int len)
{
    struct cc_stmt_pg *p = s->pg;

    if (p->res == NULL || p->row < 0 || p->row >= p->nrows)
        return CC_ERR_INTERNAL;
    return PQsetvalue(p->res, p->row, col, (char *)v, len) ? CC_OK : CC_ERR_NOMEM;
}

const char *cc_dbi_pg_text(struct cc_stmt *s, int col)
{
    const char *v = value(s, col);

    if (v != NULL && is_binary(s->pg, col) && !is_text_type(col_type(s->pg, col))) {
        /* Binary bytes are not the text SQLite or a text result would give: refused. */
        bad_binary(s, col, "is not text");
        return NULL;
    }
    return v;
}

int cc_dbi_pg_is_bool(struct cc_stmt *s, int col)
{
    return value(s, col) != NULL && col_type(s->pg, col) == PG_BOOLOID;
}

const void *cc_dbi_pg_blob(struct cc_stmt *s, int col, size_t *len)
{
    struct cc_stmt_pg *p = s->pg;
    const char *v = value(s, col);

    *len = 0;
    if (v == NULL)
        return NULL;
    if (is_binary(p, col)) {
        unsigned oid = col_type(p, col);

        if (oid != PG_BYTEAOID && !is_text_type(oid)) {
            bad_binary(s, col, "is not bytea or text");
            return NULL;
        }
        *len = (size_t)PQgetlength(p->res, p->row, col); /* raw bytes, nothing to decode */
        return v;
    }
    if (col_type(p, col) != PG_BYTEAOID) {
        *len = (size_t)PQgetlength(p->res, p->row, col);
        return v; /* text read as bytes */
    }
    if (p->blob == NULL || p->blob_col != col) {
        PQfreemem(p->blob);
        p->blob = PQunescapeBytea((const unsigned char *)v, &p->blob_len);
        p->blob_col = col;
        if (p->blob == NULL) {
            cc_log_error("db_column_type", "bytea column %d: out of memory", col);
            return NULL;
        }
    }
    *len = p->blob_len;
    return p->blob;
}

size_t cc_dbi_pg_bytes(struct cc_stmt *s, int col)
{
    size_t len;

    cc_dbi_pg_blob(s, col, &len);
    return len;
}

void cc_dbi_pg_reset(struct cc_stmt *s)
{
    struct cc_stmt_pg *p = s->pg;

    if (p->state == PG_SENT)
        pipe_read(s->st, s); /* its result, to drop; a failure is logged */
    p->state = PG_IDLE;
    p->row = -1;
    p->nrows = 0;
    p->ncols = 0;
    PQclear(p->res);
    p->res = NULL;
    PQfreemem(p->blob);
    p->blob = NULL;
    p->binary = 0;
    for (int i = 0; i < CC_STMT_PARAMS_MAX; i++) {
        p->val[i] = NULL;
        if (p->cap[i] > CC_DBI_PG_KEEP_BYTES) {
            free(p->buf[i]);
            p->buf[i] = NULL;
            p->cap[i] = 0;
        }
    }
}
