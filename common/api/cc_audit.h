/* cc_audit.h - the append-only audit log of every write through the API (SPEC §2).
 *
 * cc_audit_append adds one audit_log row: when, who (actor, NULL for nobody), what
 * (action: "create", "update", "delete", "link", "unlink", "regenerate_key", "login",
 * "logout", "token_reuse", ...), on which entity ("user", "location", "cold_cell",
 * "device", "refresh_token", ...) and id, and detail {"old":...,"new":...} as JSON.
 * Call it inside the transaction of the write it records, so both commit or neither.
 * Rows are never updated or deleted (the schema's triggers refuse it). The detail must
 * never hold a password, a password hash, an API key or its hash, or a token.
 * Thread: the caller's store. Codes: CC_OK, CC_ERR_NOMEM, CC_ERR_DB. */
#ifndef CC_AUDIT_H
#define CC_AUDIT_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "cc_store.h"

/* Appends a row. actor_user_id <= 0 stores NULL; entity_id <= 0 stores NULL. old_obj
 * and new_obj are copied into detail as "old" and "new" (either may be NULL: omitted);
 * the caller keeps ownership of both. */
int cc_audit_append(struct cc_store *st, int64_t actor_user_id, const char *action,
                    const char *entity, int64_t entity_id, const cJSON *old_obj,
                    const cJSON *new_obj);

#endif
