/* The etcd Store (cp_store_etcd.h, docs/distributed.md): its state and lifetime (open, tick,
 * stop, destroy), the Store vtable over the files of this folder, and the cluster facts read
 * from the cache. It wires the cache's hooks to sequencing and the leader claim. */
#include "cp_estore_int.h"

#include <stdlib.h>
#include <string.h>

#include "sb_ident.h"
#include "sb_log.h"

#define BARRIER_MAX_WAIT_MS 3000
#define PURGE_EVERY_MS      5000

static void observe(struct cp_store *st, cp_store_event_fn *fn, void *arg)
{
    struct cp_estore *s = cp_estore_of(st);
    s->obs_fn = fn;
    s->obs_arg = fn != NULL ? arg : NULL;
}

static void destroy(struct cp_store *st);

/* The Store operations by file: rooms and membership from the cache (cp_erooms.c), messages
 * (cp_eseq.c, cp_ehist.c), updates read from etcd (cp_eupdate.c), documents (cp_edoc.c). */
static const struct cp_store_ops ops = {
    .destroy = destroy,
    .room_create = cp_erooms_create,
    .room_get = cp_erooms_get,
    .room_list = cp_erooms_list,
    .room_delete = cp_erooms_delete,
    .member_add = cp_erooms_member_add,
    .member_remove = cp_erooms_member_remove,
    .members_list = cp_erooms_members_list,
    .user_rooms = cp_erooms_user_rooms,
    .user_peers = cp_erooms_user_peers,
    .message_append = cp_eseq_message_append,
    .history_query = cp_ehist_query,
    .room_update = cp_eupdate_room,
    .member_set_role = cp_eupdate_member_role,
    .message_update = cp_eupdate_message,
    .history_trim = cp_eupdate_history_trim,
    .doc_get = cp_edoc_get,
    .doc_list = cp_edoc_list,
    .doc_write = cp_edoc_write,
    .observe = observe,
};

bool cp_store_is_etcd(const struct cp_store *s)
{
    return s != NULL && s->ops == &ops;
}

/* ---- cluster facts */

bool cp_store_etcd_is_presence_leader(const struct cp_store *st)
{
    return cp_estore_of_const(st)->is_leader;
}

const char *cp_store_etcd_cp_address(const struct cp_store *st, const char *cp_id)
{
    return sb_map_get(&cp_estore_of_const(st)->cps, cp_id);
}

const char *cp_store_etcd_id(const struct cp_store *st)
{
    return cp_estore_of_const(st)->id;
}

size_t cp_store_etcd_room_count(const struct cp_store *st)
{
    return cp_ecache_room_count(cp_estore_of_const(st));
}

void cp_store_etcd_nodes(const struct cp_store *st, cp_cluster_node_fn *fn, void *arg)
{
    const struct cp_estore *s = cp_estore_of_const(st);
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&s->nodes, &it);
    while ((e = sb_map_iter_next(&s->nodes, &it)) != NULL) {
        struct cp_ecache_node *n = e->value;
        struct cp_cluster_node v = {e->key, n->address, n->last_heartbeat, n->connections};
        fn(arg, &v);
    }
}

/* ---- lifetime */

static void finalize_run(void *arg)
{
    struct cp_estore *s = arg;
    cp_barrier_fini(&s->barrier);
    cp_barrier_init(&s->barrier);
    cp_eseq_fail_all(s);
}

void cp_store_etcd_stop(struct cp_store *st)
{
    struct cp_estore *s = cp_estore_of(st);
    if (s->stopped)
        return;
    s->stopped = true;
    cp_etcd_stop(s->e);
    cp_handoff_post(s->h, finalize_run, s);
}

void cp_store_etcd_relist(struct cp_store *st)
{
    struct cp_estore *s = cp_estore_of(st);
    if (!s->stopped && !s->relisting)
        cp_elist_relist(s);
}

void cp_store_etcd_tick(struct cp_store *st, int64_t now)
{
    struct cp_estore *s = cp_estore_of(st);
    s->now_mono = now;
    if (s->stopped)
        return;
    size_t n = cp_barrier_expire(&s->barrier, now, BARRIER_MAX_WAIT_MS);
    if (n > 0)
        SB_LOG_WARN("cp", "revision barrier timed out: answering from a cache that may lag",
                    "waiters=%zu", n);
    static int64_t last_purge;
    if (now - last_purge > PURGE_EVERY_MS) {
        last_purge = now;
        cp_eidem_purge(s, now);
        if (s->lease == 0)
            cp_elease_replica_start(s);
        cp_elease_claim_leader(s);
    }
    cp_elease_idem_rotate(s, now);
}

static void destroy(struct cp_store *st)
{
    struct cp_estore *s = cp_estore_of(st);
    cp_store_etcd_stop(st);
    cp_handoff_drain(s->h);
    cp_etcd_destroy(s->e);
    cp_ecache_fini(s);
    cp_eseq_fini(s);
    cp_eidem_fini(s);
    cp_elease_fini(s);
    free(s->id);
    free(s->advertise);
    free(s);
}

/* The store before its etcd client starts. */
static struct cp_estore *create(const struct cp_store_etcd_config *cfg, struct cp_handoff *handoff)
{
    struct cp_estore *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->base.ops = &ops;
    s->h = handoff;
    s->id = strdup(cfg->cp_id);
    s->advertise = strdup(cfg->advertise ? cfg->advertise : "");
    s->ttl_s = (cfg->lease_ttl_ms + 999) / 1000;
    if (s->ttl_s < 2)
        s->ttl_s = 2;
    s->timeout_ms = cfg->op_timeout_ms > 0 ? cfg->op_timeout_ms : 3000;
    s->hooks = cfg->hooks;
    s->holder_changed = cp_eseq_holder_changed;
    s->leader_gone = cp_elease_claim_leader;
    /* Markers of a previous run under the same id may still live (180 s): start elsewhere. */
    s->txn_marker = (uint64_t)sb_time_now_ms() << 20;
    cp_barrier_init(&s->barrier);
    cp_ecache_init(s);
    sb_map_init(&s->seqrooms);
    sb_map_init(&s->idem);
    sb_map_init(&s->idem_pend);
    sb_map_init(&s->leases);
    return s;
}

enum sb_err cp_store_etcd_open(const struct cp_store_etcd_config *cfg, struct cp_handoff *handoff,
                               struct cp_store **out)
{
    if (cfg->endpoints == NULL || cfg->cp_id == NULL || !sb_ident_is_valid(cfg->cp_id))
        return SB_EINVAL;
    struct cp_estore *s = create(cfg, handoff);
    if (s == NULL)
        return SB_ENOMEM;
    struct cp_etcd_config ec = {.endpoints = cfg->endpoints, .watch_idle_ms = 30000};
    enum sb_err err = s->id && s->advertise ? cp_etcd_create(&ec, &s->e) : SB_ENOMEM;
    if (err == SB_OK)
        err = cp_etcd_start(s->e);
    if (err != SB_OK) {
        cp_etcd_destroy(s->e);
        s->e = NULL;
        free(s->id);
        free(s->advertise);
        free(s);
        return err;
    }
    /* Three steps to wait for: the replica record (after its lease), the idempotency lease
     * (a commit writes its records under it) and the first list. */
    s->opening = 3;
    s->open_err = SB_OK;
    cp_elease_replica_start(s);
    cp_elease_idem_rotate(s, cp_estore_mono(s));
    cp_elist_start(s);
    int64_t deadline =
        sb_time_mono_ms() + (cfg->open_timeout_ms > 0 ? cfg->open_timeout_ms : 10000);
    while (s->opening > 0 && sb_time_mono_ms() < deadline) {
        cp_handoff_wait(s->h, 100);
        cp_handoff_drain(s->h);
    }
    if (s->opening > 0 || s->open_err != SB_OK) {
        enum sb_err e = s->opening > 0 ? SB_EUNAVAIL : s->open_err;
        SB_LOG_ERROR("cp", "etcd store did not open", "endpoints=%s err=%s", cfg->endpoints,
                     sb_err_str(e));
        destroy(&s->base);
        return e == SB_EINVAL ? SB_EINVAL : (e == SB_ENOMEM ? SB_ENOMEM : SB_EUNAVAIL);
    }
    SB_LOG_INFO("cp", "etcd store open", "id=%s lease=%lld ttl_s=%lld", s->id, (long long)s->lease,
                (long long)s->ttl_s);
    *out = &s->base;
    return SB_OK;
}
