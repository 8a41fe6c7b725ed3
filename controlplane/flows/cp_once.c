/* Idempotency records as Store documents (see cp_once.h). The result is computed before the
 * delivery and written with the claim, so a duplicate never waits for a first call in flight:
 * the claim either wins (deliver) or loses to a record that already holds the answer. */
#include "cp_once.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_keys.h"
#include "sb_id.h"
#include "sb_log.h"
#include "sb_time.h"

#define ONCE_TTL_MS    120000 /* API.md: two minutes */
#define SWEEP_EVERY_MS 60000
#define MAX_ATTEMPTS   4

static const char *const scopes[] = {"broadcast", "send_to_user", "send_to_connection", NULL};

void cp_once_doc_key(const char *scope, const char *key, char *out, size_t cap)
{
    char hash[33]; /* the record keeps the key itself too: a collision is recognised */
    cp_keys_idem_hash128(key, hash);
    char k[CP_KEYS_DOC_KEY_MAX];
    cp_keys_doc_idem(k, scope, hash);
    snprintf(out, cap, "%s", k);
}

struct claim {
    struct cp_ctx *c;
    cp_once_fn *cb;
    void *arg;
    int64_t delivered;
    int attempts;
    char *key;
    char *id; /* the result id written with the claim; NULL: none */
    char doc_key[CP_KEYS_DOC_KEY_MAX];
};

static void claim_done(struct claim *cl, const struct cp_status *st, bool first, int64_t n,
                       const char *id)
{
    cl->cb(cl->arg, st, first, n, id);
    free(cl->key);
    free(cl->id);
    free(cl);
}

static void try_write(struct claim *cl, int64_t expect);
static void got(void *arg, const struct cp_status *st, const struct cp_doc *doc);

/* Someone holds the record: read it. */
static void read_record(struct claim *cl)
{
    cl->c->store->ops->doc_get(cl->c->store, cl->doc_key, got, cl);
}

static void written(void *arg, const struct cp_status *st, const int64_t *versions, size_t n)
{
    (void)versions;
    (void)n;
    struct claim *cl = arg;
    if (st->code == SB_CODE_NONE) {
        claim_done(cl, st, true, cl->delivered, cl->id);
        return;
    }
    if (st->code != SB_CODE_CONFLICT || ++cl->attempts >= MAX_ATTEMPTS) {
        struct cp_status s2 = *st;
        if (s2.code == SB_CODE_CONFLICT)
            cp_status_set(&s2, SB_CODE_UNAVAILABLE, "idempotency key contended; retry");
        claim_done(cl, &s2, false, 0, NULL);
        return;
    }
    read_record(cl);
}

static void got(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct claim *cl = arg;
    if (st->code != SB_CODE_NONE) {
        claim_done(cl, st, false, 0, NULL);
        return;
    }
    if (doc == NULL) { /* gone meanwhile (swept) */
        try_write(cl, 0);
        return;
    }
    json_t *j = json_loads(doc->value, 0, NULL);
    const char *k = j ? json_string_value(json_object_get(j, "k")) : NULL;
    json_int_t at = j ? json_integer_value(json_object_get(j, "at")) : 0;
    json_int_t delivered = j ? json_integer_value(json_object_get(j, "delivered")) : 0;
    bool fresh = at + ONCE_TTL_MS > sb_time_now_ms();
    bool same = k != NULL && strcmp(k, cl->key) == 0;
    if (fresh && same) {
        char first[SB_ID_LEN * 2] = "";
        const char *id = j ? json_string_value(json_object_get(j, "id")) : NULL;
        snprintf(first, sizeof(first), "%s", id != NULL ? id : "");
        json_decref(j);
        claim_done(cl, st, false, (int64_t)delivered, first[0] != '\0' ? first : NULL);
        return;
    }
    json_decref(j);
    if (fresh) {
        /* Another key with the same 128-bit hash: never seen in practice; refuse, don't guess. */
        struct cp_status s2;
        cp_status_set(&s2, SB_CODE_INTERNAL, "idempotency key collides with another key");
        SB_LOG_ERROR("cp", "idempotency key hash collision", "doc=%s", cl->doc_key);
        claim_done(cl, &s2, false, 0, NULL);
        return;
    }
    try_write(cl, doc->version); /* expired: take it over */
}

/* Writes our record: absent before (expect 0) or an expired one (its version). */
static void try_write(struct claim *cl, int64_t expect)
{
    struct cp_store *s = cl->c->store;
    json_t *j = json_pack("{s:s, s:I, s:I}", "k", cl->key, "at", (json_int_t)sb_time_now_ms(),
                          "delivered", (json_int_t)cl->delivered);
    if (j != NULL && cl->id != NULL && json_object_set_new(j, "id", json_string(cl->id)) != 0) {
        json_decref(j);
        j = NULL;
    }
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (txt == NULL) {
        struct cp_status st;
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        claim_done(cl, &st, false, 0, NULL);
        return;
    }
    struct cp_doc_op op = {.key = cl->doc_key, .value = txt, .expect = expect};
    s->ops->doc_write(s, &op, 1, written, cl);
    free(txt);
}

static void claim_start(struct cp_ctx *c, const char *doc_key, const char *key, int64_t delivered,
                        const char *id, cp_once_fn *cb, void *arg)
{
    struct claim *cl = calloc(1, sizeof(*cl));
    struct cp_status st;
    if (cl == NULL || (cl->key = strdup(key)) == NULL ||
        (id != NULL && (cl->id = strdup(id)) == NULL)) {
        if (cl != NULL)
            free(cl->key);
        free(cl);
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
    } else if (!cp_store_has_docs(c->store)) {
        free(cl->key);
        free(cl->id);
        free(cl);
        cp_status_set(&st, SB_CODE_UNAVAILABLE, "this store keeps no idempotency records yet");
    } else {
        cl->c = c;
        cl->cb = cb;
        cl->arg = arg;
        cl->delivered = delivered;
        snprintf(cl->doc_key, sizeof(cl->doc_key), "%s", doc_key);
        try_write(cl, 0);
        return;
    }
    cb(arg, &st, false, 0, NULL);
}

void cp_once_claim(struct cp_ctx *c, const char *scope, const char *key, int64_t delivered,
                   cp_once_fn *cb, void *arg)
{
    char doc_key[CP_KEYS_DOC_KEY_MAX];
    cp_once_doc_key(scope, key, doc_key, sizeof(doc_key));
    claim_start(c, doc_key, key, delivered, NULL, cb, arg);
}

void cp_once_claim_channel(struct cp_ctx *c, const char *channel_id, const char *key,
                           const char *message_id, cp_once_fn *cb, void *arg)
{
    char hash[33];
    cp_keys_idem_hash128(key, hash);
    char doc_key[CP_KEYS_DOC_KEY_MAX];
    cp_keys_doc_channel_idem(doc_key, channel_id, hash);
    claim_start(c, doc_key, key, 0, message_id, cb, arg);
}

/* ---------------------------------------------------------------- sweeping */

static void swept(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    (void)arg;
    (void)v;
    (void)n;
    if (st->code != SB_CODE_NONE && st->code != SB_CODE_CONFLICT)
        SB_LOG_DEBUG("cp", "idempotency sweep failed", "code=%s", sb_code_name(st->code));
}

static void listed(void *arg, const struct cp_status *st, const struct cp_doc *docs, size_t n)
{
    struct cp_ctx *c = arg;
    if (st->code != SB_CODE_NONE)
        return;
    int64_t now = sb_time_now_ms();
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_loads(docs[i].value, 0, NULL);
        json_int_t at = j ? json_integer_value(json_object_get(j, "at")) : 0;
        json_decref(j);
        if (at + ONCE_TTL_MS > now)
            continue;
        struct cp_doc_op op = {.key = docs[i].key, .value = NULL, .expect = docs[i].version};
        c->store->ops->doc_write(c->store, &op, 1, swept, NULL);
    }
}

void cp_once_tick(struct cp_ctx *c, int64_t mono_ms)
{
    if (c->store == NULL || c->store->ops->doc_list == NULL || c->stopping)
        return;
    if (c->once_sweep_at == 0)
        c->once_sweep_at = mono_ms + SWEEP_EVERY_MS;
    if (mono_ms < c->once_sweep_at)
        return;
    c->once_sweep_at = mono_ms + SWEEP_EVERY_MS;
    if (!cp_ctx_is_leader(c)) /* etcd mode: the presence leader sweeps for all */
        return;
    char prefix[CP_KEYS_DOC_KEY_MAX];
    for (size_t i = 0; scopes[i] != NULL; i++) {
        cp_keys_doc_idem(prefix, scopes[i], NULL);
        c->store->ops->doc_list(c->store, prefix, listed, c);
    }
    cp_keys_doc_channel_idem(prefix, NULL, NULL); /* every channel's */
    c->store->ops->doc_list(c->store, prefix, listed, c);
}
