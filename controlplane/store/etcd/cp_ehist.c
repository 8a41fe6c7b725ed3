/* History of the etcd Store, read straight from etcd (it is never cached): HistoryQuery as one
 * range of sb/history/<room>/, and pages of it (with the room key, in one read-only txn) for
 * the updates that search or trim it. */
#include "cp_estore_int.h"

#include <stdlib.h>
#include <string.h>

#include "cp_ecodec.h"
#include "cp_history.h"
#include "cp_keys.h"

#define HIST_PAGE 64

struct hist_op {
    struct cp_eop o;            /* first */
    struct cp_history_query q;  /* its room_id and thread_id copied */
    const char *require_member; /* the caller's: first read only */
    cp_store_history_fn *cb;
    const struct cp_history_result *res; /* the answer, while it ends */
};

static void hist_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st, bool synced)
{
    struct hist_op *op = (struct hist_op *)o;
    op->cb(o->arg, st, st->code == SB_CODE_NONE ? op->res : NULL);
}

/* The stored messages in seq order (transient ones left out), as a cp_history to query. */
static void hist_load(struct cp_history *h, const struct cp_etcd_result *r)
{
    for (size_t i = 0; i < r->n_kvs; i++) {
        bool transient = false;
        struct cp_message *m =
            cp_ecodec_message_parse(r->kvs[i].value, r->kvs[i].value_len, &transient);
        if (m == NULL || transient) {
            cp_message_free(m);
            continue;
        }
        if (h->count == 0)
            h->last_seq = m->seq - 1;
        if (m->seq != cp_history_next_seq(h) || cp_history_append(h, m, SIZE_MAX) != SB_OK)
            cp_message_free(m);
    }
}

/* Answers the query from the stored messages (the cache's last seq when it is ahead). */
static void hist_answer(struct cp_estore *s, void *ud, const struct cp_etcd_result *r,
                        const struct cp_status *st)
{
    struct hist_op *op = ud;
    struct cp_history h;
    const struct cp_message **msgs = NULL;
    size_t n = 0;
    bool gap = false;
    cp_history_init(&h);
    if (r != NULL)
        hist_load(&h, r);
    struct cp_ecache_room *room = cp_ecache_room_live(s, op->q.room_id);
    if (room != NULL && room->last_seq > h.last_seq)
        h.last_seq = room->last_seq;
    if (r == NULL) {
        cp_eop_end(s, &op->o, st);
    } else if (cp_history_query(&h, &op->q, &msgs, &n, &gap) != SB_OK) {
        cp_eop_end(s, &op->o, &cp_estore_nomem);
    } else {
        struct cp_history_result res = {msgs, n, gap, h.last_seq};
        op->res = &res;
        cp_eop_end(s, &op->o, st);
    }
    free(msgs);
    cp_history_fini(&h);
}
static void hist_read(struct cp_estore *s, struct cp_eop *o)
{
    struct hist_op *op = (struct hist_op *)o;
    struct cp_status st;
    const char *room_id = op->q.room_id;
    if (cp_ecache_room_found(s, room_id, op->require_member, &st) == NULL) {
        cp_eop_end(s, o, &st);
        return;
    }
    char k[CP_KEYS_MAX], end[CP_KEYS_MAX];
    size_t en;
    cp_keys_history_of(room_id, k, sizeof(k));
    cp_keys_range_end(k, strlen(k), end, sizeof(end), &en);
    struct cp_etcd_range_req rq = {.key = cp_etcd_json_str(k), .range_end = {end, en}};
    cp_ecall_range(s, &rq, "history", hist_answer, op);
}

void cp_ehist_query(struct cp_store *st, const struct cp_history_query *q,
                    const char *require_member, cp_store_history_fn *cb, void *arg)
{
    static const struct cp_eop_class c = {NULL, NULL, NULL, hist_read, hist_end};
    struct hist_op op = {.o.arg = arg, .cb = cb, .q = *q, .require_member = require_member};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &c, &op.q.room_id, &op.q.thread_id);
}

void cp_ehist_page(struct cp_estore *s, const char *room_id, const char *from, size_t from_n,
                   const char *below, size_t below_n, cp_ecall_txn_fn *fn, void *ud)
{
    char rk[CP_KEYS_MAX], hk[CP_KEYS_MAX], end[CP_KEYS_MAX];
    size_t en = 0;
    cp_keys_room(room_id, rk, sizeof(rk));
    cp_keys_history_of(room_id, hk, sizeof(hk));
    cp_keys_range_end(hk, strlen(hk), end, sizeof(end), &en);
    struct cp_etcd_bytes e = {end, en};
    struct cp_etxn t;
    cp_etxn_init(&t);
    cp_etxn_get(&t, false, rk, false);
    if (from != NULL)
        cp_etxn_range(&t, false, (struct cp_etcd_bytes){from, from_n}, e, HIST_PAGE, false);
    else
        cp_etxn_range(&t, false, cp_etcd_json_str(hk),
                      below != NULL ? (struct cp_etcd_bytes){below, below_n} : e, HIST_PAGE, true);
    cp_ecall_txn(s, &t, 0, "history read", fn, ud);
}
