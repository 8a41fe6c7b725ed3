/* Direct deliveries (see cp_direct.h): the result is counted before the claim, so a duplicate
 * answers what the first call counted; the frame is built only by the call that delivers. */
#include "cp_direct.h"

#include <stdlib.h>
#include <string.h>

#include "cp_json.h"
#include "cp_once.h"
#include "sb_time.h"

/* A delivery waiting for its claim, with copies of what it delivers. */
struct claim {
    struct cp_ctx *c;
    cp_direct_fn *cb;
    void *arg;
    struct cp_direct d; /* its strings and list point into the copies below */
    char *to, *sender, *data;
    char **exclude;
};

static void claim_free(struct claim *k)
{
    for (size_t i = 0; k->exclude != NULL && i < k->d.n_exclude; i++)
        free(k->exclude[i]);
    free(k->exclude);
    free(k->to);
    free(k->sender);
    free(k->data);
    free(k);
}

static char *dup_or_null(const char *s, bool *ok)
{
    char *d = s != NULL ? strdup(s) : NULL;
    *ok = *ok && (s == NULL || d != NULL);
    return d;
}

/* A deep copy of `d` for a claim; NULL on ENOMEM. */
static struct claim *claim_new(struct cp_ctx *c, const struct cp_direct *d, cp_direct_fn *cb,
                               void *arg)
{
    struct claim *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    *k = (struct claim){.c = c, .cb = cb, .arg = arg, .d = *d};
    bool ok = true;
    k->to = dup_or_null(d->to, &ok);
    k->sender = dup_or_null(d->sender, &ok);
    k->data = malloc(d->data_len + 1);
    ok = ok && k->data != NULL;
    if (k->data != NULL)
        memcpy(k->data, d->data, d->data_len);
    k->exclude = d->n_exclude ? calloc(d->n_exclude, sizeof(*k->exclude)) : NULL;
    ok = ok && (d->n_exclude == 0 || k->exclude != NULL);
    for (size_t i = 0; ok && i < d->n_exclude; i++)
        k->exclude[i] = dup_or_null(d->exclude[i], &ok);
    if (!ok) {
        claim_free(k);
        return NULL;
    }
    k->d.to = k->to;
    k->d.sender = k->sender;
    k->d.data = k->data;
    k->d.exclude = (const char *const *)k->exclude;
    k->d.idem_key = NULL; /* claimed already */
    return k;
}

/* Builds the frame and hands it to the nodes; answers. */
static void deliver(struct cp_ctx *c, const struct cp_direct *d, cp_direct_fn *cb, void *arg)
{
    struct cp_status st;
    cp_status_ok(&st);
    struct cp_buf b;
    cp_buf_init(&b);
    int64_t now = sb_time_now_ms();
    char id[SB_ID_LEN];
    sb_id_new("m", id);
    if (d->kind == CP_DIRECT_EVERYONE)
        cp_json_system(&b, d->data, d->data_len, now);
    else
        cp_json_direct(&b, id, d->sender, d->data, d->data_len, now);
    size_t delivered = 0;
    if (b.failed) {
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
    } else if (d->kind == CP_DIRECT_EVERYONE) {
        delivered = cp_fanout_everyone(&c->fan, d->exclude, d->n_exclude, b.data, b.len);
    } else if (d->kind == CP_DIRECT_USER) {
        const char *users[1] = {d->to};
        delivered = cp_fanout_users(&c->fan, users, 1, b.data, b.len);
    } else {
        struct cp_conn *conn = cp_presence_conn(&c->presence, d->to);
        if (conn == NULL)
            cp_status_set(&st, SB_CODE_CONNECTION_NOT_FOUND, "connection %s is not open", d->to);
        else if (!cp_fanout_connection(&c->fan, conn, b.data, b.len))
            cp_status_set(&st, SB_CODE_UNAVAILABLE,
                          "the node of connection %s is not linked to this control plane", d->to);
        else
            delivered = 1;
    }
    cp_buf_fini(&b);
    cb(arg, &st, (int64_t)delivered);
}

static void claimed(void *arg, const struct cp_status *st, bool first, int64_t delivered,
                    const char *result_id)
{
    (void)result_id;
    struct claim *k = arg;
    if (st->code != SB_CODE_NONE || !first)
        k->cb(k->arg, st, delivered); /* seen: the first result, no delivery */
    else
        deliver(k->c, &k->d, k->cb, k->arg);
    claim_free(k);
}

static const char *idem_scope[] = {"broadcast", "send_to_user", "send_to_connection"};

void cp_direct_send(struct cp_ctx *c, const struct cp_direct *d, cp_direct_fn *cb, void *arg)
{
    struct cp_status st;
    int64_t count = 1;
    if (d->kind == CP_DIRECT_EVERYONE) {
        count = (int64_t)cp_fanout_count_everyone(&c->fan, d->exclude, d->n_exclude);
    } else if (d->kind == CP_DIRECT_USER) {
        const char *users[1] = {d->to};
        count = (int64_t)cp_fanout_count_users(&c->fan, users, 1);
    } else if (cp_presence_conn(&c->presence, d->to) == NULL) {
        cp_status_set(&st, SB_CODE_CONNECTION_NOT_FOUND, "connection %s is not open", d->to);
        cb(arg, &st, 0);
        return;
    }
    if (d->idem_key == NULL || d->idem_key[0] == '\0') {
        deliver(c, d, cb, arg);
        return;
    }
    struct claim *k = claim_new(c, d, cb, arg);
    if (k == NULL) {
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, 0);
        return;
    }
    cp_once_claim(c, idem_scope[d->kind], d->idem_key, count, claimed, k);
}
