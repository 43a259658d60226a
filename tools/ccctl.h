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
/* `ccctl backup FILE` (ccctl_backup.c): argv[0] is "backup". */
int ccctl_backup(int argc, char **argv, const struct cc_config *cfg);

#endif
