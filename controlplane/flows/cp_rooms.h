/* Room flows shared by the gRPC API and NodeLink: create, delete, join, leave and publish, each
 * a Store operation followed by its events (Membership to the user's nodes, join/leave/message
 * deliveries to the members' nodes). Results come through callbacks, exactly once, possibly
 * after the call returns (asynchronous Store). Borrowed inputs are copied as needed.
 * Thread: the completion-queue thread. */
#ifndef CP_ROOMS_H
#define CP_ROOMS_H

#include "cp_ctx.h"
#include "cp_keys.h"

typedef void cp_rooms_done_fn(void *arg, const struct cp_status *st);
typedef void cp_rooms_room_fn(void *arg, const struct cp_status *st, const struct cp_room *room);

/* Creates `room` (id, name, ... set by the caller); the owner, if any, becomes a member. */
void cp_rooms_create(struct cp_ctx *c, const struct cp_room *room, cp_rooms_room_fn *cb, void *arg);

/* Deletes a room; its members' nodes get Membership(removed). */
void cp_rooms_delete(struct cp_ctx *c, const char *room_id, cp_rooms_done_fn *cb, void *arg);

struct cp_join_outcome {
    enum cp_role role;
    int64_t joined_at;
    bool added;       /* false: the user was already a member (no event was sent) */
    bool history_gap; /* with since: messages after it were already trimmed */
    const struct cp_message *const *replay; /* with since: what was missed, oldest first */
    size_t n_replay;
};
typedef void cp_rooms_join_fn(void *arg, const struct cp_status *st,
                              const struct cp_join_outcome *o);

/* Joins `user_id` to `room_id`. `client`: a client's join frame (a private room refused
 * PERMISSION_DENIED unless `granted`, auto_create_rooms applies). `granted`: with `client`, the
 * connection's token grants the room (its `rooms` claim, cp_access_has_room); ignored for the
 * backend's joins, which may always enter private rooms. has_since: also read the messages
 * after `since`. Every join (gRPC JoinRoom/BulkJoinRoom/AcceptInvite, client frame) is refused
 * BANNED while a ban document is in force, and ROOM_LIMIT_REACHED when the user is in
 * max_rooms_per_user rooms and not in this one. */
void cp_rooms_join(struct cp_ctx *c, const char *room_id, const char *user_id, enum cp_role role,
                   bool client, bool granted, bool has_since, int64_t since, cp_rooms_join_fn *cb,
                   void *arg);

/* Removes `user_id` from `room_id`: Membership(removed) to the user's nodes, typing stopped,
 * `leave` to the remaining members. */
void cp_rooms_leave(struct cp_ctx *c, const char *room_id, const char *user_id,
                    cp_rooms_done_fn *cb, void *arg);

struct cp_publish {
    const char *room_id;
    const char *user_id; /* sender; NULL for none */
    bool require_member; /* a client's message: the sender must be a member */
    const char *data;    /* valid JSON text */
    size_t data_len;
    const char *thread_id; /* NULL or "" for none */
    const struct cp_kv *metadata;
    size_t n_metadata;
    const char *idem_key;    /* the caller's idempotency key (API), NULL: none */
    const char *request_key; /* a client request's key from its node: it matters only where a
                              * publish may be re-sent to another replica (publish_via) */
    bool no_forward;         /* Peer/Publish on the holder: never forward again */
    bool no_deliver;         /* SaveMessage: store only, deliver nothing (docs/history.md) */
};
typedef void cp_rooms_publish_fn(void *arg, const struct cp_status *st, const char *message_id,
                                 int64_t seq);

/* The message a publish stores: a new id (written into `id`), the sender, thread, metadata,
 * data and idempotency key of `p` (borrowed), now as its timestamp. */
void cp_rooms_draft(const struct cp_publish *p, char id[SB_ID_LEN], struct cp_message *out);

/* Delivers a stored message: its `message` frame once to every node hosting one of `members`
 * (members_rev as in struct cp_append_result: 0 when unknown). The one place a room message
 * leaves the control plane, whichever replica stored it. */
void cp_rooms_deliver(struct cp_ctx *c, const struct cp_message *m, const struct cp_member *members,
                      size_t n_members, uint64_t members_rev);

/* Reads for the API (the Store's answers, borrowed for the callback): a room, a page of rooms,
 * a room's members (room_not_found). */
void cp_rooms_get(struct cp_ctx *c, const char *room_id, cp_rooms_room_fn *cb, void *arg);
void cp_rooms_list(struct cp_ctx *c, const struct cp_room_query *q, cp_store_rooms_fn *cb,
                   void *arg);
void cp_rooms_members(struct cp_ctx *c, const char *room_id, cp_store_members_fn *cb, void *arg);

/* DeleteRoom by a member (`target_id` NULL) or the removal of another member (a kick): the
 * actor's role and the target's are read and checked against docs/permissions.md
 * (permission_denied, not_room_member), then cp_rooms_delete or cp_rooms_leave. */
void cp_rooms_delete_as(struct cp_ctx *c, const char *room_id, const char *actor_id,
                        cp_rooms_done_fn *cb, void *arg);
void cp_rooms_kick(struct cp_ctx *c, const char *room_id, const char *actor_id,
                   const char *target_id, cp_rooms_done_fn *cb, void *arg);

/* Gives the message an id and the room's next seq, stores it in history, delivers the
 * `message` frame once to every node hosting a member, then answers. */
void cp_rooms_publish(struct cp_ctx *c, const struct cp_publish *p, cp_rooms_publish_fn *cb,
                      void *arg);

/* ---- bans and notices (docs/rooms.md) */

/* Longest document key built here. */
#define CP_ROOMS_KEY_MAX CP_KEYS_DOC_KEY_MAX

/* "bans/<room>/<user>". */
void cp_rooms_ban_key(char out[CP_ROOMS_KEY_MAX], const char *room_id, const char *user_id);

/* Whether the ban document `value` (JSON {reason, moderator_id, created_at, expires_at}) is in
 * force at `now` (Unix ms); *expires_at gets its end (0: permanent). Unreadable: in force. */
bool cp_rooms_ban_active(const char *value, int64_t now, int64_t *expires_at);

/* Deletes document `key` if still at `version` (-1: any); nobody waits for the outcome. */
void cp_rooms_doc_delete(struct cp_ctx *c, const char *key, int64_t version);

#endif
