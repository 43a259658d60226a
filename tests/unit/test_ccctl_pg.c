/* test_ccctl_pg.c - ccctl_pg_url_split: what of a COLDCHAIN_DB URL may go on pg_dump's
 * command line (everything but the password) and what goes to its passfile; and the
 * database label of ccctl's messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ccctl.h"

#define BUF_MAX 256 /* bytes of the test's URL and password buffers */

/* Splits url; asserts the result, the URL without its password and the password. */
static void split_is(const char *url, int want, const char *bare_want, const char *pw_want)
{
    char bare[BUF_MAX], pw[BUF_MAX];
    int got = ccctl_pg_url_split(url, bare, sizeof bare, pw, sizeof pw);

    if (got != want)
        fail_msg("%s: returned %d, not %d", url, got, want);
    if (want < 0)
        return;
    if (strcmp(bare, bare_want) != 0)
        fail_msg("%s: bare URL '%s', not '%s'", url, bare, bare_want);
    if (strcmp(pw, pw_want) != 0)
        fail_msg("%s: password '%s', not '%s'", url, pw, pw_want);
}

static void test_url_without_password_unchanged(void **state)
{
    (void)state;
    split_is("postgresql:///coldchain?host=/tmp/c&port=55416&user=coldchain", 0,
             "postgresql:///coldchain?host=/tmp/c&port=55416&user=coldchain", "");
    /* host:port is no user:password, and a user alone is no password. */
    split_is("postgresql://db.example:5432/coldchain", 0, "postgresql://db.example:5432/coldchain",
             "");
    split_is("postgres://app@db.example/coldchain?sslmode=require", 0,
             "postgres://app@db.example/coldchain?sslmode=require", "");
}

static void test_userinfo_password_taken_out_and_decoded(void **state)
{
    (void)state;
    split_is("postgresql://app:s%40cr%3At@db.example:5432/coldchain?sslmode=require", 1,
             "postgresql://app@db.example:5432/coldchain?sslmode=require", "s@cr:t");
    /* An '@' in the password spelled raw: the last '@' before the path ends the userinfo. */
    split_is("postgresql://app:a@b@db.example/coldchain", 1,
             "postgresql://app@db.example/coldchain", "a@b");
    split_is("postgresql://app:p%2Fw@/coldchain?host=/tmp/c", 1,
             "postgresql://app@/coldchain?host=/tmp/c", "p/w");
    split_is("postgresql://app:pw@db.example", 1, "postgresql://app@db.example", "pw");
}

static void test_password_parameter_taken_out(void **state)
{
    (void)state;
    split_is("postgresql://h/db?password=x%26y&sslmode=require", 1,
             "postgresql://h/db?sslmode=require", "x&y");
    split_is("postgresql://h/db?sslmode=require&password=x", 1, "postgresql://h/db?sslmode=require",
             "x");
    split_is("postgresql://h/db?a=1&password=x&b=2", 1, "postgresql://h/db?a=1&b=2", "x");
    split_is("postgresql://h/db?password=x", 1, "postgresql://h/db", "x");
    /* Both: neither stays in the URL. */
    split_is("postgresql://u:one@h/db?password=two", 1, "postgresql://u@h/db", "two");
    /* A parameter that only ends in "password" is another one. */
    split_is("postgresql://h/db?xpassword=1", 0, "postgresql://h/db?xpassword=1", "");
}

static void test_malformed_or_too_long_refused(void **state)
{
    char bare[16], pw[BUF_MAX];

    (void)state;
    split_is("postgresql://u:%4@h/db", -1, NULL, NULL);
    split_is("postgresql://u:%zz@h/db", -1, NULL, NULL);
    split_is("postgresql://u:a%00b@h/db", -1, NULL, NULL); /* libpq refuses a NUL too */
    split_is("postgresql://h/db?password=%", -1, NULL, NULL);
    split_is("not a url", -1, NULL, NULL);
    assert_int_equal(
        ccctl_pg_url_split("postgresql://h/a-long-database-name", bare, sizeof bare, pw, sizeof pw),
        -1);
    assert_int_equal(
        ccctl_pg_url_split("postgresql://u:a-long-password@h/d", bare, sizeof bare, pw, 4), -1);
}

static void test_label_never_shows_the_password(void **state)
{
    char buf[BUF_MAX];

    (void)state;
    assert_string_equal(ccctl_db_label("data/coldchain.db", buf, sizeof buf), "data/coldchain.db");
    assert_string_equal(
        ccctl_db_label("postgresql://u:secret@h/db?password=other", buf, sizeof buf),
        "postgresql://u@h/db");
    assert_null(strstr(ccctl_db_label("postgresql://u:se%ZZcret@h/db", buf, sizeof buf), "cret"));
    assert_int_equal(ccctl_is_pg_url("postgres://h/db"), 1);
    assert_int_equal(ccctl_is_pg_url("/var/lib/coldchain/postgresql://x"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_without_password_unchanged),
        cmocka_unit_test(test_userinfo_password_taken_out_and_decoded),
        cmocka_unit_test(test_password_parameter_taken_out),
        cmocka_unit_test(test_malformed_or_too_long_refused),
        cmocka_unit_test(test_label_never_shows_the_password),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
