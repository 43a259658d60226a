/* cc_jobs.h - the background jobs of SPEC §4 that run on timers in ingestd (jobs.c):
 * the offline check, escalation and the daily report. (Notification delivery is
 * cc_notify_deliver.)
 *
 * Each function does one pass and opens its own BEGIN IMMEDIATE transactions, deciding
 * and writing inside them, so a pass is idempotent and two ingestd running the same pass
 * at once do the work once: the second sees what the first committed. PostgreSQL has no
 * write lock at BEGIN, so each pass's transaction first takes its advisory lock
 * (cc_jobs_pass_lock, pg_try_advisory_xact_lock): a process that finds it taken skips
 * the pass (CC_OK, nothing done) instead of racing the other; the next tick retries.
 * Thread: the caller's store, outside any transaction.
 * Codes: CC_OK, CC_ERR_DB (the pass stopped; the next one retries), CC_ERR_NOMEM. */
#ifndef CC_JOBS_H
#define CC_JOBS_H

#include <stdint.h>
#include "cc_store.h"

#define CC_JOBS_BATCH 100 /* devices, alerts or customers handled per transaction */
#define CC_DAY_MS 86400000LL

/* The PostgreSQL advisory lock keys of the passes (one key space per database, shared
 * with coldchain_ensure_partitions' hashtext key): "cc" 0x6363 then the pass. */
#define CC_JOBS_LOCK_OFFLINE 0x636300000001LL
#define CC_JOBS_LOCK_ESCALATE 0x636300000002LL
#define CC_JOBS_LOCK_REPORT 0x636300000003LL
#define CC_JOBS_LOCK_RETENTION 0x636300000004LL
#define CC_JOBS_LOCK_REJECTED 0x636300000005LL

/* Takes the pass lock key for the rest of the caller's transaction: on PostgreSQL
 * pg_try_advisory_xact_lock, *got 0 when another session holds it; on SQLite *got is
 * always 1 (BEGIN IMMEDIATE is the lock). CC_OK or CC_ERR_DB. */
int cc_jobs_pass_lock(struct cc_store *st, int64_t key, int *got);

/* Devices with a last_seen_at older than offline_after_s and no SENSOR_ERROR raised
 * since they were last seen: status OFFLINE and a SENSOR_ERROR alert (notifying the
 * customer and the linked technicians). last_seen_at decides, not the status column: an
 * offline status message (the broker's last will) already sets OFFLINE without
 * raising anything. A device never seen raises nothing. *raised may be NULL. */
int cc_jobs_offline_check(struct cc_store *st, int64_t offline_after_s, int64_t now_ms,
                          int *raised);

/* ACTIVE alerts first triggered more than escalate_after_s ago and not yet escalated:
 * escalated_at = now and ESCALATION notifications to the linked technicians and every
 * admin, once per alert. *escalated may be NULL. */
int cc_jobs_escalate(struct cc_store *st, int64_t escalate_after_s, int64_t now_ms, int *escalated);

/* The day (UTC, epoch ms of its midnight) whose report is due at now_ms: yesterday once
 * the minute of the day has reached report_minute, else the day before. */
int64_t cc_jobs_report_day(int report_minute, int64_t now_ms);

/* Makes the daily report of day_ms for every enabled customer who has none: per cell
 * min/max/avg temperature, reading count, minutes out of range (from consecutive
 * readings) and alerts raised; stored in daily_reports (unique per customer and day)
 * and sent as a DAILY_REPORT notification in the same transaction. *made may be NULL. */
int cc_jobs_daily_report(struct cc_store *st, int64_t day_ms, int64_t now_ms, int *made);

#endif
