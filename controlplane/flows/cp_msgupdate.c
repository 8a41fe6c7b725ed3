/* Edit, delete and react to a stored message (see cp_msgupdate.h). */
#include "cp_msgupdate.h"

#include <stdlib.h>
#include <string.h>

#include "cp_json.h"
#include "cp_msgext.h"
#include "cp_perm.h"
#include "sb_ident.h"
#include "sb_json.h"
#include "sb_log.h"
#include "sb_time.h"
#include "switchboard/internal/v1/nodelink.pb-c.h"

struct role_of {
    char *user_id;
    enum cp_role role;
};

struct upd {
    struct cp_ctx *c;
    cp_msgupdate_fn *cb;
    void *arg;
    enum cp_msgupdate_kind kind;
    char *room_id, *message_id;
    char *actor; /* editor, deleter or reacting user; "" the backend */
    char *data;
    size_t data_len;
    char *emoji;
    enum cp_role actor_role;
    struct role_of *roles; /* members above CP_ROLE_MEMBER (a sender not listed is a member) */
    size_t n_roles;
    int64_t now;
    bool noop;                 /* nothing to change: answer `same` */
    struct cp_message *same;   /* with noop */
    struct cp_message *result; /* the new state */
};

static void upd_free(struct upd *u)
{
    free(u->room_id);
    free(u->message_id);
    free(u->actor);
    free(u->data);
    free(u->emoji);
    for (size_t i = 0; i < u->n_roles; i++)
        free(u->roles[i].user_id);
    free(u->roles);
    cp_message_free(u->same);
    cp_message_free(u->result);
    free(u);
}

/* Answers (st, m) and frees u. */
static void finish(struct upd *u, const struct cp_status *st, const struct cp_message *m)
{
    u->cb(u->arg, st, m);
    upd_free(u);
}

static void fail(struct upd *u, enum sb_code code, const char *msg)
{
    struct cp_status st;
    cp_status_set(&st, code, "%s", msg);
    finish(u, &st, NULL);
}

static bool set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static enum cp_role sender_role(const struct upd *u, const char *sender)
{
    for (size_t i = 0; sender != NULL && i < u->n_roles; i++)
        if (strcmp(u->roles[i].user_id, sender) == 0)
            return u->roles[i].role;
    return CP_ROLE_MEMBER;
}

/* Refuses with a status the done callback turns into an answer of the unchanged message. */
static void refuse_noop(struct upd *u, struct cp_message *m, struct cp_status *st)
{
    u->noop = true;
    cp_message_free(u->same);
    u->same = cp_message_dup(m);
    cp_status_set(st, SB_CODE_MESSAGE_NOT_FOUND, "unchanged");
}

static void replace_text(char **field, char *v)
{
    free(*field);
    *field = v;
}

static void upd_edit(void *arg, struct cp_message *m, struct cp_status *st)
{
    struct upd *u = arg;
    u->noop = false;
    if (m->deleted) {
        if (u->kind == CP_MSG_DELETE) {
            refuse_noop(u, m, st);
            return;
        }
        cp_status_set(st, SB_CODE_MESSAGE_NOT_FOUND, "message %s of room %s was deleted",
                      u->message_id, u->room_id);
        return;
    }
    if ((u->kind == CP_MSG_EDIT || u->kind == CP_MSG_DELETE) && set(u->actor) &&
        !(set(m->user_id) && strcmp(m->user_id, u->actor) == 0)) {
        enum cp_perm_action action =
            u->kind == CP_MSG_EDIT ? CP_PERM_EDIT_OTHERS : CP_PERM_DELETE_OTHERS;
        enum cp_role target = sender_role(u, m->user_id);
        if (!cp_perm_allows(u->actor_role, action, target)) {
            cp_status_set(st, SB_CODE_PERMISSION_DENIED,
                          "%s %s of room %s may not %s a message sent by %s%s%s",
                          cp_role_name(u->actor_role), u->actor, u->room_id,
                          u->kind == CP_MSG_EDIT ? "edit" : "delete",
                          set(m->user_id) ? cp_role_name(target) : "the backend",
                          set(m->user_id) ? " " : "", set(m->user_id) ? m->user_id : "");
            return;
        }
    }
    switch (u->kind) {
    case CP_MSG_EDIT: {
        char *ext = NULL;
        char *data = malloc(u->data_len + 1);
        if (data == NULL ||
            cp_msgext_add_edit(m->ext, u->actor, m->data, m->data_len, u->now, &ext) != SB_OK) {
            free(data);
            cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
            return;
        }
        memcpy(data, u->data, u->data_len);
        data[u->data_len] = '\0';
        replace_text(&m->data, data);
        m->data_len = u->data_len;
        replace_text(&m->ext, ext);
        m->edited_at = u->now;
        break;
    }
    case CP_MSG_DELETE:
        /* A tombstone keeps nothing of what was said: no data, no trail, no reactions. */
        replace_text(&m->data, NULL);
        m->data_len = 0;
        replace_text(&m->ext, NULL);
        m->deleted = true;
        m->deleted_at = u->now;
        break;
    case CP_MSG_REACT_ADD:
    case CP_MSG_REACT_REMOVE: {
        char *ext = NULL;
        bool changed = false;
        enum sb_err e = cp_msgext_react(m->ext, u->emoji, u->actor, u->kind == CP_MSG_REACT_ADD,
                                        &ext, &changed);
        if (e == SB_EFULL) {
            cp_status_set(st, SB_CODE_INVALID_MESSAGE,
                          "message %s already has %d different reactions", u->message_id,
                          CP_MSGEXT_MAX_REACTIONS);
            return;
        }
        if (e != SB_OK) {
            cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
            return;
        }
        if (!changed) {
            refuse_noop(u, m, st);
            return;
        }
        replace_text(&m->ext, ext);
        break;
    }
    }
}

/* The new state is stored: the members get the live frame, the caller the answer. */
static void upd_fanout(void *arg, const struct cp_status *st, const struct cp_member *members,
                       size_t n)
{
    struct upd *u = arg;
    const struct cp_message *m = u->result;
    if (st->code == SB_CODE_NONE && m != NULL) {
        struct cp_buf b;
        cp_buf_init(&b);
        if (u->kind == CP_MSG_EDIT)
            cp_json_message_edited(&b, m, u->actor);
        else if (u->kind == CP_MSG_DELETE)
            cp_json_message_deleted(&b, m, u->actor);
        else
            cp_json_reaction(&b, m, u->emoji, u->actor, u->kind == CP_MSG_REACT_ADD, u->now);
        if (b.failed)
            SB_LOG_ERROR("cp", "out of memory building an update frame", "room=%s id=%s",
                         u->room_id, u->message_id);
        else
            cp_fanout_room(&u->c->fan, members, n, u->room_id, NULL, b.data, b.len, 0);
        cp_buf_fini(&b);
    }
    struct cp_status ok;
    cp_status_ok(&ok);
    finish(u, &ok, m);
}

static void upd_stored(void *arg, const struct cp_status *st, const struct cp_message *m)
{
    struct upd *u = arg;
    struct cp_status ok;
    cp_status_ok(&ok);
    if (st->code != SB_CODE_NONE) {
        finish(u, u->noop ? &ok : st, u->noop ? u->same : NULL);
        return;
    }
    u->result = cp_message_dup(m);
    if (u->result == NULL) {
        /* Stored; members recover it from history. */
        finish(u, &ok, NULL);
        return;
    }
    u->c->store->ops->members_list(u->c->store, u->room_id, upd_fanout, u);
}

static void upd_members(void *arg, const struct cp_status *st, const struct cp_member *members,
                        size_t n)
{
    struct upd *u = arg;
    if (st->code != SB_CODE_NONE) {
        finish(u, st, NULL);
        return;
    }
    if (set(u->actor)) {
        bool found = false;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(members[i].user_id, u->actor) == 0) {
                found = true;
                u->actor_role = members[i].role;
                break;
            }
        }
        if (!found) {
            struct cp_status mst;
            cp_status_set(&mst, SB_CODE_NOT_ROOM_MEMBER, "user %s is not a member of room %s",
                          u->actor, u->room_id);
            finish(u, &mst, NULL);
            return;
        }
    }
    if (u->kind == CP_MSG_EDIT || u->kind == CP_MSG_DELETE) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            k += members[i].role != CP_ROLE_MEMBER;
        u->roles = k ? calloc(k, sizeof(*u->roles)) : NULL;
        bool failed = k > 0 && u->roles == NULL;
        for (size_t i = 0; !failed && i < n; i++) {
            if (members[i].role == CP_ROLE_MEMBER)
                continue;
            struct role_of *r = &u->roles[u->n_roles++];
            r->role = members[i].role;
            r->user_id = strdup(members[i].user_id);
            failed = r->user_id == NULL;
        }
        if (failed) {
            fail(u, SB_CODE_INTERNAL, "out of memory");
            return;
        }
    }
    u->now = sb_time_now_ms();
    if (u->c->store->ops->message_update == NULL) {
        fail(u, SB_CODE_UNAVAILABLE, "this store cannot update messages");
        return;
    }
    u->c->store->ops->message_update(u->c->store, u->room_id, u->message_id, upd_edit, u,
                                     upd_stored, u);
}

/* Archived rooms are read-only, except that deletion (moderation) stays possible. */
static void upd_room(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct upd *u = arg;
    if (st->code != SB_CODE_NONE) {
        finish(u, st, NULL);
        return;
    }
    if (room->archived && u->kind != CP_MSG_DELETE) {
        struct cp_status ast;
        cp_status_set(&ast, SB_CODE_ROOM_ARCHIVED, "room %s is archived", u->room_id);
        finish(u, &ast, NULL);
        return;
    }
    u->c->store->ops->members_list(u->c->store, u->room_id, upd_members, u);
}

static char *dupn(const char *s, size_t n, bool *failed)
{
    char *d = malloc(n + 1);
    if (d == NULL) {
        *failed = true;
        return NULL;
    }
    if (n > 0)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static char *dups(const char *s, bool *failed)
{
    return dupn(s ? s : "", s ? strlen(s) : 0, failed);
}

void cp_msgupdate_apply(struct cp_ctx *c, const struct cp_msgupdate *in, cp_msgupdate_fn *cb,
                        void *arg)
{
    struct upd *u = calloc(1, sizeof(*u));
    bool failed = u == NULL;
    if (u != NULL) {
        u->c = c;
        u->cb = cb;
        u->arg = arg;
        u->kind = in->kind;
        u->room_id = dups(in->room_id, &failed);
        u->message_id = dups(in->message_id, &failed);
        u->actor = dups(in->actor, &failed);
        u->emoji = dups(in->emoji, &failed);
        u->data = dupn(in->data, in->data ? in->data_len : 0, &failed);
        u->data_len = in->data ? in->data_len : 0;
    }
    if (failed) {
        struct cp_status st;
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        if (u != NULL)
            upd_free(u);
        cb(arg, &st, NULL);
        return;
    }
    c->store->ops->room_get(c->store, u->room_id, upd_room, u);
}

bool cp_msgupdate_client(struct cp_ctx *c, const Switchboard__Internal__V1__ClientRequest *req,
                         const char *user, cp_msgupdate_fn *cb, void *arg, struct cp_status *st)
{
    const Switchboard__Internal__V1__MessageUpdateOp *op = NULL;
    struct cp_msgupdate u = {.actor = user};
    switch (req->op_case) {
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_EDIT_MESSAGE:
        op = req->edit_message;
        u.kind = CP_MSG_EDIT;
        break;
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_DELETE_MESSAGE:
        op = req->delete_message;
        u.kind = CP_MSG_DELETE;
        break;
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_REACT:
        op = req->react;
        u.kind = op != NULL && op->remove ? CP_MSG_REACT_REMOVE : CP_MSG_REACT_ADD;
        break;
    default:
        break;
    }
    if (op == NULL) {
        cp_status_set(st, SB_CODE_INVALID_MESSAGE, "request carries no operation");
        return false;
    }
    if (!set(user) || !sb_ident_is_valid(op->room_id ? op->room_id : "") ||
        !sb_ident_is_valid(op->message_id ? op->message_id : "")) {
        cp_status_set(st, SB_CODE_INVALID_MESSAGE, "room_id and message_id must be valid ids");
        return false;
    }
    if (u.kind == CP_MSG_EDIT) {
        if (c->set.max_message_size > 0 && (int64_t)op->data.len > c->set.max_message_size) {
            cp_status_set(st, SB_CODE_MESSAGE_TOO_LARGE, "data is %zu bytes, more than %lld",
                          op->data.len, (long long)c->set.max_message_size);
            return false;
        }
        if (!sb_json_is_valid((const char *)op->data.data, op->data.len)) {
            cp_status_set(st, SB_CODE_INVALID_MESSAGE, "data is not valid JSON");
            return false;
        }
        u.data = (const char *)op->data.data;
        u.data_len = op->data.len;
    }
    if (u.kind == CP_MSG_REACT_ADD || u.kind == CP_MSG_REACT_REMOVE) {
        if (!cp_msgext_emoji_valid(op->emoji)) {
            cp_status_set(st, SB_CODE_INVALID_MESSAGE,
                          "emoji must be 1-%d bytes of UTF-8 without control characters",
                          CP_MSGEXT_MAX_EMOJI_BYTES);
            return false;
        }
        u.emoji = op->emoji;
    }
    u.room_id = op->room_id;
    u.message_id = op->message_id;
    cp_msgupdate_apply(c, &u, cb, arg);
    return true;
}
