/*
 * coldchain_auth.c - mosquitto plugin that lets devices in by their API key and keeps each
 * device to its own topics (SPEC §3).
 *
 * Username = devices.serial_number, password = the API key. The plugin hashes the password
 * with SHA-256 and compares the lower-case hex with devices.api_key_hash in constant time, on
 * every CONNECT, so a regenerated key takes effect on the next connection with no broker
 * reload. A device must use its serial as client id (else CONNACK 5: it could otherwise take
 * over ingestd's or another device's session), and no username that starts with the operators'
 * prefix "coldchain-" is ever a device. On the device-certificate listener (require_certificate)
 * a certificate replaces the key: its CN must equal the username and its subjectAltName URI
 * urn:coldchain:device:<id> must name the id of the row with that serial, so a certificate dies
 * with its row (a new device given the serial later has another id). A device may publish only
 * to devices/{serial}/readings and devices/{serial}/status, subscribe only under
 * devices/{serial}/ and receive only devices/{serial}/errors. Anything else from a device is
 * denied. The pure checks are in
 * cc_auth_rules.c.
 *
 * A username that is not a device serial gets MOSQ_ERR_PLUGIN_DEFER, so operators and ingestd
 * are handled by password_file and acl_file. mosquitto 2.0.11 asks this plugin BEFORE the
 * files, so the plugin also defers for every username listed in the password file
 * (plugin_opt_operators_file): a device whose serial equals an operator's name can neither log
 * in as that operator nor lock the operator out. A database error also defers: a device then
 * has no rule in the files and is refused, an operator keeps working. broker-config/README.md
 * has the whole chain as tests/integration/test_broker_auth.py shows it.
 *
 * You may not want it if the broker cannot read the coldchain database: it opens the store
 * read-only, once (the SQLite file, or a PostgreSQL database when db_path is a
 * postgresql:// URL, through common/store's cc_dbi.h like the daemons), and keeps its one
 * prepared statement for its whole life. A failed lookup reopens the store once and retries,
 * so a restarted PostgreSQL costs one slow CONNECT, not a broker restart; while the database
 * stays away, at most one reopen per AUTH_REOPEN_BACKOFF_MS (libpq's connect_timeout bounds
 * each), so the broker's one thread is not stalled at every publish check. The broker is
 * single-threaded, so the store is never used from two threads.
 *
 * Build (from the repository root; links libcommon's store and common/base/cc_crypto.c):
 *   make build/coldchain_auth.so
 *
 * Config lines (mosquitto.conf; tools/broker_conf.sh fills them in):
 *   plugin /path/to/coldchain_auth.so
 *   plugin_opt_db_path /path/to/coldchain.db     (or postgresql:///coldchain?host=...)
 *   plugin_opt_operators_file /path/to/passwd      (the password_file; read once at start)
 * (2.0.11 rejects option keys shorter than three characters, "Invalid auth_opt_ config
 * option", so plugin_opt_db only works on later brokers; both names are accepted.)
 *
 * Needs mosquitto 2.0 or later (plugin interface version 5); tested on 2.0.11.
 * Never logs a password, a key or a key hash.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "cc_auth_rules.h" /* pure checks: device names, client ids, topics */
#include "cc_crypto.h"     /* cc_api_key_matches: SHA-256 hex, compared in constant time */
#include "cc_dbi.h"        /* one statement API on SQLite and PostgreSQL */
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_time.h"

#define AUTH_MAX_SERIAL 128         /* bytes; longer usernames are never devices */
#define AUTH_MAX_OPERATORS 64       /* usernames read from the operators file */
#define AUTH_MAX_LINE 1024          /* bytes per line of the operators file */
#define AUTH_SESSION_BUCKETS 4096   /* hash buckets of the connected-device table */
#define AUTH_REOPEN_BACKOFF_MS 2000 /* least time between two reopens of a failed store */

static const char find_device_sql[] =
    "SELECT id, api_key_hash FROM devices WHERE serial_number = $1";

/* Plugin state, owned by the plugin from init to cleanup. */
struct auth_state {
    mosquitto_plugin_id_t *pid;
    struct cc_store *st;     /* read-only; SQLite waits CC_DB_BUSY_TIMEOUT_MS on a lock */
    char db_path[1024];      /* a path or a postgresql:// URL, for a reopen */
    int64_t reopen_after_ms; /* cc_mono_ms before which a failed store is not reopened */
    int n_operators;
    char operators[AUTH_MAX_OPERATORS][AUTH_MAX_SERIAL + 1]; /* never devices */
};

static struct auth_state state;

/* The row and key hash each connected device logged in with. Every ACL check compares them
 * with the database, so a regenerated key, or a device deleted and its serial given to another
 * row, cuts off a device that is already connected at its next publish or delivery, not only
 * at its next CONNECT. Keyed by the broker's
 * client pointer; an entry goes on DISCONNECT (and a reused pointer is overwritten by its
 * own BASIC_AUTH first). The broker is single-threaded: no lock. */
struct session {
    struct session *next;
    const struct mosquitto *client;
    int64_t device_id; /* devices.id at login: ids are never reused, serials are */
    int by_cert;       /* logged in with a device certificate: no key to compare */
    char hash_hex[CC_SHA256_HEX_LEN];
};
static struct session *sessions[AUTH_SESSION_BUCKETS];
/* The session of the client disconnected last, kept for its last will. mosquitto 2.0.11
 * reports a disconnect to plugins before it checks the will's publish (context__disconnect:
 * plugin__handle_disconnect, then context__send_will's ACL check), so without it every
 * device's will was refused and none went OFFLINE by it (SPEC §3). One is enough: the broker
 * is single-threaded and the check follows the event in the same call. Only a WRITE may use
 * it; a will delayed by an MQTT 5 will-delay interval comes later and is still refused. */
static struct session *departed;

static struct session **session_slot(const struct mosquitto *client)
{
    uintptr_t h = (uintptr_t)client;
    struct session **pp = &sessions[(h >> 4) % AUTH_SESSION_BUCKETS];

    while (*pp && (*pp)->client != client)
        pp = &(*pp)->next;
    return pp;
}

/* Records client's row and key hash (by_cert: a certificate login, hash unused). 0, or -1 when
 * out of memory (the login is then refused). */
static int session_put(const struct mosquitto *client, int64_t device_id, int by_cert,
                       const char *hash_hex)
{
    struct session **pp = session_slot(client);

    if (departed != NULL && departed->client == client) {
        free(departed); /* a new connection at the address of the one that left */
        departed = NULL;
    }
    if (*pp == NULL) {
        *pp = calloc(1, sizeof(**pp));
        if (*pp == NULL)
            return -1;
        (*pp)->client = client;
    }
    (*pp)->device_id = device_id;
    (*pp)->by_cert = by_cert;
    memcpy((*pp)->hash_hex, hash_hex, CC_SHA256_HEX_LEN);
    return 0;
}

static void session_drop(const struct mosquitto *client)
{
    struct session **pp = session_slot(client);
    struct session *s = *pp;

    if (s) {
        *pp = s->next;
        free(departed);
        departed = s;
    }
}

static void sessions_free(void)
{
    for (int i = 0; i < AUTH_SESSION_BUCKETS; i++)
        while (sessions[i]) {
            struct session *s = sessions[i];
            sessions[i] = s->next;
            free(s);
        }
    free(departed);
    departed = NULL;
}

/* 1 if username is an operator's (listed in the password file), else 0. */
static int is_operator(const char *username)
{
    int i;

    for (i = 0; i < state.n_operators; i++) {
        if (strcmp(state.operators[i], username) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Reads the usernames of a mosquitto password file ("user:hash" lines) into state.operators.
 * MOSQ_ERR_SUCCESS, or MOSQ_ERR_INVAL (logged) if it cannot be read or holds too many. */
static int load_operators(const char *path)
{
    FILE *f;
    char line[AUTH_MAX_LINE];
    char *colon;
    size_t len;
    int rc = MOSQ_ERR_SUCCESS;

    f = fopen(path, "r");
    if (f == NULL) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "coldchain_auth: cannot read %s", path);
        return MOSQ_ERR_INVAL;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strchr(line, '\n') == NULL && !feof(f)) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "coldchain_auth: %s: line over %d bytes", path,
                                 AUTH_MAX_LINE - 2);
            rc = MOSQ_ERR_INVAL;
            break;
        }
        colon = strchr(line, ':');
        if (line[0] == '#' || colon == NULL) {
            continue;
        }
        len = (size_t)(colon - line);
        if (len == 0 || len > AUTH_MAX_SERIAL || state.n_operators == AUTH_MAX_OPERATORS) {
            mosquitto_log_printf(MOSQ_LOG_ERR,
                                 "coldchain_auth: %s: more than %d users or a "
                                 "username over %d bytes",
                                 path, AUTH_MAX_OPERATORS, AUTH_MAX_SERIAL);
            rc = MOSQ_ERR_INVAL;
            break;
        }
        memcpy(state.operators[state.n_operators], line, len);
        state.operators[state.n_operators][len] = '\0';
        state.n_operators++;
    }
    if (ferror(f)) {
        rc = MOSQ_ERR_INVAL;
    }
    fclose(f);
    return rc;
}

/* One lookup on the open store: 1 found, 0 not, -1 a database error (logged by the store). */
static int lookup(const char *serial, int64_t *device_id, char hash_hex[CC_SHA256_HEX_LEN])
{
    struct cc_stmt *stmt = NULL;
    int found = -1;
    int rc;

    if (state.st == NULL)
        return -1;
    rc = cc_stmt_prepare(state.st, find_device_sql, &stmt);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 1, serial);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_OK) {
        found = 0;
    } else if (rc == CC_ROW) {
        const char *hash = cc_stmt_column_text(stmt, 1);

        found = 1;
        *device_id = cc_stmt_column_int64(stmt, 0);
        hash_hex[0] = '\0';
        if (hash && strlen(hash) == CC_SHA256_HEX_LEN - 1) {
            memcpy(hash_hex, hash, CC_SHA256_HEX_LEN);
        }
    }
    cc_stmt_release(stmt);
    return found;
}

/* Looks up serial. Returns 1, sets *device_id and copies its key hash into hash_hex when the
 * device exists, 0 when it does not or the name is an operator's, -1 on a database error
 * (logged). A failed lookup reopens the store and tries once more: a PostgreSQL server that
 * restarted has dropped the connection and its prepared statement. */
static int find_device(const char *serial, int64_t *device_id, char hash_hex[CC_SHA256_HEX_LEN])
{
    int64_t now;
    int found;

    if (!cc_auth_is_device_name(serial) || is_operator(serial)) {
        return 0;
    }
    found = lookup(serial, device_id, hash_hex);
    if (found >= 0) {
        return found;
    }
    /* The broker is single-threaded and a reopen can wait (libpq's connect_timeout): while
     * the database stays away, every publish check would otherwise stall the broker on a
     * new connection. One attempt per AUTH_REOPEN_BACKOFF_MS; in between, fail fast. */
    now = cc_mono_ms();
    if (now >= state.reopen_after_ms) {
        cc_store_close(state.st);
        state.st = NULL;
        if (cc_store_open(state.db_path, CC_STORE_READONLY, &state.st) == CC_OK) {
            found = lookup(serial, device_id, hash_hex);
        }
        if (found < 0) {
            state.reopen_after_ms = now + AUTH_REOPEN_BACKOFF_MS;
            mosquitto_log_printf(MOSQ_LOG_ERR,
                                 "coldchain_auth: device lookup failed; next reopen in %d ms",
                                 AUTH_REOPEN_BACKOFF_MS);
        }
    }
    return found;
}

/* The device id the certificate's subjectAltName URIs name (cc_auth_cert_device_id), or 0. */
static int64_t cert_device_id(X509 *cert)
{
    const char *uris[CC_AUTH_CERT_URIS_MAX + 1];
    size_t lens[CC_AUTH_CERT_URIS_MAX + 1];
    size_t n = 0;
    int crit = -1;
    int64_t id;
    /* NULL when absent, and when the extension appears twice (crit -2). */
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);

    if (names == NULL) {
        return 0;
    }
    /* One more than the rules look at, so that they can refuse a certificate with more. */
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && n <= CC_AUTH_CERT_URIS_MAX; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);

        if (g->type == GEN_URI) {
            uris[n] = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
            lens[n] = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier);
            n++;
        }
    }
    id = cc_auth_cert_device_id(uris, lens, n);
    GENERAL_NAMES_free(names);
    return id;
}

/* 1 if the client presented a certificate whose one common name is username and whose device
 * id is device_id, 0 if it presented another, -1 if it presented none. Only the certificate
 * listener asks for one (require_certificate; mosquitto has verified it against that
 * listener's cafile by now). */
static int cert_names(const struct mosquitto *client, const char *username, int64_t device_id)
{
    X509 *cert = mosquitto_client_certificate(client); /* a reference of our own */
    X509_NAME *name;
    const ASN1_STRING *cn;
    int64_t cert_id;
    int i;
    int ok = 0;

    if (cert == NULL) {
        return -1;
    }
    name = X509_get_subject_name(cert);
    i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    /* Exactly one CN: with two, which one names the device would be a guess. */
    if (i >= 0 && X509_NAME_get_index_by_NID(name, NID_commonName, i) < 0) {
        cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        ok = cn && cc_auth_cert_name_allowed((const char *)ASN1_STRING_get0_data(cn),
                                             (size_t)ASN1_STRING_length(cn), username);
    }
    if (!ok) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             "coldchain_auth: device %s refused: certificate names another",
                             username);
    } else if ((cert_id = cert_device_id(cert)) != device_id) {
        /* Issued for a row that is gone: its serial now names another device. */
        ok = 0;
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             "coldchain_auth: device %s refused: certificate is for device id "
                             "%lld, the serial is device id %lld (0: none or malformed)",
                             username, (long long)cert_id, (long long)device_id);
    }
    X509_free(cert);
    return ok;
}

/* MOSQ_EVT_BASIC_AUTH: SUCCESS for a device with its key, or with a device certificate for
 * its serial; AUTH for a device with a wrong or missing key, another serial's certificate or
 * a client id that is not its serial; PLUGIN_DEFER for anyone else (and on a database error). */
static int on_basic_auth(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_basic_auth *ed = event_data;
    char hash_hex[CC_SHA256_HEX_LEN];
    int64_t device_id = 0;
    int found;
    int by_cert;

    (void)event;
    (void)userdata;
    if (ed->username == NULL) {
        return MOSQ_ERR_PLUGIN_DEFER;
    }
    found = find_device(ed->username, &device_id, hash_hex);
    if (found != 1) {
        return MOSQ_ERR_PLUGIN_DEFER;
    }
    by_cert = cert_names(ed->client, ed->username, device_id);
    if (by_cert == 0) {
        return MOSQ_ERR_AUTH;
    }
    if (by_cert < 0 && (ed->password == NULL || !cc_api_key_matches(ed->password, hash_hex))) {
        return MOSQ_ERR_AUTH;
    }
    /* A device that presented another client id could replace that client's session
     * (ingestd's, or another device's) the moment it is admitted. */
    if (!cc_auth_client_id_allowed(ed->username, mosquitto_client_id(ed->client))) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             "coldchain_auth: device %s refused: client id is not its serial",
                             ed->username);
        return MOSQ_ERR_AUTH;
    }
    if (session_put(ed->client, device_id, by_cert > 0, hash_hex) != 0) {
        return MOSQ_ERR_AUTH;
    }
    return MOSQ_ERR_SUCCESS;
}

/* MOSQ_EVT_DISCONNECT: the session leaves the table (kept as departed for its last will). */
static int on_disconnect(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_disconnect *ed = event_data;

    (void)event;
    (void)userdata;
    session_drop(ed->client);
    return MOSQ_ERR_SUCCESS;
}

/* MOSQ_EVT_MESSAGE (after the ACL check, before the broker stores the message): a device's
 * publish is delivered, but never kept as its topic's retained message. Serials are reused
 * and retained messages had no bound: 1 MiB per device topic, kept across restarts after
 * the device was deleted, and replayed to every new subscriber of devices/# (ingestd and
 * apid skip such copies; the broker still held and sent them). A live delivery carries
 * RETAIN=0 either way (MQTT 3.1.1 3.3.1.3), so subscribers see no difference. */
static int on_message(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_message *ed = event_data;

    (void)event;
    (void)userdata;
    if (ed->retain && *session_slot(ed->client) != NULL)
        ed->retain = false;
    return MOSQ_ERR_SUCCESS;
}

/* The rules' name for a MOSQ_ACL_* access; 0 (refused by the rules) for anything else. */
static int acl_access(int mosq_access)
{
    switch (mosq_access) {
    case MOSQ_ACL_READ:
        return CC_AUTH_READ;
    case MOSQ_ACL_WRITE:
        return CC_AUTH_WRITE;
    case MOSQ_ACL_SUBSCRIBE:
        return CC_AUTH_SUBSCRIBE;
    case MOSQ_ACL_UNSUBSCRIBE:
        return CC_AUTH_UNSUBSCRIBE;
    default:
        return 0;
    }
}

/* MOSQ_EVT_ACL_CHECK: for a device, SUCCESS or ACL_DENIED by SPEC §3; PLUGIN_DEFER for a
 * client whose username is not a device serial. */
static int on_acl_check(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_acl_check *ed = event_data;
    const char *serial;
    char hash_hex[CC_SHA256_HEX_LEN];
    int64_t device_id = 0;
    struct session *s;
    int found;

    (void)event;
    (void)userdata;
    serial = mosquitto_client_username(ed->client);
    if (serial == NULL || ed->topic == NULL) {
        return MOSQ_ERR_PLUGIN_DEFER;
    }
    found = find_device(serial, &device_id, hash_hex);
    s = *session_slot(ed->client);
    if (s == NULL && departed != NULL && departed->client == ed->client &&
        ed->access == MOSQ_ACL_WRITE)
        s = departed; /* its last will: checked like its publishes were */
    if (found < 0 && s != NULL) {
        /* The database is unreachable (PostgreSQL restarting, a lost connection): deferring
         * would have the acl file deny, and mosquitto acknowledges a denied QoS 1 publish
         * and drops it, so every reading sent meanwhile would be lost. A device that proved
         * its key at login keeps its own topics; its key and row are compared again at the
         * first check once the database answers. A new login still needs the database. */
        return cc_auth_topic_allowed(serial, ed->topic, acl_access(ed->access))
                   ? MOSQ_ERR_SUCCESS
                   : MOSQ_ERR_ACL_DENIED;
    }
    if (found != 1) {
        return MOSQ_ERR_PLUGIN_DEFER;
    }
    /* The row this device logged in as must still hold its serial (a row deleted and its
     * serial given to a new device, or renamed onto another, has another id), and the key it
     * logged in with must still be its key (hashes are public-length hex of equal size; a
     * plain compare leaks nothing about the key itself). */
    if (s == NULL || s->device_id != device_id ||
        (!s->by_cert && strcmp(s->hash_hex, hash_hex) != 0)) {
        return MOSQ_ERR_ACL_DENIED;
    }
    return cc_auth_topic_allowed(serial, ed->topic, acl_access(ed->access)) ? MOSQ_ERR_SUCCESS
                                                                            : MOSQ_ERR_ACL_DENIED;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
    int i;

    for (i = 0; i < supported_version_count; i++) {
        if (supported_versions[i] == 5) {
            return 5;
        }
    }
    return -1;
}

/* Every callback off (one never registered is a no-op) and the sessions freed. */
static void unregister_all(void)
{
    mosquitto_callback_unregister(state.pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
    mosquitto_callback_unregister(state.pid, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
    mosquitto_callback_unregister(state.pid, MOSQ_EVT_DISCONNECT, on_disconnect, NULL);
    mosquitto_callback_unregister(state.pid, MOSQ_EVT_MESSAGE, on_message, NULL);
    sessions_free();
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *opts, int opt_count)
{
    const char *db_path = NULL;
    const char *operators_path = NULL;
    int i;
    int rc;

    (void)userdata;
    for (i = 0; i < opt_count; i++) {
        if (strcmp(opts[i].key, "db_path") == 0 || strcmp(opts[i].key, "db") == 0) {
            db_path = opts[i].value;
        } else if (strcmp(opts[i].key, "operators_file") == 0) {
            operators_path = opts[i].value;
        }
    }
    if (db_path == NULL || db_path[0] == '\0' || operators_path == NULL) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "coldchain_auth: plugin_opt_db_path and "
                                           "plugin_opt_operators_file are required");
        return MOSQ_ERR_INVAL;
    }
    memset(&state, 0, sizeof(state));
    state.pid = identifier;
    rc = load_operators(operators_path);
    if (rc != MOSQ_ERR_SUCCESS) {
        memset(&state, 0, sizeof(state));
        return rc;
    }

    if (strlen(db_path) >= sizeof state.db_path) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "coldchain_auth: plugin_opt_db_path is too long");
        memset(&state, 0, sizeof(state));
        return MOSQ_ERR_INVAL;
    }
    memcpy(state.db_path, db_path, strlen(db_path) + 1);
    if (cc_store_open(db_path, CC_STORE_READONLY, &state.st) != CC_OK) {
        goto fail;
    }
    rc = mosquitto_callback_register(state.pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        goto fail_registered;
    }
    rc = mosquitto_callback_register(state.pid, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_callback_unregister(state.pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
        goto fail_registered;
    }
    rc = mosquitto_callback_register(state.pid, MOSQ_EVT_DISCONNECT, on_disconnect, NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_callback_register(state.pid, MOSQ_EVT_MESSAGE, on_message, NULL, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        unregister_all();
        goto fail_registered;
    }
    mosquitto_log_printf(MOSQ_LOG_NOTICE,
                         "coldchain_auth: devices from the %s store (read-only), %d operator "
                         "name(s) from %s left to the files",
                         cc_store_dialect(state.st) == CC_DIALECT_PG ? "PostgreSQL" : "SQLite",
                         state.n_operators, operators_path);
    return MOSQ_ERR_SUCCESS;

fail:
    /* The path is not logged: a PostgreSQL URL may carry a password. */
    mosquitto_log_printf(MOSQ_LOG_ERR, "coldchain_auth: cannot open the database");
    rc = MOSQ_ERR_UNKNOWN;
fail_registered:
    cc_store_close(state.st);
    memset(&state, 0, sizeof(state));
    return rc;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
    (void)userdata;
    (void)opts;
    (void)opt_count;

    unregister_all();
    cc_store_close(state.st);
    memset(&state, 0, sizeof(state));
    return MOSQ_ERR_SUCCESS;
}
