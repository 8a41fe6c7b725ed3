/* Internals of the etcd Store (controlplane/cp_store_etcd.h) shared by the files of this
 * folder: the store's state, the cached records, and what each file offers the others.
 *
 * Files, lowest first (each calls only files listed before it, never one after):
 *   cp_etxn.c    txn builder and txn answers (pure, its own header)
 *   cp_ecodec.c  record values: room, member, message, node, connection, idempotency (pure)
 *   cp_ecall.c   etcd calls whose answers run on the owner thread; barrier waits
 *   cp_eop.c     the operation driver: read, build a txn, send, re-read on a lost compare
 *   cp_ecache.c  the cache of rooms, members, nodes, replicas, holders, the presence leader
 *   cp_ehist.c   history reads (HistoryQuery, pages for updates)
 *   cp_eidem.c   publish idempotency records (sb/idem/), known for two minutes
 *   cp_eseq.c    room sequencing: claims, fenced group commits, the replay after a takeover
 *   cp_elease.c  leases of this replica and of nodes, the leader claim, connection records
 *   cp_elist.c   the listing of sb/ and the watch that feeds the cache
 *   cp_erooms.c  rooms and membership
 *   cp_edoc.c    documents
 *   cp_eupdate.c room_update, member_set_role, message_update, history_trim
 *   cp_estore.c  state and lifetime, the Store vtable, cluster facts (the composition root)
 * What must flow the other way (the cache seeing the sequencer key or the leader key change)
 * goes through the hooks of struct cp_estore, which cp_estore.c sets.
 *
 * Threads: everything here runs on the owner thread (cp_store_etcd.h); only cp_ecall.c's
 * trampolines run on the etcd thread, and they only copy an answer and post it. */
#ifndef CP_ESTORE_INT_H
#define CP_ESTORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_barrier.h"
#include "cp_etcd.h"
#include "cp_etxn.h"
#include "cp_status.h"
#include "cp_store_etcd.h"
#include "sb_map.h"
#include "sb_time.h"

/* Idempotency records live on a shared lease granted every CP_ESTORE_IDEM_ROTATE_MS, never kept
 * alive: keys attached at most 60 s after the grant live >= 120 s. */
#define CP_ESTORE_IDEM_LEASE_S   180
#define CP_ESTORE_IDEM_ROTATE_MS 60000

/* ---- the cache (cp_ecache.c) */

struct cp_ecache_room {
    struct cp_room room; /* owned strings; id always set */
    bool exists;
    int64_t create_rev;
    struct cp_member *members; /* sorted by user_id, owned ids */
    size_t n_members, cap_members;
    int64_t last_seq;
};

struct cp_ecache_ids {
    char **ids; /* sorted */
    size_t n, cap;
};

/* One allocation each (free()). */
struct cp_ecache_node {
    int64_t last_heartbeat;
    int64_t connections;
    char address[];
};

/* The holder of sb/sequencer/<room>. */
struct cp_ecache_holder {
    int64_t create_rev;
    int64_t lease;
    char cp_id[];
};

/* ---- the state */

struct cp_estore {
    struct cp_store base;
    struct cp_etcd *e;
    struct cp_handoff *h;
    char *id;
    char *advertise;
    int64_t ttl_s;
    int timeout_ms;
    struct cp_cluster_hooks hooks;
    int64_t lease;
    struct cp_etcd_keepalive *lease_ka;
    bool lease_renewing;
    struct cp_etcd_watch *watch;
    struct cp_barrier barrier;
    /* the cache */
    struct sb_map rooms;      /* id -> struct cp_ecache_room */
    struct sb_map user_rooms; /* user -> struct cp_ecache_ids */
    struct sb_map nodes;      /* node id -> struct cp_ecache_node */
    struct sb_map cps;        /* cp id -> address (char *) */
    struct sb_map holders;    /* room -> struct cp_ecache_holder */
    char *leader;
    bool is_leader;
    /* sequencing (cp_eseq.c) */
    struct sb_map seqrooms;  /* room -> its sequencer state */
    struct sb_map idem;      /* "room\nkey" -> idempotency record */
    struct sb_map idem_pend; /* "room\nkey" -> the publish in flight */
    /* leases (cp_elease.c) */
    struct sb_map leases; /* node id -> the node lease kept here */
    bool claiming_leader;
    int64_t idem_lease;
    int64_t idem_lease_at;
    bool idem_granting;
    uint64_t txn_marker; /* next write marker (CP_ECALL_MARKER) */
    bool stopped;
    bool relisting;
    bool live;                 /* applying watch events: report them to the observer */
    cp_store_event_fn *obs_fn; /* the observer (NULL: none) */
    void *obs_arg;
    int64_t now_mono; /* refreshed by tick and by every operation */
    /* open() progress */
    int opening; /* steps left */
    enum sb_err open_err;
    /* Hooks of the cache, set by cp_estore.c: the sequencer key of a room was put (kv) or
     * deleted (kv NULL), after the cache noted its holder; the presence leader key is gone. */
    void (*holder_changed)(struct cp_estore *s, const char *room_id, const struct cp_etcd_kv *kv);
    void (*leader_gone)(struct cp_estore *s);
};

static inline struct cp_estore *cp_estore_of(struct cp_store *s)
{
    return (struct cp_estore *)s;
}

static inline const struct cp_estore *cp_estore_of_const(const struct cp_store *s)
{
    return (const struct cp_estore *)s;
}

static inline int64_t cp_estore_mono(struct cp_estore *s)
{
    s->now_mono = sb_time_mono_ms();
    return s->now_mono;
}

/* One step of cp_store_etcd_open is done, or failed with err (once opening ended: nothing). */
static inline void cp_estore_open_step(struct cp_estore *s)
{
    if (s->opening > 0)
        s->opening--;
}

static inline void cp_estore_open_fail(struct cp_estore *s, enum sb_err err)
{
    if (s->opening > 0) {
        s->open_err = err;
        s->opening = 0;
    }
}

/* Frees every value of map m with fn, then the map. */
static inline void cp_estore_map_fini(struct sb_map *m, void (*fn)(void *))
{
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(m, &it);
    while ((e = sb_map_iter_next(m, &it)) != NULL)
        fn(e->value);
    sb_map_fini(m);
}

/* Statuses answered from many places. */
static inline void cp_estore_unavailable(struct cp_status *st, const char *what)
{
    cp_status_set(st, SB_CODE_UNAVAILABLE, "etcd unavailable (%s)", what);
}

static inline void cp_estore_oom(struct cp_status *st)
{
    cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
}

static const struct cp_status cp_estore_nomem = {SB_CODE_INTERNAL, "out of memory"};

static inline void cp_estore_no_room(struct cp_status *st, const char *room_id)
{
    cp_status_set(st, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", room_id ? room_id : "");
}

static inline void cp_estore_not_member(struct cp_status *st, const char *user_id,
                                        const char *room_id)
{
    cp_status_set(st, SB_CODE_NOT_ROOM_MEMBER, "user %s is not a member of room %s",
                  user_id ? user_id : "", room_id);
}

/* ---- cp_ecall.c: etcd calls answered on the owner thread */

/* Every request of the store is idempotent or compare-guarded: all are sent CP_ETCD_RETRY. */

/* The raw answer: status and body as cp_etcd_call gives them (body borrowed). */
typedef void cp_ecall_fn(struct cp_estore *s, void *ud, enum sb_err st, const char *body,
                         size_t len);
/* A txn's answer (borrowed). st: with CP_ETXN_UNKNOWN the status to answer (unavailable, or
 * CP_ECALL_REFUSED's internal), else OK. */
typedef void cp_ecall_txn_fn(struct cp_estore *s, void *ud, const struct cp_etxn_answer *a,
                             const struct cp_status *st);
/* A range's answer: r (borrowed), or NULL with st the status to answer (unavailable). */
typedef void cp_ecall_range_fn(struct cp_estore *s, void *ud, const struct cp_etcd_result *r,
                               const struct cp_status *st);
/* A lease grant or keep-alive answer: l (borrowed) when err is SB_OK. */
typedef void cp_ecall_lease_fn(struct cp_estore *s, void *ud, enum sb_err err,
                               const struct cp_etcd_lease *l);

/* POSTs `json` (taken; NULL answers SB_ENOMEM) to `path`; fn runs on the owner thread exactly
 * once (inline only when nothing could be sent for want of memory). */
void cp_ecall(struct cp_estore *s, const char *path, char *json, cp_ecall_fn *fn, void *ud);

/* Txn flags. MARKER: add a write marker (sb/txn/<cp_id>/<n>, cp_etxn_marker) and read it, so
 * that an attempt retried after it landed is answered as applied (only with compares). REFUSED: an
 * answer refusing the request (4xx) is a bug of ours, answered INTERNAL "etcd refused the <what>:
 * ...". */
#define CP_ECALL_MARKER  0x1u
#define CP_ECALL_REFUSED 0x2u

/* Sends the txn `t` (finalised here); `what` (static) names it in statuses. */
void cp_ecall_txn(struct cp_estore *s, struct cp_etxn *t, unsigned flags, const char *what,
                  cp_ecall_txn_fn *fn, void *ud);
/* A range read; `what` (static) names it in statuses. */
void cp_ecall_range(struct cp_estore *s, const struct cp_etcd_range_req *q, const char *what,
                    cp_ecall_range_fn *fn, void *ud);
/* A put of key = val, on `lease` (0: none). */
void cp_ecall_put(struct cp_estore *s, const char *key, const char *val, size_t vlen, int64_t lease,
                  cp_ecall_fn *fn, void *ud);
void cp_ecall_grant(struct cp_estore *s, int64_t ttl_s, cp_ecall_lease_fn *fn, void *ud);
void cp_ecall_keepalive(struct cp_estore *s, int64_t id, cp_ecall_lease_fn *fn, void *ud);
/* Revokes lease `id`; failures are logged (what: static). */
void cp_ecall_revoke(struct cp_estore *s, int64_t id, const char *what);
/* A cp_ecall_fn that only logs a failure; ud is the static name of the write. */
void cp_ecall_ignore(struct cp_estore *s, void *ud, enum sb_err e, const char *body, size_t len);

/* fn(ok) once the cache reached `rev`; ok false: the barrier timed out or the store stops. */
typedef void cp_ecall_after_fn(struct cp_estore *s, void *ud, bool ok);
void cp_ecall_after(struct cp_estore *s, int64_t rev, cp_ecall_after_fn *fn, void *ud);

/* ---- cp_eop.c: the operation driver (and the read-modify-write retry loop) */

/* A Store operation: its own struct, with struct cp_eop first, started from a prototype on the
 * caller's stack (cp_eop_begin copies it, with its ids, into one allocation). It reads (from
 * the cache or etcd), may write one compare-guarded txn built from what it read (a lost
 * compare reads again, at most `retries` times), and ends with one answer. */
struct cp_eop;

/* (Re)starts the read; it ends in cp_eop_write, cp_eop_sync, cp_eop_lost or cp_eop_end.
 * Pointers of the prototype other than its ids are the caller's: valid in the first read
 * only. */
typedef void cp_eop_read_fn(struct cp_estore *s, struct cp_eop *o);
/* Answers, and frees what the operation owns (the driver frees the operation): st OK when it
 * is done (synced: the cache shows its write), else why it failed. */
typedef void cp_eop_end_fn(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st,
                           bool synced);

/* Policy flags, with the write's CP_ECALL_* flags. */
#define CP_EOP_BARRIER 0x10u /* answer an applied write once the cache reached its revision */
#define CP_EOP_SETTLE  0x20u /* re-read a lost write once the cache reached the winner's */

/* How a write is sent and retried. */
struct cp_eop_policy {
    unsigned flags;
    int retries;       /* attempts at the write */
    enum sb_code lost; /* the code after `retries` lost compares */
};

/* The lost status's format for edits of a hot record: "%s" the id, "%d" the attempts. */
#define CP_EOP_BUSY " is busy: it changed concurrently %d times"

struct cp_eop_class {
    const struct cp_eop_policy *policy; /* NULL: it writes nothing */
    const char *what;                   /* the write, in "etcd unavailable (<what>)" */
    const char *lost;                   /* format of the lost status: %s o->id, %d retries */
    cp_eop_read_fn *read;
    cp_eop_end_fn *end;
};

struct cp_eop {
    const struct cp_eop_class *c;
    void *arg;      /* the caller's */
    const char *id; /* in the lost status: the first id copied, unless the read sets another */
    int tries;
    int64_t rev; /* of the applied write */
};

/* Starts operation `proto` (`size` bytes) of class c: copies it with the strings its fields
 * id0 and id1 point at (either may be NULL), and runs its first read. Out of memory: c->end
 * answers on the prototype itself. */
void cp_eop_begin(struct cp_estore *s, struct cp_eop *proto, size_t size,
                  const struct cp_eop_class *c, const char **id0, const char **id1);
/* Sends the write built from what was read (t finalised here). */
void cp_eop_write(struct cp_estore *s, struct cp_eop *o, struct cp_etxn *t);
/* Ends with success once the cache reached `rev` (a write made otherwise). */
void cp_eop_sync(struct cp_estore *s, struct cp_eop *o, int64_t rev);
/* A compare was lost (at revision rev): the lost status after `retries`, else reads again. */
void cp_eop_lost(struct cp_estore *s, struct cp_eop *o, int64_t rev);
/* Ends now with st: a failure, or OK when nothing needs writing. */
void cp_eop_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st);

/* ---- cp_ecache.c: the cache, applied from the listing and the watch */

void cp_ecache_init(struct cp_estore *s);
/* Empties every cached map (before a re-list). */
void cp_ecache_clear(struct cp_estore *s);
void cp_ecache_fini(struct cp_estore *s);
/* Applies one key read back (a listed key is a PUT), reporting it to the observer while
 * s->live. */
void cp_ecache_apply(struct cp_estore *s, enum cp_etcd_event_type type,
                     const struct cp_etcd_kv *kv);
/* A live room (NULL when absent or deleted), member_count and last_seq refreshed. */
struct cp_ecache_room *cp_ecache_room_live(struct cp_estore *s, const char *room_id);
/* The same when user_id (NULL: anyone) is a member, with *st OK; else NULL with *st
 * ROOM_NOT_FOUND or NOT_ROOM_MEMBER. */
struct cp_ecache_room *cp_ecache_room_found(struct cp_estore *s, const char *room_id,
                                            const char *user_id, struct cp_status *st);
const struct cp_member *cp_ecache_member_get(const struct cp_ecache_room *r, const char *user_id);
size_t cp_ecache_room_count(const struct cp_estore *s);

/* ---- cp_ehist.c: history */

void cp_ehist_query(struct cp_store *st, const struct cp_history_query *q,
                    const char *require_member, cp_store_history_fn *cb, void *arg);
/* A read-only txn of the room key (op 0) and one page of its history (op 1): ascending from
 * `from` (a full key of from_n bytes), or (from NULL) descending below `below` (exclusive;
 * NULL: from the newest). */
void cp_ehist_page(struct cp_estore *s, const char *room_id, const char *from, size_t from_n,
                   const char *below, size_t below_n, cp_ecall_txn_fn *fn, void *ud);

/* ---- cp_eidem.c: publish idempotency records */

/* A key's record: the first message stored with it. */
struct cp_eidem {
    int64_t seq;
    int64_t expires;           /* monotonic ms */
    struct cp_message *stored; /* read at a takeover (another sequencer stored it): delivered
                                  again with the first hit, then freed; may be NULL */
    char message_id[];
};

/* "room\nkey" (new): idempotency keys are free text, so the map key keeps the room apart. */
char *cp_eidem_key(const char *room_id, const char *key);
/* Knows (room, key) -> (message id, seq) for two minutes, unless a record is known. */
void cp_eidem_add(struct cp_estore *s, const char *room_id, const char *key, const char *id,
                  int64_t seq);
/* Knows the records of range result r (of sb/idem/<room>/). */
void cp_eidem_load(struct cp_estore *s, const struct cp_etcd_result *r);
/* The live record of the key (NULL key: none), NULL when none. */
struct cp_eidem *cp_eidem_find(struct cp_estore *s, const char *room_id, const char *key);
/* Each message of msgs (n, NULLs skipped) that a record of r names keeps a copy with the known
 * record (a takeover: delivered again with its first hit). */
void cp_eidem_keep_stored(struct cp_estore *s, const char *room_id, const struct cp_etcd_result *r,
                          struct cp_message *const *msgs, size_t n);
/* True when r holds a record at the key's hash for another key (a hash collision). */
bool cp_eidem_collides(const char *room_id, const char *key, const struct cp_etcd_result *r);
/* The record's compare (absent) and put, in a commit's txn. */
void cp_eidem_put(struct cp_estore *s, struct cp_etxn *t, const char *room_id, const char *key,
                  const char *message_id, int64_t seq);
/* Forgets expired records. */
void cp_eidem_purge(struct cp_estore *s, int64_t now_mono);
void cp_eidem_fini(struct cp_estore *s);

/* ---- cp_eseq.c: room sequencing */

void cp_eseq_message_append(struct cp_store *st, const struct cp_message *draft,
                            const char *require_member, int max_history, cp_store_append_fn *cb,
                            void *arg);
/* The holder_changed hook. */
void cp_eseq_holder_changed(struct cp_estore *s, const char *room_id, const struct cp_etcd_kv *kv);
/* The replica lease is gone: every room's sequencing with it. */
void cp_eseq_drop_all(struct cp_estore *s);
/* Answers every queued publish UNAVAILABLE (shutting down). */
void cp_eseq_fail_all(struct cp_estore *s);
void cp_eseq_fini(struct cp_estore *s);

/* ---- cp_elease.c: leases */

/* Grants the replica lease (unless already granting), then writes sb/cp/<id> under it. */
void cp_elease_replica_start(struct cp_estore *s);
/* Claims sb/leader/presence when nobody holds it (not while re-listing). The leader_gone
 * hook. */
void cp_elease_claim_leader(struct cp_estore *s);
/* Grants a new idempotency lease when none is granted or the current one is old. */
void cp_elease_idem_rotate(struct cp_estore *s, int64_t now_mono);
void cp_elease_fini(struct cp_estore *s);

/* ---- cp_elist.c: listing and the watch */

/* The first listing of sb/ (one of cp_store_etcd_open's steps), then the watch from the
 * listing's revision + 1. */
void cp_elist_start(struct cp_estore *s);
/* Clears the cache and lists again (the watch resumes after the listing). */
void cp_elist_relist(struct cp_estore *s);

/* ---- cp_erooms.c: rooms and membership (Store operations) */

void cp_erooms_create(struct cp_store *st, const struct cp_room *room, cp_store_room_fn *cb,
                      void *arg);
void cp_erooms_get(struct cp_store *st, const char *room_id, cp_store_room_fn *cb, void *arg);
void cp_erooms_list(struct cp_store *st, const struct cp_room_query *q, cp_store_rooms_fn *cb,
                    void *arg);
void cp_erooms_delete(struct cp_store *st, const char *room_id, cp_store_members_fn *cb, void *arg);
void cp_erooms_member_add(struct cp_store *st, const struct cp_join_req *req, cp_store_join_fn *cb,
                          void *arg);
void cp_erooms_member_remove(struct cp_store *st, const char *room_id, const char *user_id,
                             cp_store_members_fn *cb, void *arg);
void cp_erooms_members_list(struct cp_store *st, const char *room_id, cp_store_members_fn *cb,
                            void *arg);
void cp_erooms_user_rooms(struct cp_store *st, const char *user_id, cp_store_ids_fn *cb, void *arg);
void cp_erooms_user_peers(struct cp_store *st, const char *user_id, cp_store_ids_fn *cb, void *arg);

/* ---- cp_edoc.c: documents (Store operations) */

void cp_edoc_get(struct cp_store *st, const char *key, cp_store_doc_fn *cb, void *arg);
void cp_edoc_list(struct cp_store *st, const char *prefix, cp_store_docs_fn *cb, void *arg);
void cp_edoc_write(struct cp_store *st, const struct cp_doc_op *ops, size_t n,
                   cp_store_write_fn *cb, void *arg);

/* ---- cp_eupdate.c: read-modify-write updates (Store operations) */

void cp_eupdate_room(struct cp_store *st, const char *room_id, cp_room_edit_fn *edit,
                     void *edit_arg, cp_store_room_fn *cb, void *arg);
void cp_eupdate_member_role(struct cp_store *st, const char *room_id, const char *user_id,
                            enum cp_role role, cp_store_members_fn *cb, void *arg);
void cp_eupdate_message(struct cp_store *st, const char *room_id, const char *message_id,
                        cp_message_edit_fn *edit, void *edit_arg, cp_store_message_fn *cb,
                        void *arg);
void cp_eupdate_history_trim(struct cp_store *st, const char *room_id, int64_t before_time,
                             cp_store_count_fn *cb, void *arg);

#endif
