/* cc_wake.c - connects to a stopping server's listener until the stop returns (cc_wake.h). */
#include "cc_wake.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cc_time.h"

struct cc_wake {
    pthread_t thread;
    atomic_int stop;
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

static void *wake_main(void *arg)
{
    struct cc_wake *w = arg;

    while (!atomic_load(&w->stop)) {
        int fd = socket(w->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd >= 0) {
            /* Refused or accepted, either is fine: only the poll's wake-up matters. */
            (void)connect(fd, (struct sockaddr *)&w->addr, w->addr_len);
            close(fd);
        }
        cc_sleep_ms(CC_WAKE_INTERVAL_MS);
    }
    return NULL;
}

static int parse_addr(const char *host, int port, struct cc_wake *w)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)&w->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&w->addr;

    if (port <= 0 || port > 65535)
        return -1;
    if (host == NULL || host[0] == '\0' || strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1"; /* a wildcard listener answers on loopback too */
    else if (strcmp(host, "::") == 0)
        host = "::1";
    memset(&w->addr, 0, sizeof w->addr);
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((unsigned short)port);
        w->addr_len = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((unsigned short)port);
        w->addr_len = sizeof *v6;
        return 0;
    }
    return -1;
}

struct cc_wake *cc_wake_start(const char *host, int port)
{
    struct cc_wake *w = calloc(1, sizeof *w);

    if (w == NULL)
        return NULL;
    if (parse_addr(host, port, w) != 0)
        goto fail;
    atomic_init(&w->stop, 0);
    if (pthread_create(&w->thread, NULL, wake_main, w) != 0)
        goto fail;
    return w;

fail:
    free(w);
    return NULL;
}

void cc_wake_stop(struct cc_wake *w)
{
    if (w == NULL)
        return;
    atomic_store(&w->stop, 1);
    pthread_join(w->thread, NULL);
    free(w);
}
