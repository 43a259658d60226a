/* fuzz_ingest.c - the one ingestion path (common/engine/cc_ingest.c) that every device message
 * takes after the broker: MQTT topics and payloads as ingestd gets them
 * (cc_ingest_mqtt: topic parsing, validation, storage, dead letters, the alert engine),
 * and HTTP readings as apid gets them (cc_ingest_readings, all or nothing, on a thread
 * with a civetweb worker's 100 KiB stack). A temp SQLite database with one customer,
 * two cold cells and two devices (DA1, DA2) is made once in LLVMFuzzerInitialize; each
 * input runs inside BEGIN IMMEDIATE ... ROLLBACK, so every input meets the same state.
 * Input: a selector byte: bit 0 set: HTTP for device DA1 (payload follows); else bits
 * 1-2 pick devices/DA1/readings, devices/DA1/status, devices/NOPE/readings, or (3) the
 * topic is read from the input up to a 0x00 byte; the payload follows.
 * Invariants: what is stored is what was reported accepted, and only within the SPEC §3
 * ranges; a refusal over MQTT leaves a dead letter of at most 4 KiB; an HTTP request
 * with any invalid item stores nothing; only a database failure fails the call. */
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cc_db.h"
#include "cc_ingest.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"
#include "fuzz.h"

#define NOW_MS 1764000000000LL
#define DEAD_LETTER_MAX 4096 /* bytes of a payload kept in rejected_messages (schema) */

static const char fixture[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES"
    " (2, 'a@x.io', 'x', 'CUSTOMER', 'A', 0);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 2, 'LA', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at) VALUES"
    " (1, 1, 'A1', 2, 8, 0), (2, 1, 'A2', -25, -15, 0);"
    "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash, api_key_prefix,"
    " created_at) VALUES (1, 'DA1', 1, 'h', 'p', 0), (2, 'DA2', 2, 'h', 'p', 0);";

static struct cc_store *st;
static char db_path[256];

static void cleanup(void)
{
    cc_store_close(st);
    cc_db_remove_files(db_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* tools/fuzz.sh points FUZZ_TMPDIR into build/fuzz/ and empties it after each
     * target: a crash (abort) skips the atexit clean-up. */
    const char *tmp = getenv("FUZZ_TMPDIR");
    sqlite3 *db = NULL;
    int fd;

    (void)argc;
    (void)argv;
    snprintf(db_path, sizeof db_path, "%s/cc-fuzz-ingest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    fd = mkstemp(db_path);
    if (fd < 0)
        abort();
    close(fd);
    if (cc_db_open(db_path, CC_DB_CREATE, &db) != CC_OK || cc_db_migrate(db) != CC_OK ||
        sqlite3_exec(db, fixture, NULL, NULL, NULL) != SQLITE_OK)
        abort();
    cc_db_close(db);
    if (cc_store_open(db_path, 0, &st) != CC_OK)
        abort();
    atexit(cleanup);
    return 0;
}

static int64_t count(const char *sql)
{
    sqlite3_stmt *s = NULL;
    int64_t n = -1;

    if (sqlite3_prepare_v2(cc_store_db(st), sql, -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    FUZZ_CHECK(n >= 0);
    return n;
}

static void check_error(const cJSON *e)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(e, "error");

    FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(in, "code")));
    FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(in, "message")));
}

/* What was stored in this transaction agrees with what was reported. */
static void check_stored(const struct cc_ingest_result *res)
{
    FUZZ_CHECK(count("SELECT count(*) FROM readings") == (int64_t)res->accepted);
    FUZZ_CHECK(count("SELECT count(*) FROM readings WHERE NOT (temperature BETWEEN -100 AND 150)"
                     " OR humidity NOT BETWEEN 0 AND 100 OR battery_level NOT BETWEEN 0 AND 100") ==
               0);
    FUZZ_CHECK(res->accepted <= 1000);
    if (res->error != NULL)
        check_error(res->error);
}

struct job {
    const char *payload;
    size_t len;
};

static void *http_on_worker(void *arg)
{
    const struct job *j = arg;
    struct cc_ingest_result res;
    int rc;

    memset(&res, 0, sizeof res);
    rc = cc_ingest_readings(st, "DA1", j->payload, j->len, NOW_MS, CC_INGEST_ALL_OR_NOTHING, &res);
    FUZZ_CHECK(rc == CC_OK || rc == CC_ERR_BAD_JSON || rc == CC_ERR_VALIDATION ||
               rc == CC_ERR_NOMEM);
    if (rc == CC_OK) {
        FUZZ_CHECK(res.rejected == 0 && res.accepted + res.duplicates >= 1);
    } else if (rc != CC_ERR_NOMEM) {
        FUZZ_CHECK(res.error != NULL && res.accepted == 0);
    }
    check_stored(&res);
    cc_ingest_result_clear(&res);
    return NULL;
}

static void mqtt(const char *topic, const char *payload, size_t len)
{
    struct cc_ingest_result res;
    char serial[CC_SERIAL_MAX + 1];
    int rc;

    memset(&res, 0, sizeof res);
    memset(serial, 'x', sizeof serial);
    rc = cc_ingest_mqtt(st, topic, payload, len, NOW_MS, &res, serial);
    FUZZ_CHECK(rc == CC_OK || rc == CC_ERR_NOMEM);
    FUZZ_CHECK(memchr(serial, '\0', sizeof serial) != NULL);
    if (serial[0] != '\0') {
        size_t n = strlen(serial);

        FUZZ_CHECK(strncmp(topic, "devices/", 8) == 0 && strncmp(topic + 8, serial, n) == 0 &&
                   topic[8 + n] == '/');
    }
    check_stored(&res);
    if (res.error != NULL) {
        FUZZ_CHECK(count("SELECT count(*) FROM rejected_messages") >= 1);
        FUZZ_CHECK(count("SELECT coalesce(max(length(payload)), 0) FROM rejected_messages") <=
                   DEAD_LETTER_MAX);
    }
    cc_ingest_result_clear(&res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const topics[] = {"devices/DA1/readings", "devices/DA1/status",
                                         "devices/NOPE/readings"};
    const uint8_t *payload = data + 1;
    size_t plen = size - 1;
    char *topic = NULL, *body;
    unsigned sel;

    if (size < 1 || size > 64 * 1024)
        return 0;
    sel = data[0];
    if (!(sel & 1) && (sel >> 1 & 3) == 3)
        topic = fuzz_split(data + 1, size - 1, &payload, &plen);
    body = fuzz_dup(payload, plen); /* payloads are not NUL-terminated */
    FUZZ_CHECK(cc_store_begin(st) == CC_OK);
    if (sel & 1) {
        struct job j = {body, plen};

        fuzz_on_worker_stack(http_on_worker, &j);
    } else {
        mqtt(topic ? topic : topics[sel >> 1 & 3], body, plen);
    }
    cc_store_rollback(st);
    free(body);
    free(topic);
    return 0;
}
