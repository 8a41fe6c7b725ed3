/* Room administration over the Store (docs/rooms.md, docs/permissions.md): UpdateRoom,
 * ArchiveRoom/RestoreRoom, TransferRoomOwnership, SetMemberRole, BanMember/UnbanMember/ListBans,
 * CreateInvite/AcceptInvite and BulkJoinRoom, for the gRPC API (api/cp_rpc_rooms_admin.c).
 *
 * An actor (actor, moderator, inviter; NULL or "": the backend, which may do anything) must be
 * a member of the room (permission_denied) and is checked against cp_perm with its role and,
 * where there is one, the target member's. Members are told of role and room changes
 * (member_updated, room_updated); a banned member's connections get `banned` (cp_json.c).
 * Documents kept here:
 *   bans/<room>/<user>   {"room_id","user_id","reason","moderator_id","created_at","expires_at"}
 *   invites/<invite>     {"room_id","inviter_id","invitee_id","created_at","expires_at"}
 * Inputs are validated by the caller (ids, text sizes, ranges), borrowed during the call and
 * copied as needed. Every function answers through its callback exactly once, possibly before
 * it returns (memory store); what the callback gets is borrowed for the callback only.
 * Thread: the completion-queue thread. */
#ifndef CP_ROOMADMIN_H
#define CP_ROOMADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_ctx.h"
#include "cp_rooms.h"

/* ---- UpdateRoom, ArchiveRoom, RestoreRoom, TransferRoomOwnership: the room as written */

/* The fields UpdateRoom may write (struct cp_roomadmin_update.fields). */
enum {
    CP_ROOMADMIN_NAME = 1,
    CP_ROOMADMIN_DESCRIPTION = 2,
    CP_ROOMADMIN_MAX_MEMBERS = 4,
    CP_ROOMADMIN_METADATA = 8,
    CP_ROOMADMIN_PRIVATE = 16,
};

struct cp_roomadmin_update {
    unsigned fields;         /* CP_ROOMADMIN_* to write; the other members are then ignored */
    const char *name;        /* NULL: "" */
    const char *description; /* NULL: "" */
    int32_t max_members;     /* >= 0; 0: unlimited */
    bool is_private;
    const struct cp_kv *metadata; /* replaces the whole metadata */
    size_t n_metadata;
};

/* The CP_ROOMADMIN_* bit of an update_fields name ("name", "description", "max_members",
 * "metadata", "private"); 0 for anything else (NULL included). Pure. */
unsigned cp_roomadmin_field(const char *name);

/* The fields of `u` set to a non-zero value: what UpdateRoom writes without update_fields. */
unsigned cp_roomadmin_nonzero_fields(const struct cp_roomadmin_update *u);

/* Writes `u`'s fields (actor: update_room), then room_updated to the members. */
void cp_roomadmin_update(struct cp_ctx *c, const char *room_id, const char *actor_id,
                         const struct cp_roomadmin_update *u, cp_rooms_room_fn *cb, void *arg);

/* Sets the room archived (true) or not (actor: archive), then room_updated. */
void cp_roomadmin_archive(struct cp_ctx *c, const char *room_id, const char *actor_id,
                          bool archived, cp_rooms_room_fn *cb, void *arg);

/* Makes member `new_owner_id` the owner (actor: transfer; not_room_member otherwise), the
 * previous owner an admin (if still a member), and owner_id the new owner: member_updated for
 * each role changed, then room_updated. Already the owner: the room, nothing written. */
void cp_roomadmin_transfer(struct cp_ctx *c, const char *room_id, const char *actor_id,
                           const char *new_owner_id, cp_rooms_room_fn *cb, void *arg);

/* ---- SetMemberRole, AcceptInvite: one membership */

/* `m` (NULL on error) is a member of `room_id`. */
typedef void cp_roomadmin_member_fn(void *arg, const struct cp_status *st, const char *room_id,
                                    const struct cp_member *m);

/* Gives member `user_id` the role `role` (not owner; the owner's role changes only by
 * transfer). The actor needs set_role over the member's current role and over `role`.
 * member_updated when the role changed. */
void cp_roomadmin_set_role(struct cp_ctx *c, const char *room_id, const char *actor_id,
                           const char *user_id, enum cp_role role, cp_roomadmin_member_fn *cb,
                           void *arg);

/* ---- BanMember, UnbanMember, ListBans */

/* Bans `user_id` (a member or not; never the owner, never oneself) for `duration_ms` (> 0) or
 * for good (0): writes the ban document (actor: ban over the user's role), then removes the
 * member and sends them `banned`. Joins are refused while it is in force (cp_rooms_join). */
void cp_roomadmin_ban(struct cp_ctx *c, const char *room_id, const char *moderator_id,
                      const char *user_id, const char *reason, int64_t duration_ms,
                      cp_rooms_done_fn *cb, void *arg);

/* Deletes the ban document (actor: ban); not banned is success. */
void cp_roomadmin_unban(struct cp_ctx *c, const char *room_id, const char *moderator_id,
                        const char *user_id, cp_rooms_done_fn *cb, void *arg);

struct cp_ban {
    const char *room_id;
    const char *user_id;
    const char *reason;       /* "" when none */
    const char *moderator_id; /* "" the backend */
    int64_t created_at;       /* Unix ms */
    int64_t expires_at;       /* Unix ms; 0: permanent */
};
typedef void cp_roomadmin_bans_fn(void *arg, const struct cp_status *st, const struct cp_ban *bans,
                                  size_t n);

/* The room's bans in force, by user id (room_not_found); ended ones are deleted on the way. */
void cp_roomadmin_bans(struct cp_ctx *c, const char *room_id, cp_roomadmin_bans_fn *cb, void *arg);

/* ---- CreateInvite, AcceptInvite */

/* Default and longest invite lifetime. */
#define CP_ROOMADMIN_INVITE_TTL_DEF (7LL * 24 * 3600 * 1000)
#define CP_ROOMADMIN_INVITE_TTL_MAX (30LL * 24 * 3600 * 1000)

struct cp_invite {
    const char *id; /* "i-..." */
    const char *room_id;
    const char *inviter_id; /* "" the backend */
    const char *invitee_id;
    int64_t created_at; /* Unix ms */
    int64_t expires_at;
};
typedef void cp_roomadmin_invite_fn(void *arg, const struct cp_status *st,
                                    const struct cp_invite *inv);

/* Invites `invitee_id` (not a member yet) to the room (not archived; actor: invite) for
 * `ttl_ms` (0: CP_ROOMADMIN_INVITE_TTL_DEF). */
void cp_roomadmin_invite(struct cp_ctx *c, const char *room_id, const char *inviter_id,
                         const char *invitee_id, int64_t ttl_ms, cp_roomadmin_invite_fn *cb,
                         void *arg);

/* Joins `user_id` (the invitee) to the invite's room as a member through cp_rooms_join, which
 * admits a private room; the invite is consumed (invite_not_found, invite_expired,
 * already_room_member). */
void cp_roomadmin_accept(struct cp_ctx *c, const char *invite_id, const char *user_id,
                         cp_roomadmin_member_fn *cb, void *arg);

/* ---- BulkJoinRoom */

/* One user's outcome, in the order the users were given. */
struct cp_bulk_result {
    const char *user_id;
    enum sb_code code; /* SB_CODE_NONE: joined */
    const char *msg;   /* with a code: the sentence */
    enum cp_role role; /* joined: the role and when */
    int64_t joined_at;
};
typedef void cp_roomadmin_bulk_fn(void *arg, const struct cp_status *st,
                                  const struct cp_bulk_result *res, size_t n);

/* Joins each of `user_ids` (n > 0) with `role` through cp_rooms_join, one after the other; an
 * invalid id or a refused join is that user's outcome. `st` is an error only when the room
 * cannot be read (then res is NULL). */
void cp_roomadmin_bulk_join(struct cp_ctx *c, const char *room_id, const char *const *user_ids,
                            size_t n, enum cp_role role, cp_roomadmin_bulk_fn *cb, void *arg);

#endif
