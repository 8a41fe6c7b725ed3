/* Direct deliveries from the backend (docs/delivery.md): Broadcast (a `system` frame to every
 * connection, some users left out), SendToUser and SendToConnection (a `message` frame with a
 * fresh m-... id), each with an optional idempotency key claimed through cp_once.c before
 * anything is delivered: a key seen within two minutes answers the first call's count and
 * delivers nothing. Frames come from cp_json.c and go out through cp_fanout.
 * Thread: the completion-queue thread. */
#ifndef CP_DIRECT_H
#define CP_DIRECT_H

#include <stddef.h>
#include <stdint.h>

#include "cp_ctx.h"

enum cp_direct_kind { CP_DIRECT_EVERYONE, CP_DIRECT_USER, CP_DIRECT_CONNECTION };

/* Validated by the caller; borrowed during the call (copied when the claim is asynchronous). */
struct cp_direct {
    enum cp_direct_kind kind;
    const char *to;             /* USER: the user id; CONNECTION: the connection id */
    const char *const *exclude; /* EVERYONE: users left out */
    size_t n_exclude;
    const char *sender; /* USER, CONNECTION: NULL or "" for none */
    const char *data;   /* valid JSON */
    size_t data_len;
    const char *idem_key; /* NULL or "": none */
};

/* `delivered`: the connections reached (EVERYONE, USER; with a key seen before, the first
 * call's count), 1 for CONNECTION. */
typedef void cp_direct_fn(void *arg, const struct cp_status *st, int64_t delivered);

/* Delivers `d`. CONNECTION: connection_not_found when it is not open (checked before the
 * claim and again at delivery), unavailable when its node has no stream to this replica.
 * Answers through `cb` exactly once, possibly before returning. */
void cp_direct_send(struct cp_ctx *c, const struct cp_direct *d, cp_direct_fn *cb, void *arg);

#endif
