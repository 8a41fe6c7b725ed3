/* The retention cleaner (docs/history.md): every retention_interval_ms it removes, from every
 * room, the messages older than message_retention_ms (0: never) with the Store's
 * history_trim, paging through room_list. One pass at a time. In etcd mode only the presence
 * leader runs it (one replica for the whole cluster; the trim is idempotent, so a pass that
 * overlaps a leader change only repeats work). Max messages per room is enforced on append.
 * Thread: the completion-queue thread. */
#ifndef CP_RETENTION_H
#define CP_RETENTION_H

#include <stdint.h>

#include "cp_ctx.h"

/* Starts a pass when one is due at monotonic `mono_ms` (called from cp_ctx_tick). */
void cp_retention_tick(struct cp_ctx *c, int64_t mono_ms);

/* Monotonic ms of the next pass, 0 when the cleaner is off. */
int64_t cp_retention_next_deadline(const struct cp_ctx *c);

#endif
