/* test_wake.c - cc_wake: a listener's poll ends soon after cc_wake_start, connections
 * keep coming every CC_WAKE_INTERVAL_MS, none after cc_wake_stop, and an address that does
 * not parse starts nothing (the caller's stop then only takes longer). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_time.h"
#include "cc_wake.h"

/* civetweb's listener poll waits 2 s (cc_wake.h): a wake-up must come well before. */
#define WAKE_DEADLINE_MS 1000
/* A poll that shows nothing came: long against CC_WAKE_INTERVAL_MS. */
#define QUIET_MS (20 * CC_WAKE_INTERVAL_MS)

static int listener(const char *addr, int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, addr, &a.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Milliseconds until fd is readable (a connection waits), or -1 after timeout_ms. */
static long ms_until_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int64_t t0 = cc_mono_ms();
    int n = poll(&p, 1, timeout_ms);

    return n == 1 ? (long)(cc_mono_ms() - t0) : -1;
}

static void drain(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    while (poll(&p, 1, 0) == 1) {
        int c = accept(fd, NULL, NULL);

        if (c < 0)
            break;
        close(c);
    }
}

static void test_wake_ends_the_poll_and_repeats(void **state)
{
    (void)state;
    int port;
    int fd = listener("127.0.0.1", &port);
    struct cc_wake *w = cc_wake_start("127.0.0.1", port);
    long ms;

    assert_non_null(w);
    ms = ms_until_readable(fd, 5000);
    assert_true(ms >= 0 && ms < WAKE_DEADLINE_MS);
    drain(fd);
    /* Not one connection: mg_stop may take the first before its stop flag is set. */
    ms = ms_until_readable(fd, 5000);
    assert_true(ms >= 0 && ms < WAKE_DEADLINE_MS);
    cc_wake_stop(w);
    drain(fd);
    assert_int_equal(ms_until_readable(fd, QUIET_MS), -1); /* none after the stop */
    close(fd);
}

static void test_wake_wildcard_means_loopback(void **state)
{
    (void)state;
    int port;
    int fd = listener("127.0.0.1", &port);
    struct cc_wake *w = cc_wake_start("0.0.0.0", port);
    long ms;

    assert_non_null(w);
    ms = ms_until_readable(fd, 5000);
    assert_true(ms >= 0 && ms < WAKE_DEADLINE_MS);
    cc_wake_stop(w);
    close(fd);
}

static void test_wake_refuses_what_it_cannot_reach(void **state)
{
    (void)state;
    assert_null(cc_wake_start("localhost", 8080)); /* a name, not an address literal */
    assert_null(cc_wake_start("127.0.0.1", 0));
    assert_null(cc_wake_start("127.0.0.1", 65536));
    cc_wake_stop(NULL); /* a no-op, as after a failed start */
}

static void test_wake_stop_without_listener(void **state)
{
    (void)state;
    int port;
    int fd = listener("127.0.0.1", &port);

    close(fd); /* connections are refused: the thread goes on until stopped */
    struct cc_wake *w = cc_wake_start("127.0.0.1", port);

    assert_non_null(w);
    cc_sleep_ms(5 * CC_WAKE_INTERVAL_MS);
    cc_wake_stop(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wake_ends_the_poll_and_repeats),
        cmocka_unit_test(test_wake_wildcard_means_loopback),
        cmocka_unit_test(test_wake_refuses_what_it_cannot_reach),
        cmocka_unit_test(test_wake_stop_without_listener),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
