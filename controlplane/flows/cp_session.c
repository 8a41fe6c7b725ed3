/* Session records (see cp_session.h). */
#include "cp_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_keys.h"
#include "cp_once.h"
#include "sb_ident.h"
#include "sb_log.h"
#include "sb_time.h"

#define SWEEP_MIN_MS 1000
#define SWEEP_MAX_MS 60000

struct resolve {
    struct cp_ctx *c;
    cp_session_fn *cb;
    void *arg;
    const char *user_id, *requested, *fresh;
};

static void got(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct resolve *r = arg;
    bool ok = false;
    if (st->code == SB_CODE_NONE && doc != NULL) {
        json_t *j = json_loads(doc->value, 0, NULL);
        const char *user = j ? json_string_value(json_object_get(j, "user_id")) : NULL;
        json_int_t closed_at = j ? json_integer_value(json_object_get(j, "closed_at")) : 0;
        ok = user != NULL && strcmp(user, r->user_id) == 0 &&
             sb_time_now_ms() - closed_at <= r->c->set.session_ttl_ms;
        json_decref(j);
    }
    r->cb(r->arg, ok ? r->requested : r->fresh, ok);
    free(r);
}

void cp_session_resolve(struct cp_ctx *c, const char *user_id, const char *requested,
                        const char *fresh, cp_session_fn *cb, void *arg)
{
    if (requested == NULL || requested[0] == '\0' || c->set.session_ttl_ms <= 0 ||
        !sb_ident_is_valid(requested) || strcmp(requested, fresh) == 0) {
        cb(arg, fresh, false);
        return;
    }
    /* Still open on another connection (the old one not noticed gone yet, or a second tab). */
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&c->presence.conns, &it);
    while ((e = sb_map_iter_next(&c->presence.conns, &it)) != NULL) {
        const struct cp_conn *conn = e->value;
        if (conn->session_id != NULL && strcmp(conn->session_id, requested) == 0) {
            bool mine = strcmp(conn->user->id, user_id) == 0;
            cb(arg, mine ? requested : fresh, mine);
            return;
        }
    }
    struct resolve *r = malloc(sizeof(*r));
    char key[CP_KEYS_DOC_KEY_MAX];
    if (r == NULL || c->store->ops->doc_get == NULL) {
        free(r);
        cb(arg, fresh, false);
        return;
    }
    *r = (struct resolve){c, cb, arg, user_id, requested, fresh};
    cp_keys_doc_session(key, requested);
    c->store->ops->doc_get(c->store, key, got, r);
}

static void written(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    (void)arg;
    (void)v;
    (void)n;
    if (st->code != SB_CODE_NONE && st->code != SB_CODE_CONFLICT)
        SB_LOG_DEBUG("cp", "session record not written", "code=%s", sb_code_name(st->code));
}

void cp_session_closed(struct cp_ctx *c, const struct cp_conn *conn)
{
    if (c->set.session_ttl_ms <= 0 || c->stopping || c->store == NULL ||
        c->store->ops->doc_write == NULL || conn->session_id == NULL ||
        !sb_ident_is_valid(conn->session_id) || !cp_ctx_is_leader(c))
        return;
    json_t *j = json_pack("{s:s, s:I}", "user_id", conn->user->id, "closed_at",
                          (json_int_t)sb_time_now_ms());
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (txt == NULL)
        return;
    char key[CP_KEYS_DOC_KEY_MAX];
    cp_keys_doc_session(key, conn->session_id);
    struct cp_doc_op op = {.key = key, .value = txt, .expect = -1};
    c->store->ops->doc_write(c->store, &op, 1, written, NULL);
    free(txt);
}

static void listed(void *arg, const struct cp_status *st, const struct cp_doc *docs, size_t n)
{
    struct cp_ctx *c = arg;
    if (st->code != SB_CODE_NONE)
        return;
    int64_t now = sb_time_now_ms();
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_loads(docs[i].value, 0, NULL);
        json_int_t closed_at = j ? json_integer_value(json_object_get(j, "closed_at")) : 0;
        json_decref(j);
        if (now - closed_at <= c->set.session_ttl_ms)
            continue;
        struct cp_doc_op op = {.key = docs[i].key, .value = NULL, .expect = docs[i].version};
        c->store->ops->doc_write(c->store, &op, 1, written, NULL);
    }
}

void cp_session_tick(struct cp_ctx *c, int64_t mono_ms)
{
    if (c->store == NULL || c->store->ops->doc_list == NULL || c->stopping)
        return;
    int64_t every = c->set.session_ttl_ms;
    every = every < SWEEP_MIN_MS ? SWEEP_MIN_MS : (every > SWEEP_MAX_MS ? SWEEP_MAX_MS : every);
    if (c->session_sweep_at == 0)
        c->session_sweep_at = mono_ms + every;
    if (mono_ms < c->session_sweep_at)
        return;
    c->session_sweep_at = mono_ms + every;
    if (!cp_ctx_is_leader(c))
        return;
    char all[CP_KEYS_DOC_KEY_MAX];
    cp_keys_doc_session(all, NULL);
    c->store->ops->doc_list(c->store, all, listed, c);
}
