/* bench_proc.h - another process's CPU time, for the benchmarks that print a PostgreSQL
 * backend's CPU beside their own (bench_query, bench_store). */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BENCH_PROC_STAT_MAX 1024 /* bytes of /proc/PID/stat read (its line is ~300) */

/* utime + stime of process pid in seconds, from /proc/PID/stat; -1 when it cannot be read
 * (PostgreSQL on another machine or under another user). */
static inline double bench_proc_cpu_s(long pid)
{
    char path[64], buf[BENCH_PROC_STAT_MAX];
    unsigned long long ut = 0, stm = 0;
    const char *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields 14 and 15, counted after the ")" that ends the command name (field 2), which
     * may hold spaces. */
    p = strrchr(buf, ')');
    if (p == NULL ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stm) != 2)
        return -1;
    return (double)(ut + stm) / (double)sysconf(_SC_CLK_TCK);
}

#endif
