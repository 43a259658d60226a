/* bench_civet_baseline.c - the civetweb baseline for `make bench`: the same civetweb
 * settings as apid (threads, keep-alive, tcp_nodelay) and one begin_request handler
 * that answers every request with a constant JSON body in one write. The ratio of
 * apid's req/s to this one's says what apid's own work costs.
 *
 * usage: build/bench_civet_baseline <port>   (127.0.0.1; SIGTERM or SIGINT stops it) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <civetweb.h>

#define BASELINE_THREADS "16" /* apid's API_NUM_THREADS */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int handler(struct mg_connection *conn)
{
    static const char answer[] = "HTTP/1.1 200 OK\r\n"
                                 "Connection: keep-alive\r\n"
                                 "Content-Type: application/json\r\n"
                                 "Content-Length: 15\r\n\r\n"
                                 "{\"status\":\"ok\"}";

    mg_write(conn, answer, sizeof answer - 1);
    return 200;
}

int main(int argc, char **argv)
{
    struct mg_callbacks cb;
    struct mg_context *ctx;
    char ports[32];
    struct sigaction sa;

    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: %s <port>\n", argv[0]);
        return 2;
    }
    snprintf(ports, sizeof ports, "127.0.0.1:%d", atoi(argv[1]));
    const char *options[] = {
        "listening_ports",
        ports,
        "num_threads",
        BASELINE_THREADS,
        "enable_keep_alive",
        "yes",
        "keep_alive_timeout_ms",
        "5000",
        "request_timeout_ms",
        "10000",
        "tcp_nodelay",
        "1",
        NULL,
    };
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    memset(&cb, 0, sizeof cb);
    cb.begin_request = handler;
    mg_init_library(0);
    ctx = mg_start(&cb, NULL, options);
    if (ctx == NULL) {
        fprintf(stderr, "bench_civet_baseline: cannot listen on %s\n", ports);
        return 1;
    }
    while (!stop_requested) {
        struct timespec ts = {0, 100 * 1000000L};

        nanosleep(&ts, NULL);
    }
    mg_stop(ctx);
    mg_exit_library();
    return 0;
}
