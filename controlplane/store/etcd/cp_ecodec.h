/* The values the etcd Store keeps under sb/ (docs/etcd.md, key scheme): room, member, message,
 * node, connection and idempotency records as JSON, and the room's last seq as decimal text.
 * Pure (jansson): no I/O, no global state; any thread.
 *
 * Encoders return new NUL-terminated text (free()), NULL on ENOMEM. Parsers take a value of n
 * bytes (NUL-terminated as etcd answers are decoded) and never fail on a readable record:
 * missing fields read as "", 0 or false. */
#ifndef CP_ECODEC_H
#define CP_ECODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_store.h"

/* New NUL-terminated copy of n bytes (a key or value read back); NULL on ENOMEM. */
char *cp_ecodec_dup(const char *p, size_t n);

/* sb/rooms/<id>: every field of cp_room but id, member_count and last_seq. */
char *cp_ecodec_room_json(const struct cp_room *r);
/* A new cp_room (id copied, member_count and last_seq 0); NULL when unreadable or ENOMEM. */
struct cp_room *cp_ecodec_room_parse(const char *id, const char *v, size_t n);

/* sb/members/<room>/<user>: {role, joined_at}. */
char *cp_ecodec_member_json(enum cp_role role, int64_t joined_at);
/* Unreadable (or an unknown role): CP_ROLE_MEMBER, and joined_at 0 when unreadable. */
void cp_ecodec_member_parse(const char *v, size_t n, enum cp_role *role, int64_t *joined_at);

/* sb/history/<room>/<seq>. `transient`: a message of a room without history (max_history 0),
 * stored only so that every replica's watch reports it; history reads, message_update and
 * history_trim's count skip it, and the room's next commit deletes it. The edit fields
 * (deleted, deleted_at, edited_at, ext) are left out at their zero value. */
char *cp_ecodec_message_json(const struct cp_message *m, bool transient);
/* A new message (NULL when unreadable, without an id, or ENOMEM); *transient may be NULL. */
struct cp_message *cp_ecodec_message_parse(const char *v, size_t n, bool *transient);
/* Only the timestamp and the transient mark, without building the message; false when
 * unreadable (then both are 0/false). */
bool cp_ecodec_message_peek(const char *v, size_t n, int64_t *timestamp, bool *transient);

/* sb/nodes/<node>: {address, last_heartbeat, connections}. */
char *cp_ecodec_node_json(const char *address, int64_t last_heartbeat, int64_t connections);
/* The new address ("" when unreadable; NULL on ENOMEM), and the two counters. */
char *cp_ecodec_node_parse(const char *v, size_t n, int64_t *last_heartbeat, int64_t *connections);

/* sb/conns/<node>/<user>/<conn>: {session_id, transport, connected_at}. */
char *cp_ecodec_conn_json(const char *session_id, const char *transport, int64_t connected_at);

/* sb/idem/<room>/<hash>: {k, id, seq}, the key kept to rule out hash collisions. */
char *cp_ecodec_idem_json(const char *key, const char *message_id, int64_t seq);
struct cp_ecodec_idem {
    char *key;        /* new */
    char *message_id; /* new */
    int64_t seq;
};
/* SB_EPROTO when unreadable, SB_ENOMEM; fields "" / 0 when missing. Free with _fini. */
enum sb_err cp_ecodec_idem_parse(const char *v, size_t n, struct cp_ecodec_idem *out);
void cp_ecodec_idem_fini(struct cp_ecodec_idem *x);

/* sb/seq/<room>: the last seq as decimal text; 0 for an empty or longer than 20 bytes value. */
int64_t cp_ecodec_seq_parse(const char *v, size_t n);

#endif
