/* The Store interface: rooms, membership and message history behind one vtable with two
 * implementations (memory, and etcd in store/etcd/).
 *
 * Asynchronous by contract: every operation reports through a completion callback, exactly
 * once, and never returns a value. The memory store completes inline (before the call
 * returns); the etcd store will complete later on its own thread and hand the completion back
 * to the completion-queue thread (see cp_server.c). Callers therefore never assume inline
 * completion, and keep whatever the callback needs alive until it fires.
 *
 * Everything passed to a callback (rooms, members, messages, ids) is borrowed and valid only
 * during the callback: copy what you keep. Inputs are borrowed for the duration of the call.
 * Outcomes are protocol codes (struct cp_status): SB_CODE_ROOM_NOT_FOUND, ...; a store that
 * cannot be reached answers SB_CODE_UNAVAILABLE.
 *
 * Thread: operations are started on the completion-queue thread; callbacks run there too. */
#ifndef CP_STORE_H
#define CP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_status.h"
#include "sb_err.h"

enum cp_role {
    CP_ROLE_MEMBER = 0,
    CP_ROLE_MODERATOR,
    CP_ROLE_ADMIN,
    CP_ROLE_OWNER,
};

/* "member", "moderator", "admin", "owner". */
const char *cp_role_name(enum cp_role role);

/* Parses a role name; NULL or "" gives CP_ROLE_MEMBER. Returns SB_EINVAL for anything else. */
enum sb_err cp_role_parse(const char *s, enum cp_role *out);

struct cp_kv {
    char *key;
    char *value;
};

struct cp_room {
    char *id;
    char *name;        /* "" when unset */
    char *description; /* "" when unset */
    char *owner_id;    /* "" when unset */
    bool is_private;
    bool archived;
    int32_t max_members; /* 0: unlimited */
    int32_t member_count;
    int64_t created_at; /* Unix ms */
    int64_t updated_at;
    int64_t last_seq; /* seq of the newest message, 0 before the first */
    struct cp_kv *metadata;
    size_t n_metadata;
};

struct cp_member {
    char *user_id;
    enum cp_role role;
    int64_t joined_at;
};

/* A room message. `data` is JSON text (validated by the caller), not NUL-terminated. */
struct cp_message {
    char *id;
    int64_t seq;
    char *room_id;
    char *user_id;   /* NULL: no sender (backend broadcast) */
    char *thread_id; /* NULL: none */
    struct cp_kv *metadata;
    size_t n_metadata;
    int64_t timestamp; /* Unix ms */
    char *data;
    size_t data_len;
    /* Publishes only: the caller's idempotency key (NULL: none). Both stores deduplicate on it
     * (room, key) for CP_STORE_IDEM_TTL_MS, atomically with the append: a repeat answers the
     * first message (duplicate). It is not part of the stored message. */
    char *idem_key;
    /* Edits, deletion, reactions: stored and returned verbatim by both stores. */
    bool deleted;       /* a tombstone: data_len 0 (data "" or NULL) */
    int64_t deleted_at; /* Unix ms, with deleted */
    int64_t edited_at;  /* Unix ms of the last edit, 0: never edited */
    /* JSON object text (NUL-terminated) owned by cp_msgext.c: the edit trail and reactions,
     * e.g. {"edits":[...],"reactions":{"+1":["bob"]}}. NULL: none. The store never parses it. */
    char *ext;
};

struct cp_room_query {
    const char *after_id;    /* page token: list ids strictly above this one; NULL from start */
    const char *name_prefix; /* NULL or "": any */
    bool include_archived;
    int limit; /* > 0 */
};

struct cp_join_req {
    const char *room_id;
    const char *user_id;
    enum cp_role role;
    int64_t now;
    bool deny_private; /* a client join the token does not grant: private rooms refused */
    bool auto_create;  /* a missing room is created public, the user as owner */
};

struct cp_join_result {
    const struct cp_room *room;
    const struct cp_member *member;  /* the user's membership (new or existing) */
    bool added;                      /* false: was already a member */
    bool created_room;               /* auto_create made the room */
    const struct cp_member *members; /* every member, the user included, by user id */
    size_t n_members;
};

/* Exclusive bounds; a bound is used only when its has_ flag is set (times: when non-zero). */
struct cp_history_query {
    const char *room_id;
    int limit; /* > 0 */
    bool has_before_seq;
    int64_t before_seq;
    bool has_after_seq;
    int64_t after_seq;
    int64_t before_time;   /* 0: unset */
    int64_t after_time;    /* 0: unset */
    const char *thread_id; /* NULL or "": any */
};

struct cp_history_result {
    const struct cp_message *const *messages; /* oldest first */
    size_t n_messages;
    /* has_after_seq only: messages above after_seq were trimmed before this query. */
    bool gap;
    int64_t last_seq;
};

/* How long a publish's idempotency key is remembered (API.md: two minutes). */
#define CP_STORE_IDEM_TTL_MS 120000

struct cp_append_result {
    const struct cp_room *room;
    const struct cp_message *message; /* with its id, seq and timestamp */
    const struct cp_member *members;
    size_t n_members;
    /* Non-zero: a value that changes whenever the room's member set does (unique across rooms
     * and their re-creation), so the fan-out may reuse what it derived from `members`
     * (cp_fanout_room_cached). 0: unknown (etcd store). */
    uint64_t members_rev;
    /* The idempotency key was seen: message is the first result (id, seq); deliver nothing
     * unless redeliver. */
    bool duplicate;
    /* With duplicate (etcd store): another sequencer stored the message, maybe without
     * delivering it; message is the stored one: deliver it again (data planes drop a seq they
     * have seen). */
    bool redeliver;
    /* Set with status UNAVAILABLE (room, message NULL) when another control-plane replica
     * sequences the room (etcd store): its id, to forward the publish to. */
    const char *forward_to;
};

typedef void cp_store_room_fn(void *arg, const struct cp_status *st, const struct cp_room *room);
typedef void cp_store_rooms_fn(void *arg, const struct cp_status *st,
                               const struct cp_room *const *rooms, size_t n, bool more);
typedef void cp_store_members_fn(void *arg, const struct cp_status *st,
                                 const struct cp_member *members, size_t n);
typedef void cp_store_ids_fn(void *arg, const struct cp_status *st, const char *const *ids,
                             size_t n);
typedef void cp_store_join_fn(void *arg, const struct cp_status *st,
                              const struct cp_join_result *res);
typedef void cp_store_append_fn(void *arg, const struct cp_status *st,
                                const struct cp_append_result *res);
typedef void cp_store_history_fn(void *arg, const struct cp_status *st,
                                 const struct cp_history_result *res);

/* ---------------------------------------------------------------- updates, documents */

/* A document: a small JSON record (bans, invites, channels, subscriptions, presence records,
 * sessions...) that the store keeps without interpreting. Keys are segments joined by '/':
 * the first a kind name ([a-z_]+, e.g. "bans"), the others ids valid under sb_ident_valid
 * (e.g. "bans/r1/alice"). The etcd store keeps `sb/doc/<key>`. */
struct cp_doc {
    const char *key;
    const char *value; /* JSON text, NUL-terminated */
    size_t len;        /* strlen(value) */
    int64_t version;   /* > 0; changes on every write of the key (etcd: mod_revision) */
};

/* One write of cp_store_ops.doc_write. */
struct cp_doc_op {
    const char *key;   /* with prefix: a key prefix ending in '/' */
    const char *value; /* NUL-terminated JSON text; NULL deletes */
    bool prefix;       /* delete every key under `key` (value must be NULL; expect ignored) */
    /* -1: any state; 0: the key must be absent; > 0: the key's version must equal it. */
    int64_t expect;
};

/* doc_get: doc is NULL when the key is absent (with status OK). */
typedef void cp_store_doc_fn(void *arg, const struct cp_status *st, const struct cp_doc *doc);
/* doc_list: the documents under a prefix, by key order. */
typedef void cp_store_docs_fn(void *arg, const struct cp_status *st, const struct cp_doc *docs,
                              size_t n);
/* doc_write: `versions[i]` is the new version of op i (0 for deletes). */
typedef void cp_store_write_fn(void *arg, const struct cp_status *st, const int64_t *versions,
                               size_t n);
/* A single message (edit, delete, reaction). */
typedef void cp_store_message_fn(void *arg, const struct cp_status *st, const struct cp_message *m);
/* A count (history_trim: messages removed). */
typedef void cp_store_count_fn(void *arg, const struct cp_status *st, int64_t n);

/* Room edit for room_update: `room` is a private deep copy (strings and metadata heap-owned:
 * replace a field by freeing it and assigning a malloc'd one). Set *st to refuse (the store
 * answers that status and changes nothing). May be called more than once (etcd: re-run on the
 * fresh record after a concurrent change). id, member_count, created_at and last_seq are
 * ignored; the store sets updated_at. */
typedef void cp_room_edit_fn(void *edit_arg, struct cp_room *room, struct cp_status *st);

/* Message edit for message_update: same rules as cp_room_edit_fn for a private deep copy of
 * the stored message (id, seq, room_id, timestamp ignored). */
typedef void cp_message_edit_fn(void *edit_arg, struct cp_message *m, struct cp_status *st);

/* Committed changes, reported to the observer once each, in commit order, whichever replica
 * made them (etcd: from the watch, so every replica sees every change). Borrowed. */
enum cp_store_event_kind {
    CP_STORE_EV_MESSAGE,        /* message appended (room message; SaveMessage too) */
    CP_STORE_EV_MESSAGE_UPDATE, /* edited, deleted or reacted to: message is the new state */
    CP_STORE_EV_MEMBER_ADDED,   /* room_id, user_id, member */
    CP_STORE_EV_MEMBER_REMOVED, /* room_id, user_id */
    CP_STORE_EV_ROOM,           /* room created or updated: room */
    CP_STORE_EV_ROOM_DELETED,   /* room_id */
    CP_STORE_EV_DOC,            /* doc written (doc) or deleted (doc->value NULL, version 0) */
};

struct cp_store_event {
    enum cp_store_event_kind kind;
    const char *room_id;
    const char *user_id;
    const struct cp_room *room;
    const struct cp_member *member;
    const struct cp_message *message;
    const struct cp_doc *doc;
    int64_t revision; /* etcd: the change's revision; memory: a counter */
};

typedef void cp_store_event_fn(void *arg, const struct cp_store_event *ev);

struct cp_store;

struct cp_store_ops {
    void (*destroy)(struct cp_store *s);
    /* Creates `room` (id set by the caller; member_count/last_seq ignored). A non-empty
     * owner_id also becomes a member with role owner. ROOM_ALREADY_EXISTS if the id is taken. */
    void (*room_create)(struct cp_store *s, const struct cp_room *room, cp_store_room_fn *cb,
                        void *arg);
    /* ROOM_NOT_FOUND if absent. */
    void (*room_get)(struct cp_store *s, const char *room_id, cp_store_room_fn *cb, void *arg);
    /* Rooms by id order; `more` says another page exists. */
    void (*room_list)(struct cp_store *s, const struct cp_room_query *q, cp_store_rooms_fn *cb,
                      void *arg);
    /* Deletes the room, its membership and history; answers the former members. */
    void (*room_delete)(struct cp_store *s, const char *room_id, cp_store_members_fn *cb,
                        void *arg);
    /* Adds a member (see struct cp_join_req). ROOM_NOT_FOUND, PERMISSION_DENIED (private),
     * ROOM_FULL, ROOM_ARCHIVED. Already a member: success with added = false. */
    void (*member_add)(struct cp_store *s, const struct cp_join_req *req, cp_store_join_fn *cb,
                       void *arg);
    /* Removes a member; answers the remaining members. ROOM_NOT_FOUND, NOT_ROOM_MEMBER. */
    void (*member_remove)(struct cp_store *s, const char *room_id, const char *user_id,
                          cp_store_members_fn *cb, void *arg);
    /* Members by user id. ROOM_NOT_FOUND. */
    void (*members_list)(struct cp_store *s, const char *room_id, cp_store_members_fn *cb,
                         void *arg);
    /* The rooms `user_id` belongs to (sorted; none is not an error). */
    void (*user_rooms)(struct cp_store *s, const char *user_id, cp_store_ids_fn *cb, void *arg);
    /* Users sharing at least one room with `user_id`, without the user (sorted, unique). */
    void (*user_peers)(struct cp_store *s, const char *user_id, cp_store_ids_fn *cb, void *arg);
    /* Gives `draft` (seq ignored) the room's next seq and appends it to history, keeping the
     * newest `max_history` messages (0: none kept, seq still advances). With a non-NULL
     * `require_member` the sender must be a member (NOT_ROOM_MEMBER). ROOM_NOT_FOUND,
     * ROOM_ARCHIVED. */
    void (*message_append)(struct cp_store *s, const struct cp_message *draft,
                           const char *require_member, int max_history, cp_store_append_fn *cb,
                           void *arg);
    /* Reads history (see struct cp_history_query). With a non-NULL `require_member`:
     * NOT_ROOM_MEMBER for non-members. ROOM_NOT_FOUND. */
    void (*history_query)(struct cp_store *s, const struct cp_history_query *q,
                          const char *require_member, cp_store_history_fn *cb, void *arg);

    /* ---- updates, documents */

    /* Applies `edit` to the room (see cp_room_edit_fn) and stores it; answers the new room.
     * ROOM_NOT_FOUND, or the edit's status. */
    void (*room_update)(struct cp_store *s, const char *room_id, cp_room_edit_fn *edit,
                        void *edit_arg, cp_store_room_fn *cb, void *arg);
    /* Sets an existing member's role; answers that one member (n = 1). ROOM_NOT_FOUND,
     * NOT_ROOM_MEMBER. */
    void (*member_set_role)(struct cp_store *s, const char *room_id, const char *user_id,
                            enum cp_role role, cp_store_members_fn *cb, void *arg);
    /* Applies `edit` to the stored message `message_id` of the room; answers the new state.
     * ROOM_NOT_FOUND, MESSAGE_NOT_FOUND (also when trimmed from history). */
    void (*message_update)(struct cp_store *s, const char *room_id, const char *message_id,
                           cp_message_edit_fn *edit, void *edit_arg, cp_store_message_fn *cb,
                           void *arg);
    /* Removes the room's messages with timestamp < before_time; answers how many. Seqs never
     * go back. ROOM_NOT_FOUND. */
    void (*history_trim)(struct cp_store *s, const char *room_id, int64_t before_time,
                         cp_store_count_fn *cb, void *arg);
    /* Documents (struct cp_doc). Reads see every write answered before they started, on any
     * replica. */
    void (*doc_get)(struct cp_store *s, const char *key, cp_store_doc_fn *cb, void *arg);
    void (*doc_list)(struct cp_store *s, const char *prefix, cp_store_docs_fn *cb, void *arg);
    /* All `ops` or none (etcd: one txn; at most 64 ops). CONFLICT when an `expect` fails. */
    void (*doc_write)(struct cp_store *s, const struct cp_doc_op *ops, size_t n,
                      cp_store_write_fn *cb, void *arg);
    /* Sets the one observer of committed changes (NULL fn: none). */
    void (*observe)(struct cp_store *s, cp_store_event_fn *fn, void *arg);
};

struct cp_store {
    const struct cp_store_ops *ops;
};

/* Frees a message and its strings (NULL is fine). */
void cp_message_free(struct cp_message *m);

/* Deep copy; NULL on ENOMEM. */
struct cp_message *cp_message_dup(const struct cp_message *m);

/* Runs `edit` on a private copy of `cur` and restores what the store owns (id, room_id, seq,
 * timestamp; no idem_key): the new state (new), or NULL with *st set to the edit's refusal or
 * INTERNAL "out of memory". For message_update in both stores. */
struct cp_message *cp_message_edited(const struct cp_message *cur, cp_message_edit_fn *edit,
                                     void *edit_arg, struct cp_status *st);

/* Deep copy of a room; NULL on ENOMEM. Free with cp_room_free. */
struct cp_room *cp_room_dup(const struct cp_room *r);

/* Frees the strings and metadata of `r` (not `r` itself when `free_self` is false). */
void cp_room_free(struct cp_room *r, bool free_self);

/* True when `s` keeps documents (doc_get, doc_list, doc_write): both stores do; a Store
 * without them answers the flows that need documents with unavailable. */
static inline bool cp_store_has_docs(const struct cp_store *s)
{
    const struct cp_store_ops *o = s->ops;
    return o->doc_get != NULL && o->doc_list != NULL && o->doc_write != NULL;
}

#endif
