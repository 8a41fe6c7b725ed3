/* The whole etcd key scheme of the control plane: every key, prefix and range_end is built
 * here, and keys read back from etcd (watch events, ranges) are parsed here.
 *
 * Layout (ids follow common/sb_ident.h, so no escaping is needed; seq is 20 digits, zero padded
 * so that byte order is numeric order):
 *   sb/nodes/<node_id>                          data-plane node (under the node's lease)
 *   sb/cp/<cp_id>                               control-plane replica (under its own lease)
 *   sb/rooms/<room_id>                          room record
 *   sb/members/<room_id>/<user_id>              membership
 *   sb/user_rooms/<user_id>/<room_id>           user -> rooms index
 *   sb/conns/<node_id>/<user_id>/<conn_id>      connection (under the node's lease)
 *   sb/seq/<room_id>                            last sequence number of a room
 *   sb/history/<room_id>/<seq:020>              one history message
 *   sb/locks/room/<room_id>                     name of the room's sequencing lock
 *   sb/presence/<user_id>                       presence record of older versions (parsed, ignored)
 *   sb/sequencer/<room_id>                      room sequencer claim (create-if-absent, on the
 *                                               holder CP's lease; docs/distributed.md)
 *   sb/leader/<role>                            singleton role claim, e.g. "presence"
 *   sb/idem/<room_id>/<key_hash>                publish idempotency record (16 hex digits of
 *                                               FNV-1a 64 of the key; on a 2-3 min lease)
 *   sb/doc/<doc_key>                            a Store document (cp_store.h struct cp_doc):
 *                                               "<kind>/<id>/...", see cp_keys_doc and the
 *                                               document kinds below
 *   sb/txn/<cp_id>/<n:016x>                     write marker: put by a compare-guarded txn so
 *                                               that a retry of a txn that landed can tell
 *                                               (on the shared 180 s idempotency lease)
 *
 * All functions are pure and thread-safe. Builders write a NUL-terminated string into `out`
 * (capacity `cap`; CP_KEYS_MAX always suffices) and return SB_OK, SB_EINVAL for an id that
 * sb_ident_is_valid() rejects or a negative seq, or SB_EFULL when `cap` is too small; `out` is
 * written only on success. */
#ifndef CP_KEYS_H
#define CP_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "sb_ident.h"

/* Longest key or prefix built here, NUL included (three ids, separators, a prefix). */
#define CP_KEYS_MAX (3 * SB_IDENT_MAX + 32)

/* Fixed prefixes (each ends in '/'). */
#define CP_KEYS_ROOT       "sb/"
#define CP_KEYS_NODES      "sb/nodes/"
#define CP_KEYS_CP         "sb/cp/"
#define CP_KEYS_ROOMS      "sb/rooms/"
#define CP_KEYS_MEMBERS    "sb/members/"
#define CP_KEYS_USER_ROOMS "sb/user_rooms/"
#define CP_KEYS_CONNS      "sb/conns/"
#define CP_KEYS_SEQ        "sb/seq/"
#define CP_KEYS_HISTORY    "sb/history/"
#define CP_KEYS_LOCKS_ROOM "sb/locks/room/"
#define CP_KEYS_PRESENCE   "sb/presence/"
#define CP_KEYS_SEQUENCER  "sb/sequencer/"
#define CP_KEYS_LEADER     "sb/leader/"
#define CP_KEYS_IDEM       "sb/idem/"
#define CP_KEYS_DOC        "sb/doc/"
#define CP_KEYS_TXN        "sb/txn/"

/* Longest document key (cp_keys_doc) and the longest etcd key or prefix built for one. */
#define CP_KEYS_DOC_KEY_MAX 512
#define CP_KEYS_DOC_MAX     (sizeof(CP_KEYS_DOC) + CP_KEYS_DOC_KEY_MAX + 8)

/* Roles of cp_keys_leader. */
#define CP_KEYS_ROLE_PRESENCE "presence"

/* Single keys. */
enum sb_err cp_keys_node(const char *node_id, char *out, size_t cap);
enum sb_err cp_keys_cp(const char *cp_id, char *out, size_t cap);
enum sb_err cp_keys_room(const char *room_id, char *out, size_t cap);
enum sb_err cp_keys_member(const char *room_id, const char *user_id, char *out, size_t cap);
enum sb_err cp_keys_user_room(const char *user_id, const char *room_id, char *out, size_t cap);
enum sb_err cp_keys_conn(const char *node_id, const char *user_id, const char *conn_id, char *out,
                         size_t cap);
enum sb_err cp_keys_seq(const char *room_id, char *out, size_t cap);
enum sb_err cp_keys_history(const char *room_id, int64_t seq, char *out, size_t cap);
enum sb_err cp_keys_lock_room(const char *room_id, char *out, size_t cap);
enum sb_err cp_keys_presence(const char *user_id, char *out, size_t cap);
enum sb_err cp_keys_sequencer(const char *room_id, char *out, size_t cap);
enum sb_err cp_keys_leader(const char *role, char *out, size_t cap);
/* key_hash: cp_keys_idem_hash of the idempotency key. */
enum sb_err cp_keys_idem(const char *room_id, const char *key_hash, char *out, size_t cap);

/* sb/txn/<cp_id>/<n as 16 hex digits>. */
enum sb_err cp_keys_txn(const char *cp_id, uint64_t n, char *out, size_t cap);

/* sb/doc/<doc_key>. A document key is segments joined by '/': the first a kind name
 * ([a-z_]+), then one or more non-empty segments of printable bytes (0x21-0x7e but '/', or any
 * byte >= 0x80): ids (sb_ident.h) fit, and so do channel patterns such as "news.*". At most
 * CP_KEYS_DOC_KEY_MAX bytes. SB_EINVAL otherwise; SB_EFULL when cap is too small
 * (CP_KEYS_DOC_MAX always suffices). */
enum sb_err cp_keys_doc(const char *doc_key, char *out, size_t cap);
/* sb/doc/<prefix>, for a document prefix: "" (every document) or printable bytes as above,
 * '/' allowed anywhere but first and never twice in a row (e.g. "bans/r1/", "user_subs/al"). */
enum sb_err cp_keys_doc_prefix(const char *prefix, char *out, size_t cap);

/* 16 lowercase hex digits (+ NUL) of the FNV-1a 64 hash of `key`: idempotency keys are free
 * text, so they are hashed into a valid id (the record keeps the key to rule out collisions). */
void cp_keys_idem_hash(const char *key, char out[17]);

/* 32 lowercase hex digits (+ NUL) of a 128-bit hash of `key`, for idempotency documents
 * (`idem_ch/<channel>/<hash>`, `idem/<method>/<hash>`), which also keep the key itself. */
void cp_keys_idem_hash128(const char *key, char out[33]);

/* Prefixes of one id's children (end in '/', so "r1/" never matches "r10/"). */
enum sb_err cp_keys_members_of(const char *room_id, char *out, size_t cap);
enum sb_err cp_keys_rooms_of_user(const char *user_id, char *out, size_t cap);
enum sb_err cp_keys_conns_of_node(const char *node_id, char *out, size_t cap);
enum sb_err cp_keys_conns_of_user(const char *node_id, const char *user_id, char *out, size_t cap);
enum sb_err cp_keys_history_of(const char *room_id, char *out, size_t cap);
enum sb_err cp_keys_idem_of(const char *room_id, char *out, size_t cap);

/* The range_end that makes [prefix, range_end) cover every key starting with `prefix` (n
 * bytes): the prefix with its last byte below 0xff incremented and the bytes after it dropped.
 * A prefix of only 0xff bytes (or empty) gives "\0" (one zero byte: every key >= prefix).
 * Writes *out_len bytes plus a NUL. Returns SB_EFULL when cap < n + 1. */
enum sb_err cp_keys_range_end(const char *prefix, size_t n, char *out, size_t cap, size_t *out_len);

/* What a key read back from etcd names. */
enum cp_keys_kind {
    CP_KEYS_UNKNOWN = 0,
    CP_KEYS_KIND_NODE,      /* a = node */
    CP_KEYS_KIND_CP,        /* a = cp id */
    CP_KEYS_KIND_ROOM,      /* a = room */
    CP_KEYS_KIND_MEMBER,    /* a = room, b = user */
    CP_KEYS_KIND_USER_ROOM, /* a = user, b = room */
    CP_KEYS_KIND_CONN,      /* a = node, b = user, c = conn */
    CP_KEYS_KIND_SEQ,       /* a = room */
    CP_KEYS_KIND_HISTORY,   /* a = room, seq */
    CP_KEYS_KIND_LOCK_ROOM, /* a = room (the lock name; lock keys are "<name>/<lease hex>") */
    CP_KEYS_KIND_PRESENCE,  /* a = user */
    CP_KEYS_KIND_SEQUENCER, /* a = room */
    CP_KEYS_KIND_LEADER,    /* a = role */
    CP_KEYS_KIND_IDEM,      /* a = room, b = key hash */
    CP_KEYS_KIND_DOC,       /* doc, doc_len: the document key (valid under cp_keys_doc) */
};

struct cp_keys_parts {
    enum cp_keys_kind kind;
    char a[SB_IDENT_MAX + 1];
    char b[SB_IDENT_MAX + 1];
    char c[SB_IDENT_MAX + 1];
    int64_t seq;
    const char *doc; /* CP_KEYS_KIND_DOC: points into the parsed key (not NUL-terminated) */
    size_t doc_len;
};

/* Parses a key of `n` bytes (not NUL-terminated) built by the functions above. Returns SB_OK
 * with *out filled, or SB_EINVAL (out untouched) for anything else: unknown prefix, wrong
 * number of parts, invalid ids, a seq that is not 20 digits. Lock keys carry a trailing
 * "/<lease hex>" which is accepted and ignored. */
enum sb_err cp_keys_parse(const char *key, size_t n, struct cp_keys_parts *out);

/* ---- Store documents: every document key kind, one builder each (both stores keep them; the
 * etcd store under sb/doc/). Each writes "<kind>/<a>" or "<kind>/<a>/<b>" into `out`
 * (CP_KEYS_DOC_KEY_MAX bytes); a NULL last id gives the kind's prefix for a listing
 * ("<kind>/<a>/"), a NULL or empty first id the whole kind ("<kind>/"). Ids are not checked
 * here (callers pass validated ids or hashes).
 *   channels/<channel_id>                 a channel: created_at, metadata
 *   subs/<channel_id>/<user_id>           a subscription: filter, subscribed_at
 *   user_subs/<user_id>/<channel_id>      the user -> channels index of subscriptions
 *   idem_ch/<channel_id>/<key_hash128>    a keyed channel publish: key, message_id, expires_at
 *   idem/<scope>/<key_hash128>            a keyed delivery call (Broadcast, SendToUser, ...)
 *   bans/<room_id>/<user_id>              a ban: reason, expires_at
 *   invites/<invite_id>                   an invite: room, inviter, invitee, expiry
 *   presence/<user_id>                    a user's presence record
 *   sessions/<session_id>                 a closed session kept for resumption
 *   typing/<room_id>/<user_id>            a user typing in a room: started_at, expires_at */
void cp_keys_doc_channel(char out[CP_KEYS_DOC_KEY_MAX], const char *channel_id);
void cp_keys_doc_sub(char out[CP_KEYS_DOC_KEY_MAX], const char *channel_id, const char *user_id);
void cp_keys_doc_user_sub(char out[CP_KEYS_DOC_KEY_MAX], const char *user_id,
                          const char *channel_id);
void cp_keys_doc_channel_idem(char out[CP_KEYS_DOC_KEY_MAX], const char *channel_id,
                              const char *key_hash);
void cp_keys_doc_idem(char out[CP_KEYS_DOC_KEY_MAX], const char *scope, const char *key_hash);
void cp_keys_doc_ban(char out[CP_KEYS_DOC_KEY_MAX], const char *room_id, const char *user_id);
void cp_keys_doc_invite(char out[CP_KEYS_DOC_KEY_MAX], const char *invite_id);
void cp_keys_doc_presence(char out[CP_KEYS_DOC_KEY_MAX], const char *user_id);
void cp_keys_doc_session(char out[CP_KEYS_DOC_KEY_MAX], const char *session_id);
void cp_keys_doc_typing(char out[CP_KEYS_DOC_KEY_MAX], const char *room_id, const char *user_id);

#endif
