/* Idempotency keys of the delivery methods (Broadcast, SendToUser, SendToConnection): a key
 * seen again within two minutes answers the first call's result and delivers nothing. The
 * record is a Store document `idem/<scope>/<hash of the key>` = {"k":key,"at":ms,"delivered":n}
 * written create-if-absent, so it holds across control-plane replicas (etcd). docs/delivery.md.
 * Thread: the completion-queue thread. */
#ifndef CP_ONCE_H
#define CP_ONCE_H

#include <stdbool.h>
#include <stdint.h>

#include "cp_ctx.h"

/* first: this call owns the key (deliver now; `delivered` is what was passed in); else the
 * key was seen: `delivered` is the first call's result, deliver nothing. `result_id` is the
 * id kept in the record (borrowed during the call), NULL when it holds none. */
typedef void cp_once_fn(void *arg, const struct cp_status *st, bool first, int64_t delivered,
                        const char *result_id);

/* Claims (scope, key) with the result `delivered` (computed before delivering). `scope` is a
 * [a-z_]+ name per method. Answers through `cb`, exactly once. */
void cp_once_claim(struct cp_ctx *c, const char *scope, const char *key, int64_t delivered,
                   cp_once_fn *cb, void *arg);

/* Claims a keyed channel publish (the record idem_ch/<channel>/<hash of the key>, removed with
 * the channel) with the message id chosen for it: first, publish; else the first publish's id
 * (borrowed during the call) is the answer. A different key with the same 128-bit hash fails
 * with INTERNAL. */
void cp_once_claim_channel(struct cp_ctx *c, const char *channel_id, const char *key,
                           const char *message_id, cp_once_fn *cb, void *arg);

/* Document key for (scope, key) into out (>= 80 bytes): "idem/<scope>/<32 hex digits>". */
void cp_once_doc_key(const char *scope, const char *key, char *out, size_t cap);

/* Deletes expired records now and then, the channels' included (the leader only). */
void cp_once_tick(struct cp_ctx *c, int64_t mono_ms);

#endif
