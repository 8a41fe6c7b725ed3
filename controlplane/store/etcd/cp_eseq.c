/* Room sequencing of the etcd Store (docs/distributed.md): per room SR_NONE -> SR_CLAIMING ->
 * SR_HELD; the claim creates sb/sequencer/<room> on the replica lease and reads sb/seq, the
 * room's idempotency records and the history tail in the same txn; group commits of the queued
 * publishes, fenced by the sequencer key's and the room's create_revision; idempotency records
 * written in the commit's txn, so a key is never stored twice. */
#include "cp_estore_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_ecodec.h"
#include "cp_keys.h"
#include "sb_log.h"

/* Each message costs 2 success ops and 1 compare; etcd refuses a txn with more than 128 ops in
 * one list (--max-txn-ops default), so a batch stays well under it. */
#define COMMIT_MAX_MSGS  40
#define COMMIT_MAX_BYTES (1024 * 1024)
#define REPLAY_SCAN      COMMIT_MAX_MSGS /* history tail read at a takeover */
#define REPLAY_TXNS      2               /* the previous holder's last commits delivered again */

/* One publish in a room's sequencer queue. */
struct draft {
    struct draft *next;
    struct cp_message *msg; /* owned copy; seq set at commit */
    int max_history;
    cp_store_append_fn *cb;
    void *arg;
    struct draft *dups; /* same idempotency key, arrived while this one was in flight */
    bool hit;           /* answered from an idempotency record: msg has the first id, seq */
    bool redeliver;     /* ... and msg is the stored message, to deliver again */
};

enum sr_state { SR_NONE = 0, SR_CLAIMING, SR_HELD };

struct seqroom {
    enum sr_state state;
    int64_t fence;    /* create_revision of our sb/sequencer/<room> */
    int64_t room_rev; /* create_revision of the room when claimed */
    int64_t last_seq; /* committed */
    struct draft *pend_head, *pend_tail;
    bool committing;
    const char *room_id;
    /* The room's keys, built once (every commit needs them), in buf. */
    struct {
        const char *sequencer, *room, *seq;
        const char *idem, *history; /* prefixes */
    } k;
    char buf[];
};

static struct seqroom *seqroom_new(const char *room_id)
{
    char k[5][CP_KEYS_MAX];
    if (cp_keys_sequencer(room_id, k[0], sizeof(k[0])) != SB_OK ||
        cp_keys_room(room_id, k[1], sizeof(k[1])) != SB_OK ||
        cp_keys_seq(room_id, k[2], sizeof(k[2])) != SB_OK ||
        cp_keys_idem_of(room_id, k[3], sizeof(k[3])) != SB_OK ||
        cp_keys_history_of(room_id, k[4], sizeof(k[4])) != SB_OK)
        return NULL;
    size_t len = strlen(room_id) + 1;
    for (size_t i = 0; i < 5; i++)
        len += strlen(k[i]) + 1;
    struct seqroom *sr = calloc(1, sizeof(*sr) + len);
    if (sr == NULL)
        return NULL;
    const char **to[] = {&sr->k.sequencer, &sr->k.room, &sr->k.seq, &sr->k.idem, &sr->k.history};
    char *p = stpcpy(sr->buf, room_id) + 1;
    sr->room_id = sr->buf;
    for (size_t i = 0; i < 5; i++) {
        *to[i] = p;
        p = stpcpy(p, k[i]) + 1;
    }
    return sr;
}

static struct seqroom *seqroom_get(struct cp_estore *s, const char *room_id, bool add)
{
    struct seqroom *sr = sb_map_get(&s->seqrooms, room_id);
    if (sr != NULL || !add)
        return sr;
    sr = seqroom_new(room_id);
    if (sr != NULL && sb_map_put(&s->seqrooms, room_id, sr) != SB_OK) {
        free(sr);
        sr = NULL;
    }
    return sr;
}

/* ---- the publishes in flight, by idempotency key */

static void idem_pend_drop(struct cp_estore *s, struct draft *d)
{
    if (d->msg->idem_key == NULL)
        return;
    char *k = cp_eidem_key(d->msg->room_id, d->msg->idem_key);
    if (k != NULL && sb_map_get(&s->idem_pend, k) == d)
        sb_map_remove(&s->idem_pend, k);
    free(k);
}

/* ---- drafts */

static void draft_free(struct draft *d)
{
    while (d->dups != NULL) {
        struct draft *x = d->dups;
        d->dups = x->next;
        draft_free(x);
    }
    cp_message_free(d->msg);
    free(d);
}

/* Answers a draft (and its duplicates) and frees it. */
static void draft_answer(struct cp_estore *s, struct draft *d, const struct cp_status *st,
                         const char *forward_to)
{
    idem_pend_drop(s, d);
    struct cp_ecache_room *r = cp_ecache_room_live(s, d->msg->room_id);
    struct cp_append_result res = {.room = r ? &r->room : NULL,
                                   .message = d->msg,
                                   .members = r ? r->members : NULL,
                                   .n_members = r ? r->n_members : 0,
                                   .duplicate = d->hit,
                                   .redeliver = d->redeliver,
                                   .forward_to = forward_to};
    bool with_res = st->code == SB_CODE_NONE || forward_to != NULL;
    if (st->code == SB_CODE_NONE && r == NULL) {
        /* Stored, then the room went: acknowledge without members. */
        static struct cp_room gone;
        gone.id = d->msg->room_id;
        gone.name = gone.description = gone.owner_id = "";
        res.room = &gone;
    }
    if (forward_to != NULL) {
        res.room = NULL;
        res.message = NULL;
    }
    d->cb(d->arg, st, with_res ? &res : NULL);
    res.redeliver = false; /* the first answer delivered it (if at all) */
    while (d->dups != NULL) {
        struct draft *x = d->dups;
        d->dups = x->next;
        x->next = NULL;
        if (st->code == SB_CODE_NONE) {
            free(x->msg->id);
            x->msg->id = strdup(d->msg->id);
            x->msg->seq = d->msg->seq;
            x->msg->timestamp = d->msg->timestamp;
            res.message = x->msg;
            res.duplicate = true;
        }
        if (x->msg->id == NULL) {
            struct cp_status o;
            cp_estore_oom(&o);
            x->cb(x->arg, &o, NULL);
        } else {
            x->cb(x->arg, st, with_res ? &res : NULL);
        }
        draft_free(x);
    }
    draft_free(d);
}

/* Answers every draft of `list` with st (success too: "answers each"). */
static void drafts_answer(struct cp_estore *s, struct draft *list, const struct cp_status *st,
                          const char *forward_to)
{
    while (list != NULL) {
        struct draft *d = list;
        list = d->next;
        d->next = NULL;
        draft_answer(s, d, st, forward_to);
    }
}

static void drafts_ok(struct cp_estore *s, struct draft *list)
{
    struct cp_status st;
    cp_status_ok(&st);
    drafts_answer(s, list, &st, NULL);
}

/* Makes d the answer of idempotency record e: the first id and seq; the stored message itself
 * when e has it (a previous sequencer stored it, maybe without delivering it): d then
 * delivers it again, once. SB_ENOMEM leaves d unchanged. */
static enum sb_err draft_from_idem(struct draft *d, struct cp_eidem *e)
{
    if (e->stored != NULL) {
        struct cp_message *m = cp_message_dup(e->stored);
        if (m == NULL)
            return SB_ENOMEM;
        free(m->idem_key);
        m->idem_key = d->msg->idem_key; /* still names d in idem_pend */
        d->msg->idem_key = NULL;
        cp_message_free(d->msg);
        d->msg = m;
        d->redeliver = true;
        cp_message_free(e->stored);
        e->stored = NULL;
    } else {
        char *id = strdup(e->message_id);
        if (id == NULL)
            return SB_ENOMEM;
        free(d->msg->id);
        d->msg->id = id;
        d->msg->seq = e->seq;
    }
    d->hit = true;
    return SB_OK;
}

/* d made the answer of its live idempotency record, if it has one. */
static bool draft_hit(struct cp_estore *s, struct draft *d)
{
    struct cp_eidem *e = cp_eidem_find(s, d->msg->room_id, d->msg->idem_key);
    return e != NULL && draft_from_idem(d, e) == SB_OK;
}

/* Moves the queued drafts whose key has a record now (loaded at a takeover or found by a failed
 * commit) to *hits, made into answers of their record: they are never stored again. */
static void sr_pull_hits(struct cp_estore *s, struct seqroom *sr, struct draft **hits)
{
    struct draft **pp = &sr->pend_head, *last = NULL;
    while (*pp != NULL) {
        struct draft *d = *pp;
        if (draft_hit(s, d)) {
            *pp = d->next;
            d->next = *hits;
            *hits = d;
            continue;
        }
        last = d;
        pp = &d->next;
    }
    sr->pend_tail = last;
}

static void sr_take_pending(struct seqroom *sr, struct draft **out)
{
    *out = sr->pend_head;
    sr->pend_head = sr->pend_tail = NULL;
}

/* Answers everything queued in the room with st. */
static void sr_fail_pending(struct cp_estore *s, struct seqroom *sr, const struct cp_status *st,
                            const char *forward_to)
{
    struct draft *list;
    sr_take_pending(sr, &list);
    drafts_answer(s, list, st, forward_to);
}

/* ---- replay after a takeover */

/* Messages a previous sequencer stored, delivered again (data planes drop a seq they saw), then
 * drafts answered from idempotency records; both after the barrier at `rev`, so before the
 * deliveries of this replica's next commits. */
struct replay_op {
    char *room_id;
    struct cp_message **msgs; /* ascending seq */
    size_t n;
    struct draft *hits;
};

static void free_msgs(struct cp_message **msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cp_message_free(msgs[i]);
    free(msgs);
}

/* A list reversed (hits are collected newest first: answer in queue order). */
static struct draft *reversed(struct draft *list)
{
    struct draft *rev = NULL;
    while (list != NULL) {
        struct draft *d = list;
        list = d->next;
        d->next = rev;
        rev = d;
    }
    return rev;
}

static void replay_after(struct cp_estore *s, void *ud, bool okb)
{
    struct replay_op *op = ud;
    struct cp_ecache_room *r = cp_ecache_room_live(s, op->room_id);
    if (op->n > 0)
        SB_LOG_INFO("cp", "messages of the previous sequencer delivered again",
                    "room=%s count=%zu first_seq=%lld last_seq=%lld", op->room_id, op->n,
                    (long long)op->msgs[0]->seq, (long long)op->msgs[op->n - 1]->seq);
    for (size_t i = 0; i < op->n; i++)
        if (r != NULL && !s->stopped && s->hooks.redeliver != NULL)
            s->hooks.redeliver(s->hooks.ud, op->msgs[i], r->members, r->n_members);
    free_msgs(op->msgs, op->n);
    drafts_ok(s, reversed(op->hits));
    free(op->room_id);
    free(op);
}

/* Runs replay_after for msgs (taken) and hits at rev; on ENOMEM frees the messages and answers
 * the hits at once (they are stored: success). */
static void replay_at(struct cp_estore *s, const char *room_id, int64_t rev,
                      struct cp_message **msgs, size_t n, struct draft *hits)
{
    struct replay_op *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->room_id = strdup(room_id)) == NULL) {
        free(op);
        free_msgs(msgs, n);
        drafts_ok(s, hits);
        return;
    }
    op->msgs = msgs;
    op->n = n;
    op->hits = hits;
    cp_ecall_after(s, rev, replay_after, op);
}

/* The history tail read with a claim (newest first): the messages of the previous holder's last
 * REPLAY_TXNS commits go to *out (ascending seq; they may never have been delivered), and each
 * tail message whose idempotency record was just loaded is kept with the record (delivered
 * again with its first hit). */
static void claim_tail(struct cp_estore *s, struct seqroom *sr, const struct cp_etcd_result *idemr,
                       const struct cp_etcd_result *histr, struct cp_message ***out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    size_t n = histr->n_kvs;
    if (n == 0)
        return;
    struct cp_message **msgs = calloc(n, sizeof(*msgs));
    if (msgs == NULL)
        return;
    size_t n_txn = 0, take = 0;
    int64_t last_rev = -1;
    /* By create_revision: the commit that stored the message (an edit changes mod_revision). */
    for (size_t i = 0; i < n; i++) {
        msgs[i] = cp_ecodec_message_parse(histr->kvs[i].value, histr->kvs[i].value_len, NULL);
        if (histr->kvs[i].create_revision != last_rev) {
            last_rev = histr->kvs[i].create_revision;
            n_txn++;
        }
        if (n_txn <= REPLAY_TXNS)
            take = i + 1;
    }
    cp_eidem_keep_stored(s, sr->room_id, idemr, msgs, n);
    /* Newest first -> ascending, keeping the replayed ones. */
    struct cp_message **rp = take ? calloc(take, sizeof(*rp)) : NULL;
    size_t nr = 0;
    for (size_t i = take; i-- > 0;)
        if (rp != NULL && msgs[i] != NULL) {
            rp[nr++] = msgs[i];
            msgs[i] = NULL;
        }
    free_msgs(msgs, n);
    *out = rp;
    *n_out = nr;
}

/* ---- claim */

static void sr_kick(struct cp_estore *s, struct seqroom *sr);

static void sr_lost(struct cp_estore *s, struct seqroom *sr, const char *why)
{
    SB_LOG_INFO("cp", "room sequencing lost", "room=%s reason=\"%s\"", sr->room_id, why);
    sr->state = SR_NONE;
    sr->fence = 0;
    if (!sr->committing && sr->pend_head != NULL)
        sr_kick(s, sr);
}

/* Publishes go to `holder`, which sequences the room. */
static void sr_forward(struct cp_estore *s, struct seqroom *sr, const char *holder)
{
    struct cp_status st;
    cp_status_set(&st, SB_CODE_UNAVAILABLE, "not_sequencer: room %s is sequenced by %s",
                  sr->room_id, holder);
    sr_fail_pending(s, sr, &st, holder);
}

/* The claim was lost to the holder named by kv (or nobody, kv NULL). */
static void claim_lost(struct cp_estore *s, struct seqroom *sr, const struct cp_etcd_kv *kv)
{
    sr->state = SR_NONE;
    char holder[SB_IDENT_MAX + 1] = "";
    if (kv != NULL && kv->value_len <= SB_IDENT_MAX) {
        memcpy(holder, kv->value, kv->value_len);
        holder[kv->value_len] = '\0';
    }
    if (holder[0] != '\0') {
        sr_forward(s, sr, holder);
    } else {
        struct cp_status st;
        cp_status_set(&st, SB_CODE_UNAVAILABLE, "room %s sequencer changed: retry", sr->room_id);
        sr_fail_pending(s, sr, &st, NULL);
    }
}

static void claim_answer(struct cp_estore *s, void *ud, const struct cp_etxn_answer *a,
                         const struct cp_status *st)
{
    struct seqroom *sr = ud;
    if (a->outcome == CP_ETXN_UNKNOWN) {
        sr->state = SR_NONE;
        sr_fail_pending(s, sr, st, NULL);
        return;
    }
    size_t base = a->outcome == CP_ETXN_APPLIED ? 1 : 0; /* success ops start with the put */
    const struct cp_etcd_kv *kv = cp_etxn_first_kv(cp_etxn_answer_op(a, base));
    const struct cp_etcd_result *seqr = cp_etxn_answer_op(a, base + 1);
    const struct cp_etcd_result *idemr = cp_etxn_answer_op(a, base + 2);
    const struct cp_etcd_result *histr = cp_etxn_answer_op(a, base + 3);
    bool mine = kv != NULL && kv->lease == s->lease && kv->value_len == strlen(s->id) &&
                memcmp(kv->value, s->id, kv->value_len) == 0;
    if (!mine) {
        claim_lost(s, sr, kv);
        return;
    }
    const struct cp_etcd_kv *seqkv = cp_etxn_first_kv(seqr);
    sr->fence = kv->create_revision;
    sr->last_seq = seqkv ? cp_ecodec_seq_parse(seqkv->value, seqkv->value_len) : 0;
    if (idemr != NULL)
        cp_eidem_load(s, idemr);
    struct cp_message **replay = NULL;
    size_t n_replay = 0;
    if (histr != NULL)
        claim_tail(s, sr, idemr, histr, &replay, &n_replay);
    sr->state = SR_HELD;
    SB_LOG_INFO("cp", "room sequencing taken", "room=%s last_seq=%lld fence=%lld", sr->room_id,
                (long long)sr->last_seq, (long long)sr->fence);
    /* Publishes queued while the claim was in flight were checked against the records known
     * then (none of this room's yet): check them again. */
    struct draft *hits = NULL;
    sr_pull_hits(s, sr, &hits);
    replay_at(s, sr->room_id, a->revision, replay, n_replay, hits);
    sr_kick(s, sr);
}

/* The reads of a claim, in either branch: the sequencer key, sb/seq, the idempotency records
 * and the history tail. */
static void claim_reads(struct cp_etxn *t, bool failure, const struct seqroom *sr)
{
    cp_etxn_get(t, failure, sr->k.sequencer, false);
    cp_etxn_get(t, failure, sr->k.seq, false);
    cp_etxn_get(t, failure, sr->k.idem, true);
    cp_etxn_get_tail(t, failure, sr->k.history, REPLAY_SCAN);
}

static void sr_claim(struct cp_estore *s, struct seqroom *sr)
{
    struct cp_ecache_room *r = cp_ecache_room_live(s, sr->room_id);
    if (r == NULL || s->lease == 0) {
        struct cp_status st;
        if (r == NULL)
            cp_estore_no_room(&st, sr->room_id);
        else
            cp_status_set(&st, SB_CODE_UNAVAILABLE, "this replica has no etcd lease right now");
        sr_fail_pending(s, sr, &st, NULL);
        return;
    }
    sr->state = SR_CLAIMING;
    sr->room_rev = r->create_rev;
    struct cp_etxn t;
    cp_etxn_init(&t);
    cp_etxn_cmp(&t, sr->k.sequencer, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
    cp_etxn_put(&t, sr->k.sequencer, s->id, strlen(s->id), s->lease);
    claim_reads(&t, false, sr);
    claim_reads(&t, true, sr);
    cp_ecall_txn(s, &t, 0, "sequencer claim", claim_answer, sr);
}

/* ---- commit */

struct commit_op {
    struct seqroom *sr;
    struct draft *list;
    int64_t new_last;
};

static void commit_after(struct cp_estore *s, void *ud, bool okb)
{
    struct commit_op *op = ud;
    drafts_ok(s, op->list);
    free(op);
}

/* A commit failed on an idempotency compare: drafts with a record are answered from it (after
 * the barrier at rev), colliding keys fail, the rest go back to the front of the queue. */
static void commit_split(struct cp_estore *s, struct seqroom *sr, struct draft *list,
                         const struct cp_etcd_result *idemr, int64_t rev, bool seq_moved)
{
    struct draft *hits = NULL, *keep = NULL, *keep_last = NULL;
    size_t n_hits = 0, n_collide = 0;
    while (list != NULL) {
        struct draft *d = list;
        list = d->next;
        d->next = NULL;
        d->msg->seq = 0;
        if (draft_hit(s, d)) {
            d->next = hits;
            hits = d;
            n_hits++;
        } else if (d->msg->idem_key != NULL &&
                   cp_eidem_collides(d->msg->room_id, d->msg->idem_key, idemr)) {
            struct cp_status st;
            cp_status_set(&st, SB_CODE_INTERNAL,
                          "idempotency key collides with another one's record: retry later");
            draft_answer(s, d, &st, NULL);
            n_collide++;
        } else {
            if (keep_last != NULL)
                keep_last->next = d;
            else
                keep = d;
            keep_last = d;
        }
    }
    SB_LOG_INFO("cp", "publishes answered from idempotency records at commit",
                "room=%s hits=%zu collisions=%zu", sr->room_id, n_hits, n_collide);
    if (keep != NULL && n_hits == 0 && n_collide == 0 && !seq_moved) {
        /* Nothing explains the failed compare (a record we cannot read): no retry loop. */
        struct cp_status st;
        cp_status_set(&st, SB_CODE_UNAVAILABLE, "room %s idempotency records unreadable: retry",
                      sr->room_id);
        drafts_answer(s, keep, &st, NULL);
        keep = NULL;
    }
    if (keep != NULL) {
        keep_last->next = sr->pend_head;
        if (sr->pend_head == NULL)
            sr->pend_tail = keep_last;
        sr->pend_head = keep;
    }
    if (hits != NULL)
        replay_at(s, sr->room_id, rev, NULL, 0, hits);
}

/* A lost commit: why, from the failure branch's reads (sequencer key, idempotency records,
 * room key, sb/seq). False with *st when the batch fails; true when it was split. */
static bool commit_lost(struct cp_estore *s, struct commit_op *op, const struct cp_etxn_answer *a,
                        struct cp_status *st)
{
    struct seqroom *sr = op->sr;
    const struct cp_etcd_kv *kv = cp_etxn_first_kv(cp_etxn_answer_op(a, 0));
    const struct cp_etcd_result *idemr = cp_etxn_answer_op(a, 1);
    const struct cp_etcd_kv *rkv = cp_etxn_first_kv(cp_etxn_answer_op(a, 2));
    const struct cp_etcd_kv *skv = cp_etxn_first_kv(cp_etxn_answer_op(a, 3));
    int64_t stored = skv ? cp_ecodec_seq_parse(skv->value, skv->value_len) : 0;
    if (kv == NULL || kv->create_revision != sr->fence) {
        sr->state = SR_NONE;
        cp_status_set(st, SB_CODE_UNAVAILABLE, "room %s sequencer moved: retry", sr->room_id);
        return false;
    }
    if (rkv == NULL || rkv->create_revision != sr->room_rev) {
        cp_estore_no_room(st, sr->room_id);
        sr->state = SR_NONE;
        return false;
    }
    if (stored < sr->last_seq) {
        /* The stored seq went back: not ours to explain. Re-claim re-reads it. */
        sr->state = SR_NONE;
        cp_status_set(st, SB_CODE_UNAVAILABLE, "room %s sequence moved back: retry", sr->room_id);
        return false;
    }
    /* An idempotency key of the batch has a record already, or an earlier commit of ours
     * landed although its answer was lost (the stored seq is ahead): continue after the
     * stored seq, answer drafts with a record from it and put the others back in front of
     * the queue. */
    bool seq_moved = stored > sr->last_seq;
    if (seq_moved) {
        SB_LOG_WARN("cp", "an earlier commit landed unanswered: continuing after it",
                    "room=%s believed=%lld stored=%lld", sr->room_id, (long long)sr->last_seq,
                    (long long)stored);
        sr->last_seq = stored;
    }
    if (idemr != NULL)
        cp_eidem_load(s, idemr);
    commit_split(s, sr, op->list, idemr, a->revision, seq_moved);
    return true;
}

static void commit_answer(struct cp_estore *s, void *ud, const struct cp_etxn_answer *a,
                          const struct cp_status *st)
{
    struct commit_op *op = ud;
    struct seqroom *sr = op->sr;
    sr->committing = false;
    if (a->outcome == CP_ETXN_APPLIED) {
        sr->last_seq = op->new_last;
        for (struct draft *d = op->list; d != NULL; d = d->next)
            if (d->msg->idem_key != NULL)
                cp_eidem_add(s, d->msg->room_id, d->msg->idem_key, d->msg->id, d->msg->seq);
        cp_ecall_after(s, a->revision, commit_after, op);
        sr_kick(s, sr);
        return;
    }
    struct cp_status lost;
    if (a->outcome == CP_ETXN_UNKNOWN) {
        /* Outcome unknown: re-claim (which re-reads sb/seq) before the next commit. */
        sr->state = SR_NONE;
        drafts_answer(s, op->list, st, NULL);
    } else if (!commit_lost(s, op, a, &lost)) {
        drafts_answer(s, op->list, &lost, NULL);
    }
    free(op);
    sr_kick(s, sr);
}

/* The message puts (history key, idempotency record) of the batch, seqs from last_seq + 1;
 * returns the last seq given. */
static int64_t commit_messages(struct cp_estore *s, struct seqroom *sr, struct cp_etxn *t,
                               struct draft *list, int max_history)
{
    char hk[CP_KEYS_MAX];
    int64_t seq = sr->last_seq;
    for (struct draft *d = list; d != NULL; d = d->next) {
        d->msg->seq = ++seq;
        char *v = cp_ecodec_message_json(d->msg, max_history <= 0);
        if (v == NULL || cp_keys_history(sr->room_id, seq, hk, sizeof(hk)) != SB_OK)
            t->failed = true;
        else
            cp_etxn_put(t, hk, v, strlen(v), 0);
        free(v);
        /* The record goes in the same fenced txn, which fails if the key has one already
         * (whoever wrote it): a key is never stored twice. */
        if (d->msg->idem_key != NULL)
            cp_eidem_put(s, t, sr->room_id, d->msg->idem_key, d->msg->id, seq);
    }
    return seq;
}

/* Takes up to COMMIT_MAX_MSGS / COMMIT_MAX_BYTES from the queue. */
static struct draft *sr_take_batch(struct seqroom *sr)
{
    struct draft *list = NULL, **tail = &list;
    size_t n = 0, bytes = 0;
    while (sr->pend_head != NULL && n < COMMIT_MAX_MSGS &&
           (n == 0 || bytes + sr->pend_head->msg->data_len < COMMIT_MAX_BYTES)) {
        struct draft *d = sr->pend_head;
        sr->pend_head = d->next;
        if (sr->pend_head == NULL)
            sr->pend_tail = NULL;
        d->next = NULL;
        *tail = d;
        tail = &d->next;
        n++;
        bytes += d->msg->data_len + 256;
    }
    return list;
}

static void sr_commit(struct cp_estore *s, struct seqroom *sr)
{
    struct commit_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return; /* retried on the next publish */
    op->sr = sr;
    op->list = sr_take_batch(sr);
    int max_history = op->list->max_history;
    struct cp_etxn t;
    cp_etxn_init(&t);
    cp_etxn_cmp(&t, sr->k.sequencer, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, sr->fence);
    cp_etxn_cmp(&t, sr->k.room, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, sr->room_rev);
    /* The stored last seq must be the one this sequencer believes: a commit whose answer was
     * lost (a leader change, a retry on another endpoint) can never make a later one reuse its
     * seqs and overwrite the messages it stored. */
    char num[32];
    snprintf(num, sizeof(num), "%lld", (long long)sr->last_seq);
    if (sr->last_seq == 0)
        cp_etxn_cmp(&t, sr->k.seq, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
    else
        cp_etxn_cmp_value(&t, sr->k.seq, num);
    int64_t seq = commit_messages(s, sr, &t, op->list, max_history);
    op->new_last = seq;
    snprintf(num, sizeof(num), "%lld", (long long)seq);
    cp_etxn_put(&t, sr->k.seq, num, strlen(num), 0);
    /* Below the cut: the previous commit's transient messages (max_history 0), or what is
     * beyond max_history. */
    int64_t cut = max_history <= 0 ? (sr->last_seq > 0 ? sr->last_seq + 1 : 0)
                                   : (seq > max_history ? seq - max_history + 1 : 0);
    if (cut > 0) {
        char from[CP_KEYS_MAX], to[CP_KEYS_MAX];
        cp_keys_history(sr->room_id, 0, from, sizeof(from));
        cp_keys_history(sr->room_id, cut, to, sizeof(to));
        cp_etxn_del_range(&t, from, strlen(from), to, strlen(to));
    }
    cp_etxn_get(&t, true, sr->k.sequencer, false);
    cp_etxn_get(&t, true, sr->k.idem, true);
    cp_etxn_get(&t, true, sr->k.room, false);
    cp_etxn_get(&t, true, sr->k.seq, false);
    sr->committing = true;
    cp_ecall_txn(s, &t, 0, "message store", commit_answer, op);
}

static void sr_kick(struct cp_estore *s, struct seqroom *sr)
{
    if (sr->pend_head == NULL || sr->committing)
        return;
    if (sr->state == SR_NONE) {
        struct cp_ecache_holder *h = sb_map_get(&s->holders, sr->room_id);
        if (h != NULL && strcmp(h->cp_id, s->id) != 0) {
            char holder[SB_IDENT_MAX + 1];
            snprintf(holder, sizeof(holder), "%s", h->cp_id);
            sr_forward(s, sr, holder);
            return;
        }
        sr_claim(s, sr);
    } else if (sr->state == SR_HELD) {
        sr_commit(s, sr);
    }
}

/* ---- the Store operation */

/* Refusals of a publish from the cache: NULL when it may go on. */
static struct cp_ecache_room *append_room(struct cp_estore *s, const struct cp_message *draft,
                                          const char *require_member, struct cp_status *st)
{
    struct cp_ecache_room *r = cp_ecache_room_found(s, draft->room_id, NULL, st);
    if (r != NULL && r->room.archived)
        cp_status_set(st, SB_CODE_ROOM_ARCHIVED, "room %s is archived", draft->room_id);
    else if (r != NULL && require_member != NULL && cp_ecache_member_get(r, require_member) == NULL)
        cp_estore_not_member(st, require_member, draft->room_id);
    return st->code == SB_CODE_NONE ? r : NULL;
}

/* Deduplication before queueing: true when d was answered from a record, or waits for the
 * publish of the same key already in flight (d is then taken). */
static bool append_dedup(struct cp_estore *s, struct draft *d)
{
    struct cp_status st;
    char *k = cp_eidem_key(d->msg->room_id, d->msg->idem_key);
    struct cp_eidem *e = cp_eidem_find(s, d->msg->room_id, d->msg->idem_key);
    if (e != NULL) {
        free(k);
        if (draft_from_idem(d, e) != SB_OK) {
            cp_estore_oom(&st);
            d->cb(d->arg, &st, NULL);
            draft_free(d);
            return true;
        }
        cp_status_ok(&st);
        draft_answer(s, d, &st, NULL);
        return true;
    }
    struct draft *first = k ? sb_map_get(&s->idem_pend, k) : NULL;
    if (first != NULL) {
        d->next = first->dups;
        first->dups = d;
        free(k);
        return true;
    }
    if (k == NULL || sb_map_put(&s->idem_pend, k, d) != SB_OK) {
        free(d->msg->idem_key); /* cannot track it: publish without dedup */
        d->msg->idem_key = NULL;
    }
    free(k);
    return false;
}

void cp_eseq_message_append(struct cp_store *st, const struct cp_message *draft,
                            const char *require_member, int max_history, cp_store_append_fn *cb,
                            void *arg)
{
    struct cp_estore *s = cp_estore_of(st);
    struct cp_status stt;
    if (append_room(s, draft, require_member, &stt) == NULL) {
        cb(arg, &stt, NULL);
        return;
    }
    struct cp_message *msg = cp_message_dup(draft);
    struct draft *d = msg != NULL ? malloc(sizeof(*d)) : NULL;
    if (d == NULL) {
        cp_message_free(msg);
        cb(arg, &cp_estore_nomem, NULL);
        return;
    }
    *d = (struct draft){.msg = msg, .max_history = max_history, .cb = cb, .arg = arg};
    if (draft->idem_key != NULL && append_dedup(s, d))
        return;
    struct seqroom *sr = seqroom_get(s, draft->room_id, true);
    if (sr == NULL) {
        idem_pend_drop(s, d);
        draft_free(d);
        cp_estore_oom(&stt);
        cb(arg, &stt, NULL);
        return;
    }
    if (sr->pend_tail != NULL)
        sr->pend_tail->next = d;
    else
        sr->pend_head = d;
    sr->pend_tail = d;
    sr_kick(s, sr);
}

/* ---- for the other files */

void cp_eseq_holder_changed(struct cp_estore *s, const char *room_id, const struct cp_etcd_kv *kv)
{
    struct seqroom *sr = seqroom_get(s, room_id, false);
    if (sr == NULL || sr->state != SR_HELD)
        return;
    if (kv == NULL)
        sr_lost(s, sr, "sequencer key deleted");
    else if (kv->create_revision != sr->fence)
        sr_lost(s, sr, "another replica holds the room");
}

void cp_eseq_drop_all(struct cp_estore *s)
{
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&s->seqrooms, &it);
    while ((e = sb_map_iter_next(&s->seqrooms, &it)) != NULL) {
        struct seqroom *sr = e->value;
        sr->state = SR_NONE;
        sr->fence = 0;
    }
}

void cp_eseq_fail_all(struct cp_estore *s)
{
    struct cp_status st;
    cp_status_set(&st, SB_CODE_UNAVAILABLE, "control plane shutting down");
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&s->seqrooms, &it);
    while ((e = sb_map_iter_next(&s->seqrooms, &it)) != NULL)
        sr_fail_pending(s, e->value, &st, NULL);
}

void cp_eseq_fini(struct cp_estore *s)
{
    cp_estore_map_fini(&s->seqrooms, free);
    sb_map_fini(&s->idem_pend);
}
