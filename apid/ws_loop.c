/* ws_loop.c - the live feed's event loop (ws_loop.h): epoll over every feed socket. */
#include "ws_loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_time.h"
#include "cc_wsframe.h"

#define EVENTS_MAX 128  /* epoll events taken per wait */
#define READY_BATCH 128 /* subscribers taken per cc_feed_ready call */
#define READ_CHUNK 4096 /* bytes per recv */

enum conn_state {
    ST_OPEN = 0,   /* feed frames flow */
    ST_CLOSING = 1 /* our close frame is queued or sent; waiting for the client's */
};

/* The frame being written: head, then body (borrowed or owned). */
struct out_frame {
    uint8_t head[CC_WS_SERVER_HEAD_MAX];
    size_t head_len;
    const uint8_t *body;
    size_t body_len;
    char *owned; /* body malloc'd by cc_feed, freed when written */
    size_t off;  /* bytes of head + body written */
    int is_close;
};

struct api_ws_conn {
    struct api_ws_conn *prev, *next; /* the loop's list */
    struct api_ws_conn *inbox_next;  /* waiting for adoption, under loop.mu */
    int fd;
    struct cc_principal who;
    int64_t expires_ms; /* epoch ms; 0: never */
    struct cc_feed_sub *sub;
    int adopted, dead;
    int state;
    struct cc_ws_parser rx;
    int discard_input; /* after a protocol error or the client's close: input is dropped */
    struct out_frame out;
    int want_out; /* EPOLLOUT registered */
    /* Control frames waiting for the current frame to finish. */
    int pong_due, ping_due, close_due;
    uint8_t pong_body[CC_WS_CONTROL_MAX];
    size_t pong_len;
    uint8_t ctl_body[CC_WS_CONTROL_MAX]; /* the control frame being written */
    uint8_t close_body[CC_WS_CONTROL_MAX];
    size_t close_len;
    int close_code;
    int close_sent, shut_wr, peer_closed;
    int64_t ping_out_ms;   /* monotonic ms of the unanswered ping, 0: none */
    int64_t next_ping_ms;  /* monotonic */
    int64_t next_check_ms; /* monotonic: the next user check */
    int64_t deadline_ms;   /* monotonic: CLOSING ends by then */
};

static struct {
    struct cc_feed *feed;
    struct cc_store *st; /* the loop's: user checks */
    int epfd, inbox_fd;
    int64_t ping_ms;
    pthread_t thread;
    atomic_int started; /* read by workers (api_ws_loop_running) */
    atomic_int stop;
    pthread_mutex_t mu; /* the inbox */
    struct api_ws_conn *inbox;
    struct api_ws_conn *conns;     /* adopted, loop thread only */
    struct api_ws_conn *graveyard; /* destroyed during this turn, freed after it */
} loop = {.epfd = -1, .inbox_fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

/* Tags for the loop's own descriptors in epoll_event.data.ptr. */
static int tag_inbox, tag_feed;

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct api_ws_conn *api_ws_conn_new(const struct cc_principal *who, int64_t expires_ms)
{
    struct api_ws_conn *c = calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    c->fd = -1;
    c->who = *who;
    c->expires_ms = expires_ms;
    cc_ws_parser_init(&c->rx);
    return c;
}

void api_ws_conn_free(struct api_ws_conn *c)
{
    if (c == NULL)
        return;
    free(c->out.owned);
    free(c);
}

void api_ws_loop_adopt(struct api_ws_conn *c, struct cc_feed_sub *sub, int fd)
{
    uint64_t one = 1;

    c->sub = sub;
    c->fd = fd;
    pthread_mutex_lock(&loop.mu);
    c->inbox_next = loop.inbox;
    loop.inbox = c;
    pthread_mutex_unlock(&loop.mu);
    if (write(loop.inbox_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        cc_log_warn("ws_wake_failed", "%s", strerror(errno));
}

int api_ws_loop_running(void)
{
    return atomic_load(&loop.started) && !atomic_load(&loop.stop);
}

/* ---- closing ------------------------------------------------------------------------ */

/* Ends c now: its socket is closed (reset when abort: unsent or unread bytes are dropped
 * rather than left to the kernel), its subscriber removed; freed after this turn. */
static void destroy(struct api_ws_conn *c, int abort)
{
    if (c->dead)
        return;
    c->dead = 1;
    if (c->fd >= 0) {
        if (abort) {
            struct linger lg = {1, 0};

            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        epoll_ctl(loop.epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    cc_feed_sub_remove(loop.feed, c->sub);
    c->sub = NULL;
    if (c->adopted) {
        api_metrics_ws_open(-1);
        cc_log_info("ws_close", "user=%lld code=%d", (long long)c->who.user_id, c->close_code);
    }
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (loop.conns == c)
        loop.conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = loop.graveyard;
    loop.graveyard = c;
}

static void pump(struct api_ws_conn *c);

/* Starts the closing handshake with code: our close frame goes out after the frame in
 * hand; the client then has API_WS_CLOSE_GRACE_MS to answer. */
static void begin_close(struct api_ws_conn *c, int code, const char *why)
{
    if (c->dead || c->state != ST_OPEN)
        return;
    c->state = ST_CLOSING;
    c->close_code = code;
    c->close_due = 1;
    c->pong_due = c->ping_due = 0;
    c->deadline_ms = mono_ms() + API_WS_CLOSE_GRACE_MS;
    c->close_len =
        cc_ws_close_payload(c->close_body, code == CC_WS_CLOSE_NO_STATUS ? 0 : code, why);
    if (code != CC_WS_CLOSE_NORMAL)
        cc_log_info("ws_closing", "user=%lld code=%d reason=%s", (long long)c->who.user_id, code,
                    why);
    pump(c);
}

/* ---- writing ------------------------------------------------------------------------ */

static void want_out(struct api_ws_conn *c, int on)
{
    struct epoll_event ev;

    if (c->dead || c->want_out == on)
        return;
    ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(loop.epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = on;
}

static void frame_set(struct api_ws_conn *c, int opcode, const uint8_t *body, size_t len,
                      char *owned)
{
    c->out.head_len = cc_ws_server_head(c->out.head, opcode, len);
    c->out.body = body;
    c->out.body_len = len;
    c->out.owned = owned;
    c->out.off = 0;
    c->out.is_close = opcode == CC_WS_OP_CLOSE;
}

/* Writes what it can of the frame in hand: 1 done, 0 would block, -1 the socket failed. */
static int frame_write(struct api_ws_conn *c)
{
    struct out_frame *o = &c->out;
    size_t total = o->head_len + o->body_len;

    while (o->off < total) {
        struct iovec iov[2];
        struct msghdr mh;
        int n = 0;
        ssize_t w;

        memset(&mh, 0, sizeof mh);
        if (o->off < o->head_len) {
            iov[n].iov_base = o->head + o->off;
            iov[n++].iov_len = o->head_len - o->off;
        }
        if (o->body_len > 0) {
            size_t boff = o->off > o->head_len ? o->off - o->head_len : 0;

            iov[n].iov_base = (void *)(o->body + boff);
            iov[n++].iov_len = o->body_len - boff;
        }
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t)n;
        w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        o->off += (size_t)w;
    }
    free(o->owned);
    o->owned = NULL;
    o->head_len = o->body_len = o->off = 0;
    if (o->is_close)
        c->close_sent = 1;
    o->is_close = 0;
    return 1;
}

/* Maps a subscriber's close to a close frame. */
static void close_from_feed(struct api_ws_conn *c, int code)
{
    if (code == CC_FEED_CLOSE_SLOW) {
        cc_log_warn("ws_dropped", "user=%lld: client too slow, queue full",
                    (long long)c->who.user_id);
        begin_close(c, code, "too slow");
    } else if (code == CC_FEED_CLOSE_AUTH) {
        begin_close(c, code, "token expired or user disabled");
    } else {
        begin_close(c, code > 0 ? code : CC_WS_CLOSE_NORMAL, "");
    }
}

/* Writes until the socket would block, nothing is left, or this turn's share is spent
 * (API_WS_WRITE_BUDGET frames: one busy client cannot hold the loop). */
static void pump(struct api_ws_conn *c)
{
    int budget = API_WS_WRITE_BUDGET;

    while (!c->dead) {
        int rc = c->out.head_len > 0 ? frame_write(c) : 1;

        if (rc < 0) {
            destroy(c, 1);
            return;
        }
        if (rc == 0) {
            want_out(c, 1);
            return;
        }
        /* Nothing in hand: choose the next frame. */
        if (c->state == ST_CLOSING) {
            if (c->close_due) {
                c->close_due = 0;
                frame_set(c, CC_WS_OP_CLOSE, c->close_body, c->close_len, NULL);
                continue;
            }
            if (c->close_sent && !c->shut_wr) {
                /* Our FIN follows the close frame; the client's close or FIN ends it. */
                shutdown(c->fd, SHUT_WR);
                c->shut_wr = 1;
            }
            if (c->close_sent && c->peer_closed)
                destroy(c, 0);
            else
                want_out(c, 0);
            return;
        }
        if (c->pong_due) {
            c->pong_due = 0;
            memcpy(c->ctl_body, c->pong_body, c->pong_len);
            frame_set(c, CC_WS_OP_PONG, c->ctl_body, c->pong_len, NULL);
            continue;
        }
        if (c->ping_due) {
            c->ping_due = 0;
            memcpy(c->ctl_body, "cc", 2);
            frame_set(c, CC_WS_OP_PING, c->ctl_body, 2, NULL);
            continue;
        }
        if (budget-- <= 0) {
            want_out(c, 1); /* more next turn: the socket is writable */
            return;
        }
        char *msg = NULL;
        size_t len = 0;
        int code = 0;
        int what = cc_feed_sub_next(c->sub, 0, &msg, &len, &code);

        if (what == CC_FEED_MSG) {
            frame_set(c, CC_WS_OP_TEXT, (const uint8_t *)msg, len, msg);
            api_metrics_ws_sent();
            continue;
        }
        if (what == CC_FEED_CLOSE) {
            close_from_feed(c, code);
            continue;
        }
        want_out(c, 0); /* idle: the next message makes the subscriber ready */
        return;
    }
}

/* ---- reading ------------------------------------------------------------------------ */

static void on_event(struct api_ws_conn *c, const struct cc_ws_event *ev)
{
    switch (ev->type) {
    case CC_WS_MESSAGE:
        if (c->state == ST_OPEN && ev->opcode == CC_WS_OP_TEXT)
            cc_feed_client_message(c->sub, (const char *)ev->data, ev->len);
        break;
    case CC_WS_PING:
        if (c->state == ST_OPEN) {
            memcpy(c->pong_body, ev->data, ev->len); /* only the latest is answered */
            c->pong_len = ev->len;
            c->pong_due = 1;
        }
        break;
    case CC_WS_PONG:
        c->ping_out_ms = 0;
        break;
    case CC_WS_CLOSE:
        c->peer_closed = 1;
        c->discard_input = 1;
        if (c->state == ST_OPEN)
            begin_close(c, ev->close_code, ""); /* echo the client's code */
        else if (c->close_sent)
            destroy(c, 0);
        break;
    case CC_WS_ERROR:
        c->discard_input = 1;
        begin_close(c, ev->close_code,
                    ev->close_code == CC_WS_CLOSE_TOO_BIG ? "frame too large" : "protocol error");
        break;
    default:
        break;
    }
}

static void on_readable(struct api_ws_conn *c)
{
    uint8_t buf[READ_CHUNK];
    size_t budget = API_WS_READ_BUDGET;

    while (!c->dead && budget > 0) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);

        if (n == 0) {
            destroy(c, 0); /* the client is gone, or answered our FIN */
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                destroy(c, 1);
            break;
        }
        budget = (size_t)n < budget ? budget - (size_t)n : 0;
        /* Bytes after a close or an error are read and dropped: the parser never sees
         * them, so a client streaming a huge frame costs nothing but this buffer. */
        for (size_t off = 0; off < (size_t)n && !c->discard_input && !c->dead;) {
            struct cc_ws_event ev;

            off += cc_ws_parse(&c->rx, buf + off, (size_t)n - off, &ev);
            if (ev.type == CC_WS_NEED_MORE)
                break;
            on_event(c, &ev);
        }
    }
    if (!c->dead)
        pump(c);
}

/* ---- the loop ----------------------------------------------------------------------- */

static void adopt_inbox(void)
{
    struct api_ws_conn *list;
    uint64_t count;
    int64_t now = mono_ms();

    if (read(loop.inbox_fd, &count, sizeof count) < 0 && errno != EAGAIN)
        cc_log_warn("ws_wake_failed", "%s", strerror(errno));
    pthread_mutex_lock(&loop.mu);
    list = loop.inbox;
    loop.inbox = NULL;
    pthread_mutex_unlock(&loop.mu);
    while (list != NULL) {
        struct api_ws_conn *c = list;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};

        list = c->inbox_next;
        c->next = loop.conns;
        if (loop.conns != NULL)
            loop.conns->prev = c;
        loop.conns = c;
        if (c->fd < 0 || epoll_ctl(loop.epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
            if (c->fd >= 0)
                cc_log_error("ws_adopt_failed", "user=%lld: %s", (long long)c->who.user_id,
                             strerror(errno));
            destroy(c, 1);
            continue;
        }
        c->adopted = 1;
        c->next_ping_ms = now + loop.ping_ms;
        c->next_check_ms = now + API_WS_VERIFY_MS;
        api_metrics_ws_open(1);
        cc_log_info("ws_open", "user=%lld role=%s feeds=%zu", (long long)c->who.user_id,
                    cc_role_name(c->who.role), cc_feed_count(loop.feed));
        pump(c); /* the hello, and whatever came since */
    }
}

static void service_ready(void)
{
    struct cc_feed_sub *subs[READY_BATCH];
    size_t n;

    do {
        n = cc_feed_ready(loop.feed, subs, READY_BATCH);
        for (size_t i = 0; i < n; i++) {
            struct api_ws_conn *c = cc_feed_sub_data(subs[i]);

            /* Not adopted yet: adoption pumps it. */
            if (c != NULL && c->adopted && !c->dead)
                pump(c);
        }
    } while (n == READY_BATCH);
}

/* Once per API_WS_TICK_MS: expiry, user checks, pings, closing deadlines. */
static void tick(void)
{
    int64_t now = mono_ms(), wall = cc_now_ms();
    struct api_ws_conn *next;

    for (struct api_ws_conn *c = loop.conns; c != NULL; c = next) {
        next = c->next;
        if (c->dead)
            continue;
        if (c->state == ST_CLOSING) {
            if (now >= c->deadline_ms)
                destroy(c, 1); /* no answer in time: reset, whatever is still queued */
            continue;
        }
        if (c->expires_ms > 0 && wall >= c->expires_ms) {
            begin_close(c, CC_FEED_CLOSE_AUTH, "token expired");
            continue;
        }
        if (now >= c->next_check_ms) {
            c->next_check_ms = now + API_WS_VERIFY_MS;
            if (cc_feed_sub_verify(c->sub, loop.st) == CC_ERR_UNAUTHORIZED) {
                begin_close(c, CC_FEED_CLOSE_AUTH, "user disabled");
                continue;
            }
        }
        if (now >= c->next_ping_ms) {
            if (c->ping_out_ms != 0) {
                begin_close(c, CC_WS_CLOSE_GOING_AWAY, "ping unanswered");
                continue;
            }
            c->ping_out_ms = now;
            c->ping_due = 1;
            c->next_ping_ms = now + loop.ping_ms;
            pump(c);
        }
    }
}

static void bury(void)
{
    while (loop.graveyard != NULL) {
        struct api_ws_conn *c = loop.graveyard;

        loop.graveyard = c->next;
        api_ws_conn_free(c);
    }
}

static void *loop_main(void *arg)
{
    struct epoll_event evs[EVENTS_MAX];
    int64_t next_tick = mono_ms() + API_WS_TICK_MS;

    (void)arg;
    while (!atomic_load(&loop.stop)) {
        int64_t now = mono_ms();
        int wait = next_tick > now ? (int)(next_tick - now) : 0;
        int n = epoll_wait(loop.epfd, evs, EVENTS_MAX, wait);

        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;

            if (p == &tag_inbox) {
                adopt_inbox();
            } else if (p == &tag_feed) {
                service_ready();
            } else {
                struct api_ws_conn *c = p;

                if (c->dead)
                    continue;
                if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                    on_readable(c);
                if (!c->dead && (evs[i].events & EPOLLOUT))
                    pump(c);
            }
        }
        if (mono_ms() >= next_tick) {
            tick();
            next_tick = mono_ms() + API_WS_TICK_MS;
        }
        bury();
    }
    /* Going away: one close frame each if the socket takes it, then reset. */
    adopt_inbox();
    while (loop.conns != NULL) {
        struct api_ws_conn *c = loop.conns;

        begin_close(c, CC_WS_CLOSE_GOING_AWAY, "server stopping");
        destroy(c, 1);
    }
    bury();
    return NULL;
}

int api_ws_loop_start(struct cc_feed *feed, const char *db_path, int ping_interval_s)
{
    struct epoll_event ev;
    int rc;

    loop.feed = feed;
    loop.ping_ms = (int64_t)ping_interval_s * 1000;
    rc = cc_store_open(db_path, 0, &loop.st);
    if (rc != CC_OK)
        goto fail;
    rc = CC_ERR_IO;
    loop.epfd = epoll_create1(EPOLL_CLOEXEC);
    loop.inbox_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop.epfd < 0 || loop.inbox_fd < 0)
        goto fail;
    ev.events = EPOLLIN;
    ev.data.ptr = &tag_inbox;
    if (epoll_ctl(loop.epfd, EPOLL_CTL_ADD, loop.inbox_fd, &ev) != 0)
        goto fail;
    ev.data.ptr = &tag_feed;
    if (epoll_ctl(loop.epfd, EPOLL_CTL_ADD, cc_feed_notify_fd(feed), &ev) != 0)
        goto fail;
    if (pthread_create(&loop.thread, NULL, loop_main, NULL) != 0)
        goto fail;
    atomic_store(&loop.started, 1);
    return CC_OK;

fail:
    cc_log_error("ws_loop_failed", "cannot start the live feed's loop: %s", strerror(errno));
    api_ws_loop_stop();
    return rc;
}

void api_ws_loop_stop(void)
{
    atomic_store(&loop.stop, 1);
    if (atomic_load(&loop.started)) {
        uint64_t one = 1;

        if (write(loop.inbox_fd, &one, sizeof one) < 0 && errno != EAGAIN)
            cc_log_warn("ws_wake_failed", "%s", strerror(errno));
        pthread_join(loop.thread, NULL);
        atomic_store(&loop.started, 0);
    }
    if (loop.epfd >= 0)
        close(loop.epfd);
    if (loop.inbox_fd >= 0)
        close(loop.inbox_fd);
    loop.epfd = loop.inbox_fd = -1;
    cc_store_close(loop.st);
    loop.st = NULL;
}
