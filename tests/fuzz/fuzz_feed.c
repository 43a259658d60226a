/* fuzz_feed.c - the live feed's handling of broker messages (common/api/cc_feed.c
 * cc_feed_on_message), which turns devices/{serial}/readings and alerts/{cellId} into
 * the WebSocket messages every subscriber gets, and the same bytes as a client's message
 * (cc_feed_client_message: a ping is answered with a pong). A temp SQLite database with two
 * customers, their cells and devices is made once in LLVMFuzzerInitialize. Input: one selector byte
 * (0-3: a known topic, else the topic is read from the input up to a 0x00 byte), then the payload.
 * Invariants: every queued message is one JSON object with a "type"; a subscriber only
 * ever gets messages of the cells it may read (SPEC §5: customer A cells 1-2, customer B
 * cell 3, the admin all); an alert is relayed only for the cell its topic names; the
 * count cc_feed_on_message reports is the count the subscribers receive. */
#include <stdatomic.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cc_db.h"
#include "cc_feed.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "fuzz.h"

#define NOW_MS 1764000000000LL

static const char fixture[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES"
    " (2, 'a@x.io', 'x', 'CUSTOMER', 'A', 0), (3, 'b@x.io', 'x', 'CUSTOMER', 'B', 0),"
    " (4, 'adm@x.io', 'x', 'ADMIN', 'Adm', 0);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 2, 'LA', 0),"
    " (2, 3, 'LB', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at) VALUES"
    " (1, 1, 'A1', 2, 8, 0), (2, 1, 'A2', -25, -15, 0), (3, 2, 'B1', 2, 8, 0);"
    "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash, api_key_prefix,"
    " created_at) VALUES (1, 'DA1', 1, 'h', 'p', 0), (2, 'DA2', 2, 'h', 'p', 0),"
    " (3, 'DB1', 3, 'h', 'p', 0);";

static const struct cc_principal WHO[3] = {
    {2, CC_ROLE_CUSTOMER}, {3, CC_ROLE_CUSTOMER}, {4, CC_ROLE_ADMIN}};
static const int64_t ALLOWED_MASK[3] = {1 << 1 | 1 << 2, 1 << 3, 1 << 1 | 1 << 2 | 1 << 3};

static struct cc_store *feed_st, *sub_st;
static struct cc_feed *feed;
static struct cc_feed_sub *subs[3];
static char db_path[256];

static void cleanup(void)
{
    cc_db_remove_files(db_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sqlite3 *db = NULL;
    int fd;

    (void)argc;
    (void)argv;
    /* tools/fuzz.sh points FUZZ_TMPDIR into build/fuzz/ and empties it after each
     * target: a crash (abort) skips the atexit clean-up. */
    const char *tmp = getenv("FUZZ_TMPDIR");

    snprintf(db_path, sizeof db_path, "%s/cc-fuzz-feed-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    fd = mkstemp(db_path);
    if (fd < 0)
        abort();
    close(fd);
    atexit(cleanup);
    if (cc_db_open(db_path, CC_DB_CREATE, &db) != CC_OK || cc_db_migrate(db) != CC_OK ||
        sqlite3_exec(db, fixture, NULL, NULL, NULL) != SQLITE_OK)
        abort();
    cc_db_close(db);
    if (cc_store_open(db_path, 0, &feed_st) != CC_OK ||
        cc_store_open(db_path, 0, &sub_st) != CC_OK || cc_feed_new(feed_st, &feed) != CC_OK)
        abort();
    for (int i = 0; i < 3; i++)
        if (cc_feed_sub_new(feed, sub_st, &WHO[i], 0, NULL, &subs[i]) != CC_OK)
            abort();
    return 0;
}

/* The cell a feed message names: coldCellId, or alert.coldCellId; 0 for none. */
static int64_t msg_cell(const cJSON *o, const char **type)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "coldCellId");

    FUZZ_CHECK(cJSON_IsString(t));
    *type = t->valuestring;
    if (strcmp(*type, "alert") == 0)
        c = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "alert"),
                                             "coldCellId");
    return cJSON_IsNumber(c) ? (int64_t)c->valuedouble : 0;
}

/* Takes every queued message of subscriber i; returns how many were feed messages. */
static size_t drain(int i, int64_t alert_cell)
{
    size_t n = 0;
    int code = 0;
    char *msg;
    size_t len;

    while (cc_feed_sub_next(subs[i], 0, &msg, &len, &code) == CC_FEED_MSG) {
        cJSON *o = cJSON_ParseWithLength(msg, len);
        const char *type;
        int64_t cell;

        FUZZ_CHECK(len == strlen(msg));
        FUZZ_CHECK(cJSON_IsObject(o));
        cell = msg_cell(o, &type);
        if (strcmp(type, "reading") == 0) {
            FUZZ_CHECK(cell >= 1 && cell <= 3 && (ALLOWED_MASK[i] >> cell & 1));
            n++;
        } else if (strcmp(type, "alert") == 0) {
            FUZZ_CHECK(alert_cell >= 1 && alert_cell <= 3 && (ALLOWED_MASK[i] >> alert_cell & 1));
            FUZZ_CHECK(cell == 0 || cell == alert_cell);
            n++;
        }
        cJSON_Delete(o);
        free(msg);
    }
    FUZZ_CHECK(code == 0); /* never closed: each input is drained */
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const topics[] = {"devices/DA1/readings", "devices/DB1/readings", "alerts/1",
                                         "alerts/3"};
    const uint8_t *payload;
    size_t plen, queued = 0, got = 0;
    char *topic, *body;
    int64_t alert_cell = 0;
    int rc;

    if (size < 1)
        return 0;
    if (data[0] < 4) {
        topic = fuzz_cstr((const uint8_t *)topics[data[0]], strlen(topics[data[0]]));
        payload = data + 1;
        plen = size - 1;
    } else {
        topic = fuzz_split(data + 1, size - 1, &payload, &plen);
    }
    body = fuzz_dup(payload, plen); /* MQTT payloads are not NUL-terminated */
    if (strncmp(topic, "alerts/", 7) == 0) {
        char *end;

        alert_cell = strtoll(topic + 7, &end, 10);
        if (*end != '\0')
            alert_cell = 0;
    }
    rc = cc_feed_on_message(feed, topic, body, plen, NOW_MS, &queued);
    /* CC_ERR_BAD_JSON (a readings payload that is not JSON) comes from cc_validate. */
    FUZZ_CHECK(rc == CC_OK || rc == CC_ERR_VALIDATION || rc == CC_ERR_BAD_JSON ||
               rc == CC_ERR_NOT_FOUND || rc == CC_ERR_TOO_LARGE || rc == CC_ERR_NOMEM);
    for (int i = 0; i < 3; i++)
        got += drain(i, alert_cell);
    FUZZ_CHECK(got == queued);
    /* The same bytes as a client's WebSocket message: only a ping is answered, with a
     * pong; anything else queues nothing. */
    {
        struct cc_feed_sub *ready[4];
        char *msg = NULL;
        size_t len = 0;
        int code = 0;

        rc = cc_feed_client_message(subs[0], body, plen);
        FUZZ_CHECK(rc == CC_OK || rc == CC_ERR_VALIDATION);
        FUZZ_CHECK(rc != CC_OK || plen <= CC_FEED_CLIENT_MSG_MAX);
        if (rc == CC_OK) {
            FUZZ_CHECK(cc_feed_sub_next(subs[0], 0, &msg, &len, &code) == CC_FEED_MSG);
            FUZZ_CHECK(len == 15 && memcmp(msg, "{\"type\":\"pong\"}", 15) == 0);
            free(msg);
        }
        FUZZ_CHECK(cc_feed_sub_next(subs[0], 0, &msg, &len, &code) == CC_FEED_IDLE);
        while (cc_feed_ready(feed, ready, 4) > 0) /* as apid's consumer does */
            ;
    }
    free(topic);
    free(body);
    return 0;
}
