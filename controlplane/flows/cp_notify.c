/* Frames to the people around a user or a room (see cp_notify.h). */
#include "cp_notify.h"

#include <stdlib.h>
#include <string.h>

#include "sb_log.h"

struct frame_op {
    struct cp_ctx *c;
    char *room_id; /* room frames only */
    char *user_id; /* excluded from room deliveries */
    size_t len;
    char frame[];
};

static struct frame_op *frame_op_new(struct cp_ctx *c, const char *frame, size_t len,
                                     const char *room_id, const char *user_id)
{
    struct frame_op *op = malloc(sizeof(*op) + len + 1);
    if (op == NULL)
        return NULL;
    op->c = c;
    op->len = len;
    memcpy(op->frame, frame, len);
    op->frame[len] = '\0';
    op->room_id = room_id ? strdup(room_id) : NULL;
    op->user_id = user_id ? strdup(user_id) : NULL;
    if ((room_id && !op->room_id) || (user_id && !op->user_id)) {
        free(op->room_id);
        free(op->user_id);
        free(op);
        return NULL;
    }
    return op;
}

static void frame_op_free(struct frame_op *op)
{
    free(op->room_id);
    free(op->user_id);
    free(op);
}

static void peers_done(void *arg, const struct cp_status *st, const char *const *ids, size_t n)
{
    struct frame_op *op = arg;
    if (st->code == SB_CODE_NONE && n > 0)
        cp_fanout_users(&op->c->fan, ids, n, op->frame, op->len);
    else if (st->code != SB_CODE_NONE)
        SB_LOG_WARN("cp", "frame to a user's peers not sent", "user=%s code=%s", op->user_id,
                    sb_code_name(st->code));
    frame_op_free(op);
}

/* The user's rooms: each node delivers to its local members of them (cp_fanout_rooms). Only if
 * some node is an older data plane without that Delivery target, fall back to listing every
 * co-member (user_peers: a read of every member of every room of the user). */
static void rooms_done(void *arg, const struct cp_status *st, const char *const *ids, size_t n)
{
    struct frame_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        SB_LOG_WARN("cp", "frame to a user's peers not sent", "user=%s code=%s", op->user_id,
                    sb_code_name(st->code));
    } else if (!cp_fanout_rooms(&op->c->fan, ids, n, op->user_id, op->frame, op->len)) {
        op->c->store->ops->user_peers(op->c->store, op->user_id, peers_done, op);
        return;
    }
    frame_op_free(op);
}

static void room_frame_done(void *arg, const struct cp_status *st, const struct cp_member *members,
                            size_t n)
{
    struct frame_op *op = arg;
    if (st->code == SB_CODE_NONE)
        cp_fanout_room(&op->c->fan, members, n, op->room_id, op->user_id, op->frame, op->len, 0);
    frame_op_free(op);
}

void cp_notify_peers(struct cp_ctx *c, const char *user_id, const char *frame, size_t len)
{
    struct frame_op *op = frame_op_new(c, frame, len, NULL, user_id);
    if (op == NULL) {
        SB_LOG_ERROR("cp", "out of memory announcing presence", "user=%s", user_id);
        return;
    }
    c->store->ops->user_rooms(c->store, op->user_id, rooms_done, op);
}

void cp_notify_room(struct cp_ctx *c, const char *room_id, const char *exclude, const char *frame,
                    size_t len)
{
    struct frame_op *op = frame_op_new(c, frame, len, room_id, exclude);
    if (op == NULL) {
        SB_LOG_ERROR("cp", "out of memory sending to a room", "room=%s", room_id);
        return;
    }
    c->store->ops->members_list(c->store, op->room_id, room_frame_done, op);
}
