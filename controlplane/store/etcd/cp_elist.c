/* The etcd Store's view of sb/: one listing at a single revision R (documents and history are
 * never cached, so they are skipped), then one watch from R+1 whose batches are copied on the
 * etcd thread and applied to the cache on the owner thread, advancing the revision barrier. A
 * compacted watch start clears the cache and lists again. */
#include "cp_estore_int.h"

#include <stdlib.h>

#include "cp_ecodec.h"
#include "cp_keys.h"
#include "sb_log.h"

/* ---- the watch */

struct wbatch {
    struct cp_estore *s;
    size_t n;
    struct cp_etcd_event ev[];
};

static void wbatch_free(struct wbatch *b)
{
    for (size_t i = 0; i < b->n; i++)
        cp_etcd_json_kv_fini(&b->ev[i].kv);
    free(b);
}

static void wbatch_run(void *arg)
{
    struct wbatch *b = arg;
    struct cp_estore *s = b->s;
    int64_t rev = 0;
    if (!s->relisting) {
        s->live = true;
        for (size_t i = 0; i < b->n; i++) {
            cp_ecache_apply(s, b->ev[i].type, &b->ev[i].kv);
            rev = b->ev[i].kv.mod_revision;
        }
        s->live = false;
    }
    wbatch_free(b);
    if (rev > 0)
        cp_barrier_advance(&s->barrier, rev);
}

/* On the etcd thread. */
static void watch_events_cb(void *ud, const struct cp_etcd_event *events, size_t n)
{
    struct cp_estore *s = ud;
    struct wbatch *b = calloc(1, sizeof(*b) + n * sizeof(b->ev[0]));
    if (b == NULL) {
        SB_LOG_ERROR("cp", "out of memory copying watch events: cache is now stale", NULL);
        return;
    }
    b->s = s;
    for (size_t i = 0; i < n; i++) {
        const struct cp_etcd_kv *kv = &events[i].kv;
        struct cp_etcd_event *d = &b->ev[i];
        d->type = events[i].type;
        d->kv = *kv;
        d->kv.key = cp_ecodec_dup(kv->key, kv->key_len);
        d->kv.value = cp_ecodec_dup(kv->value ? kv->value : "", kv->value ? kv->value_len : 0);
        d->kv.value_len = kv->value ? kv->value_len : 0;
        b->n = i + 1;
        if (d->kv.key == NULL || d->kv.value == NULL) {
            wbatch_free(b);
            SB_LOG_ERROR("cp", "out of memory copying watch events: cache is now stale", NULL);
            return;
        }
    }
    if (cp_handoff_post(s->h, wbatch_run, b) != SB_OK)
        wbatch_free(b);
}

static void relist_run(void *arg)
{
    struct cp_estore *s = arg;
    SB_LOG_WARN("cp", "etcd watch start revision was compacted: re-listing", NULL);
    cp_elist_relist(s);
}

/* On the etcd thread. */
static void watch_reset_cb(void *ud, int64_t compact_revision)
{
    struct cp_estore *s = ud;
    cp_handoff_post(s->h, relist_run, s);
}

/* ---- the listing */

/* Three ranges at one revision: everything under sb/ except documents and history. */
struct list_op {
    int64_t rev;
    int step;
    bool initial;
};

static void list_step(struct cp_estore *s, struct list_op *lo);

/* The listing ended; the initial one fails open on an error, a re-list tries again. */
static void list_done(struct cp_estore *s, struct list_op *lo, enum sb_err err)
{
    bool initial = lo->initial;
    int64_t rev = lo->rev;
    free(lo);
    if (err != SB_OK) {
        if (initial) {
            cp_estore_open_fail(s, err);
            return;
        }
        SB_LOG_WARN("cp", "re-list failed: retrying", "err=%s", sb_err_str(err));
        cp_elist_relist(s);
        return;
    }
    s->relisting = false;
    if (s->hooks.relist_end != NULL)
        s->hooks.relist_end(s->hooks.ud);
    cp_barrier_reset(&s->barrier, rev);
    if (s->watch == NULL) {
        if (cp_etcd_watch_start(s->e, CP_KEYS_ROOT, "sb0", rev + 1, watch_events_cb, watch_reset_cb,
                                s, &s->watch) != SB_OK) {
            if (initial)
                cp_estore_open_fail(s, SB_ENOMEM);
            return;
        }
    } else {
        cp_etcd_watch_restart(s->watch, rev + 1);
    }
    cp_elease_claim_leader(s);
    if (initial)
        cp_estore_open_step(s);
    SB_LOG_INFO("cp", "etcd cache loaded", "revision=%lld rooms=%zu", (long long)rev,
                cp_ecache_room_count(s));
}

static void list_answer(struct cp_estore *s, void *ud, enum sb_err err, const char *body,
                        size_t len)
{
    struct list_op *lo = ud;
    struct cp_etcd_result r;
    if (err == SB_OK && cp_etcd_json_parse_result(body, len, &r) != SB_OK)
        err = SB_EPROTO;
    if (err != SB_OK) {
        list_done(s, lo, err);
        return;
    }
    if (lo->step == 0)
        lo->rev = r.revision;
    for (size_t i = 0; i < r.n_kvs; i++)
        cp_ecache_apply(s, CP_ETCD_EVENT_PUT, &r.kvs[i]);
    cp_etcd_json_result_fini(&r);
    lo->step++;
    if (lo->step == 3)
        list_done(s, lo, SB_OK);
    else
        list_step(s, lo);
}

static void list_step(struct cp_estore *s, struct list_op *lo)
{
    /* [sb/, sb/doc/), [sb/doc0, sb/history/) and [sb/history0, sb0), the last two at the
     * first answer's revision. */
    static const char *const from[] = {CP_KEYS_ROOT, "sb/doc0", "sb/history0"};
    static const char *const to[] = {CP_KEYS_DOC, CP_KEYS_HISTORY, "sb0"};
    struct cp_etcd_range_req q = {0};
    q.key = cp_etcd_json_str(from[lo->step]);
    q.range_end = cp_etcd_json_str(to[lo->step]);
    q.revision = lo->step > 0 ? lo->rev : 0;
    char *json = NULL;
    cp_etcd_json_range(&q, &json);
    cp_ecall(s, CP_ETCD_PATH_RANGE, json, list_answer, lo);
}

/* Lists sb/ once more: the first listing of open (which counts as one of its steps), or a
 * re-list, which first clears the cache. */
static void list_begin(struct cp_estore *s, bool initial)
{
    struct list_op *lo = calloc(1, sizeof(*lo));
    if (lo == NULL) {
        if (initial)
            cp_estore_open_fail(s, SB_ENOMEM);
        else
            SB_LOG_ERROR("cp", "out of memory re-listing", NULL);
        return;
    }
    lo->initial = initial;
    s->relisting = true;
    if (!initial) {
        if (s->hooks.relist_begin != NULL)
            s->hooks.relist_begin(s->hooks.ud);
        cp_ecache_clear(s);
    }
    list_step(s, lo);
}

void cp_elist_start(struct cp_estore *s)
{
    list_begin(s, true);
}

void cp_elist_relist(struct cp_estore *s)
{
    list_begin(s, false);
}
