/* cc_kvlog.h - a small persistent key-value store: in-memory map + append-only log.
 *
 * Why: ingestd gives it to Paho as the MQTT client's persistence store (Paho's own
 * default creates and deletes one file per message, which costs more than the rest of
 * the ingest path). Every put and remove is one write(2) of a checksummed record, so
 * the store survives kill -9 of the process; the log is rewritten (write new file,
 * rename over) when it is mostly dead records. Not fsync'd: it protects against a
 * process crash, not against power loss (nor is the broker's own store).
 *
 * Thread-safety: an internal mutex. Codes: CC_OK, CC_ERR_NOT_FOUND, CC_ERR_IO,
 * CC_ERR_NOMEM, CC_ERR_VALIDATION (key or value too large). */
#ifndef CC_KVLOG_H
#define CC_KVLOG_H

#include <stddef.h>

#define CC_KVLOG_KEY_MAX 255                   /* bytes in a key */
#define CC_KVLOG_VALUE_MAX (4 * 1024 * 1024)   /* bytes in a value */
#define CC_KVLOG_COMPACT_MIN (8 * 1024 * 1024) /* log bytes before compaction is considered */

struct cc_kvlog;

/* Opens or creates the log at path and loads its live entries. */
int cc_kvlog_open(const char *path, struct cc_kvlog **out);
void cc_kvlog_close(struct cc_kvlog *kv);
/* Stores the concatenation of the n buffers under key (replacing any old value). */
int cc_kvlog_put(struct cc_kvlog *kv, const char *key, int n, char *const bufs[], const int lens[]);
/* *val receives a malloc'd copy (caller frees) and *len its size. */
int cc_kvlog_get(struct cc_kvlog *kv, const char *key, char **val, int *len);
int cc_kvlog_remove(struct cc_kvlog *kv, const char *key);
/* 1 if key is present. */
int cc_kvlog_contains(struct cc_kvlog *kv, const char *key);
/* *keys receives a malloc'd array of malloc'd strings (NULL when empty). */
int cc_kvlog_keys(struct cc_kvlog *kv, char ***keys, int *n);
int cc_kvlog_clear(struct cc_kvlog *kv);
size_t cc_kvlog_count(struct cc_kvlog *kv);

#endif
