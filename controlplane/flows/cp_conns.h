/* Connection flows: a connection opening on a node and closing, a node's stream ending (memory
 * mode; a distributed store reports connections through its watch, flows/cp_changes.c). The
 * registry is fanout/cp_presence.h; presence changes go through cp_online.
 * Thread: the completion-queue thread. */
#ifndef CP_CONNS_H
#define CP_CONNS_H

#include "cp_ctx.h"

typedef void cp_conns_rooms_fn(void *arg, const struct cp_status *st, const char *const *rooms,
                               size_t n);

/* Records a connection on `node`; a user's first connection announces them online. Answers
 * the user's rooms (for ConnOpened). */
void cp_conns_open(struct cp_ctx *c, struct cp_node *node, const char *conn_id, const char *user_id,
                   const char *session_id, const char *transport, int64_t connected_at,
                   cp_conns_rooms_fn *cb, void *arg);

/* Removes a connection; a user's last one makes them offline (after the grace period):
 * typing stopped, presence announced. Unknown ids are ignored. */
void cp_conns_close(struct cp_ctx *c, const char *conn_id);

/* Closes every connection hosted by `node` (its stream ended). */
void cp_conns_node_gone(struct cp_ctx *c, struct cp_node *node);

#endif
