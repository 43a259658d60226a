/* ccctl.h - what the ccctl subcommand files share: exit codes, option helpers.
 * Single-threaded except where a file says otherwise. */
#ifndef CCCTL_H
#define CCCTL_H

#include <stddef.h>
#include <stdint.h>

#include "cc_config.h"

/* Exit statuses (sysexits.h where one fits). */
#define CCCTL_EXIT_OK 0
#define CCCTL_EXIT_FAIL 1     /* database, broker or I/O failure; conflict; not found */
#define CCCTL_EXIT_CONFIG 2   /* a bad environment variable (cc_config_load) */
#define CCCTL_EXIT_USAGE 64   /* EX_USAGE: bad command line */
#define CCCTL_EXIT_DATAERR 65 /* EX_DATAERR: a field failed validation */

#define CCCTL_KEYS_LINE_MAX 512 /* bytes in one "serial,key" line of a keys file */
#define CCCTL_PG_URL_MAX 4096   /* bytes of a COLDCHAIN_DB URL handed to pg_dump/pg_restore */

/* Prints the usage text to stderr and returns CCCTL_EXIT_USAGE. */
int ccctl_usage(void);
/* Parses a whole decimal integer in [min, max]. 1 if valid. */
int ccctl_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* Parses a whole finite number in [min, max]. 1 if valid. */
int ccctl_parse_double(const char *s, double min, double max, double *out);

/* `ccctl simulate ...`: argv[0] is "simulate". Returns the exit status. */
int ccctl_simulate(int argc, char **argv, const struct cc_config *cfg);
/* `ccctl device import FILE [--format csv|json]` (ccctl_import.c): argv[0] is "import". */
int ccctl_device_import(int argc, char **argv, const struct cc_config *cfg);
/* `ccctl device cert SERIAL [--ca-dir D] [--out D] [--days N]` (ccctl_cert.c): argv[0] is
 * "cert". Writes <out>/SERIAL.crt and SERIAL.key (0600), signed by <ca-dir>/ca.crt. */
int ccctl_device_cert(int argc, char **argv, const struct cc_config *cfg);
/* `ccctl backup FILE` (ccctl_backup.c): argv[0] is "backup". SQLite: the online backup
 * API; PostgreSQL: ccctl_pg_backup. */
int ccctl_backup(int argc, char **argv, const struct cc_config *cfg);
/* `ccctl restore FILE` (ccctl_backup.c): argv[0] is "restore". Into a database that does
 * not exist yet (SQLite) or is empty (PostgreSQL: ccctl_pg_restore). */
int ccctl_restore(int argc, char **argv, const struct cc_config *cfg);

/* ccctl_pg.c: PostgreSQL's side of backup and restore, through pg_dump and pg_restore
 * (found on PATH). Each returns an exit status. */
/* 1 when db is a PostgreSQL URL (cc_store_open's rule), else 0. */
int ccctl_is_pg_url(const char *db);
/* A custom-format (-Fc) dump of the database at url to path, through path.tmp (0600), read
 * back with pg_restore --list before the rename. */
int ccctl_pg_backup(const char *url, const char *path);
/* pg_restore of the dump at path into the database at url, which must hold no table; one
 * transaction, objects owned by the URL's role. */
int ccctl_pg_restore(const char *url, const char *path);
/* Splits url into bare (the URL without its password: user:PASSWORD@ and a password=
 * parameter removed) and pw (the password, percent-decoded; "" if none). 1 when url had a
 * password, 0 when not, -1 when a buffer is too small or a %XX is malformed or NUL. */
int ccctl_pg_url_split(const char *url, char *bare, size_t barelen, char *pw, size_t pwlen);
/* db for a message: a SQLite path as it is; a URL with its password removed (or a generic
 * name when it cannot be split). Returns buf. */
const char *ccctl_db_label(const char *db, char *buf, size_t buflen);

#endif
