/* Helpers shared by Store implementations and callers: roles, deep copies, frees. */
#include "cp_store.h"

#include <stdlib.h>
#include <string.h>

static const char *const role_names[] = {"member", "moderator", "admin", "owner"};

const char *cp_role_name(enum cp_role role)
{
    if ((int)role < 0 || role > CP_ROLE_OWNER)
        return "member";
    return role_names[role];
}

enum sb_err cp_role_parse(const char *s, enum cp_role *out)
{
    if (s == NULL || s[0] == '\0') {
        *out = CP_ROLE_MEMBER;
        return SB_OK;
    }
    for (int i = 0; i <= CP_ROLE_OWNER; i++) {
        if (strcmp(s, role_names[i]) == 0) {
            *out = (enum cp_role)i;
            return SB_OK;
        }
    }
    return SB_EINVAL;
}

static char *dup_or_null(const char *s, int *failed)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *failed = 1;
    return d;
}

static void free_kv(struct cp_kv *kv, size_t n)
{
    for (size_t i = 0; kv != NULL && i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static struct cp_kv *dup_kv(const struct cp_kv *kv, size_t n, int *failed)
{
    if (n == 0)
        return NULL;
    struct cp_kv *d = calloc(n, sizeof(*d));
    if (d == NULL) {
        *failed = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        d[i].key = dup_or_null(kv[i].key ? kv[i].key : "", failed);
        d[i].value = dup_or_null(kv[i].value ? kv[i].value : "", failed);
    }
    return d;
}

void cp_message_free(struct cp_message *m)
{
    if (m == NULL)
        return;
    free(m->id);
    free(m->room_id);
    free(m->user_id);
    free(m->thread_id);
    free_kv(m->metadata, m->n_metadata);
    free(m->data);
    free(m->idem_key);
    free(m->ext);
    free(m);
}

struct cp_message *cp_message_dup(const struct cp_message *m)
{
    struct cp_message *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    int failed = 0;
    d->id = dup_or_null(m->id, &failed);
    d->seq = m->seq;
    d->room_id = dup_or_null(m->room_id, &failed);
    d->user_id = dup_or_null(m->user_id, &failed);
    d->thread_id = dup_or_null(m->thread_id, &failed);
    d->idem_key = dup_or_null(m->idem_key, &failed);
    d->metadata = dup_kv(m->metadata, m->n_metadata, &failed);
    d->n_metadata = d->metadata ? m->n_metadata : 0;
    d->timestamp = m->timestamp;
    d->deleted = m->deleted;
    d->deleted_at = m->deleted_at;
    d->edited_at = m->edited_at;
    d->ext = dup_or_null(m->ext, &failed);
    d->data = malloc(m->data_len + 1);
    if (d->data == NULL) {
        failed = 1;
    } else {
        if (m->data_len > 0)
            memcpy(d->data, m->data, m->data_len);
        d->data[m->data_len] = '\0';
        d->data_len = m->data_len;
    }
    if (failed) {
        cp_message_free(d);
        return NULL;
    }
    return d;
}

struct cp_message *cp_message_edited(const struct cp_message *cur, cp_message_edit_fn *edit,
                                     void *edit_arg, struct cp_status *st)
{
    struct cp_message *copy = cp_message_dup(cur);
    if (copy == NULL) {
        cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
        return NULL;
    }
    cp_status_ok(st);
    edit(edit_arg, copy, st);
    if (st->code != SB_CODE_NONE) {
        cp_message_free(copy);
        return NULL;
    }
    /* The identity of a message never changes. */
    int failed = 0;
    char *id = dup_or_null(cur->id, &failed);
    char *room_id = dup_or_null(cur->room_id, &failed);
    if (failed) {
        free(id);
        free(room_id);
        cp_message_free(copy);
        cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
        return NULL;
    }
    free(copy->id);
    free(copy->room_id);
    copy->id = id;
    copy->room_id = room_id;
    copy->seq = cur->seq;
    copy->timestamp = cur->timestamp;
    free(copy->idem_key);
    copy->idem_key = NULL;
    return copy;
}

void cp_room_free(struct cp_room *r, bool free_self)
{
    if (r == NULL)
        return;
    free(r->id);
    free(r->name);
    free(r->description);
    free(r->owner_id);
    free_kv(r->metadata, r->n_metadata);
    if (free_self)
        free(r);
    else
        memset(r, 0, sizeof(*r));
}

struct cp_room *cp_room_dup(const struct cp_room *r)
{
    struct cp_room *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    int failed = 0;
    *d = *r;
    d->id = dup_or_null(r->id ? r->id : "", &failed);
    d->name = dup_or_null(r->name ? r->name : "", &failed);
    d->description = dup_or_null(r->description ? r->description : "", &failed);
    d->owner_id = dup_or_null(r->owner_id ? r->owner_id : "", &failed);
    d->metadata = dup_kv(r->metadata, r->n_metadata, &failed);
    d->n_metadata = d->metadata ? r->n_metadata : 0;
    if (failed) {
        cp_room_free(d, true);
        return NULL;
    }
    return d;
}
