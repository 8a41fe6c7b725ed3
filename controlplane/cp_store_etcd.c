/* etcd Store: transactions for writes, a watch-fed cache for reads, the revision barrier, room
 * sequencing with fenced group commits, leases (this replica's, the nodes'), the presence
 * leader claim. See cp_store_etcd.h and docs/distributed.md. Everything below runs on the
 * owner thread, except the *_etcd_cb trampolines which copy an answer and post it there. */
#include "cp_store_etcd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_barrier.h"
#include "cp_etcd.h"
#include "cp_history.h"
#include "cp_keys.h"
#include "sb_map.h"
#include "sb_id.h"
#include "sb_log.h"
#include "sb_time.h"

#define BARRIER_MAX_WAIT_MS 3000
#define IDEM_TTL_MS         120000
#define IDEM_LEASE_S        180 /* keys attached at most 60 s after the grant live >= 120 s */
#define IDEM_ROTATE_MS      60000
/* Each message costs 2 success ops and 1 compare; etcd refuses a txn with more than 128 ops in
 * one list (--max-txn-ops default), so a batch stays well under it. */
#define COMMIT_MAX_MSGS  40
#define COMMIT_MAX_BYTES (1024 * 1024)
#define OP_RETRIES       3
#define REPLAY_SCAN      COMMIT_MAX_MSGS /* history tail read at a takeover */
#define REPLAY_TXNS      2               /* the previous holder's last commits delivered again */

/* ---------------------------------------------------------------- state */

struct eroom {
    struct cp_room room; /* owned strings; id always set */
    bool exists;
    int64_t create_rev;
    struct cp_member *members; /* sorted by user_id, owned ids */
    size_t n_members, cap_members;
    int64_t last_seq;
};

struct idset {
    char **ids; /* sorted */
    size_t n, cap;
};

struct enode {
    char *address;
    int64_t last_heartbeat;
    int64_t connections;
};

struct holder {
    char *cp_id;
    int64_t create_rev;
    int64_t lease;
};

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
    char *room_id;
    enum sr_state state;
    int64_t fence;    /* create_revision of our sb/sequencer/<room> */
    int64_t room_rev; /* create_revision of the room when claimed */
    int64_t last_seq; /* committed */
    struct draft *pend_head, *pend_tail;
    struct draft *inflight;
    bool committing;
};

struct idem {
    char *message_id;
    int64_t seq;
    int64_t expires;           /* monotonic ms */
    struct cp_message *stored; /* read at a takeover (another sequencer stored it): delivered
                                  again with the first hit, then freed; may be NULL */
};

struct nodelease {
    char *node_id;
    char *address;
    int64_t lease;
    struct cp_etcd_keepalive *ka;
};

struct estore {
    struct cp_store base;
    struct cp_etcd *e;
    struct cp_handoff *h;
    char *id;
    char *advertise;
    int64_t ttl_s;
    int timeout_ms;
    struct cp_store_etcd_hooks hooks;
    int64_t lease;
    struct cp_etcd_keepalive *lease_ka;
    bool lease_renewing;
    struct cp_etcd_watch *watch;
    struct cp_barrier barrier;
    struct sb_map rooms;      /* id -> struct eroom */
    struct sb_map user_rooms; /* user -> struct idset */
    struct sb_map nodes;      /* node id -> struct enode */
    struct sb_map cps;        /* cp id -> address (char *) */
    struct sb_map holders;    /* room -> struct holder */
    struct sb_map seqrooms;   /* room -> struct seqroom */
    struct sb_map idem;       /* "room\nkey" -> struct idem */
    struct sb_map idem_pend;  /* "room\nkey" -> struct draft (in flight) */
    struct sb_map leases;     /* node id -> struct nodelease */
    char *leader;
    bool is_leader;
    bool claiming_leader;
    int64_t idem_lease;
    int64_t idem_lease_at;
    uint64_t txn_marker; /* next write marker (tb_marker) */
    bool idem_granting;
    bool stopped;
    bool relisting;
    bool live;                 /* applying watch events: report them to the observer */
    cp_store_event_fn *obs_fn; /* the observer (NULL: none) */
    void *obs_arg;
    int64_t now_mono; /* refreshed by tick and by every operation */
    /* open() progress */
    int opening; /* steps left */
    enum sb_err open_err;
};

static const struct cp_store_ops ops;

static struct estore *ES(struct cp_store *s)
{
    return (struct estore *)s;
}

static int64_t mono(struct estore *s)
{
    s->now_mono = sb_time_mono_ms();
    return s->now_mono;
}

static void set_unavail(struct cp_status *st, const char *what)
{
    cp_status_set(st, SB_CODE_UNAVAILABLE, "etcd unavailable (%s)", what);
}

static void oom(struct cp_status *st)
{
    cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
}

/* ---------------------------------------------------------------- etcd calls on the owner */

typedef void ecall_fn(struct estore *s, void *ud, enum sb_err st, const char *body, size_t len);

struct ecall {
    struct estore *s;
    ecall_fn *fn;
    void *ud;
    enum sb_err st;
    char *body;
    size_t len;
};

static void ecall_run(void *arg)
{
    struct ecall *c = arg;
    c->fn(c->s, c->ud, c->st, c->body ? c->body : "", c->len);
    free(c->body);
    free(c);
}

static void ecall_etcd_cb(void *ud, enum sb_err status, long http, const char *body, size_t len)
{
    (void)http;
    struct ecall *c = ud;
    c->st = status;
    if (len > 0) {
        c->body = malloc(len + 1);
        if (c->body == NULL) {
            c->st = SB_ENOMEM;
        } else {
            memcpy(c->body, body, len);
            c->body[len] = '\0';
            c->len = len;
        }
    }
    if (cp_handoff_post(c->s->h, ecall_run, c) != SB_OK) {
        /* Cannot reach the owner: nothing safe to do but drop it (logged). */
        SB_LOG_ERROR("cp", "etcd answer lost: out of memory", NULL);
        free(c->body);
        free(c);
    }
}

/* POSTs `json` (taken) to `path`; fn runs on the owner thread exactly once. */
static void ecall(struct estore *s, const char *path, char *json, unsigned flags, ecall_fn *fn,
                  void *ud)
{
    struct ecall *c = calloc(1, sizeof(*c));
    if (c == NULL || json == NULL) {
        free(json);
        free(c);
        fn(s, ud, SB_ENOMEM, "", 0);
        return;
    }
    c->s = s;
    c->fn = fn;
    c->ud = ud;
    enum sb_err err = cp_etcd_call(s->e, path, json, s->timeout_ms, flags, ecall_etcd_cb, c);
    free(json);
    if (err != SB_OK) {
        c->st = err;
        if (cp_handoff_post(s->h, ecall_run, c) != SB_OK) {
            free(c);
            fn(s, ud, err, "", 0);
        }
    }
}

/* ---------------------------------------------------------------- txn builder */

struct txnb {
    struct cp_etcd_cmp *cmp;
    size_t nc, capc;
    struct cp_etcd_op *succ;
    size_t ns, caps;
    struct cp_etcd_op fail[8];
    size_t nf;
    char **strs;
    size_t nstr, capstr;
    bool failed;
};

static void tb_init(struct txnb *t)
{
    memset(t, 0, sizeof(*t));
}

static void tb_fini(struct txnb *t)
{
    for (size_t i = 0; i < t->nstr; i++)
        free(t->strs[i]);
    free(t->strs);
    free(t->succ);
    free(t->cmp);
}

/* Keeps a copy of n bytes alive until tb_fini. */
static struct cp_etcd_bytes tb_bytes(struct txnb *t, const char *p, size_t n)
{
    struct cp_etcd_bytes b = {NULL, 0};
    if (t->nstr == t->capstr) {
        size_t cap = t->capstr ? t->capstr * 2 : 16;
        char **a = realloc(t->strs, cap * sizeof(*a));
        if (a == NULL) {
            t->failed = true;
            return b;
        }
        t->strs = a;
        t->capstr = cap;
    }
    char *d = malloc(n + 1);
    if (d == NULL) {
        t->failed = true;
        return b;
    }
    if (n > 0)
        memcpy(d, p, n);
    d[n] = '\0';
    t->strs[t->nstr++] = d;
    b.p = d;
    b.n = n;
    return b;
}

static struct cp_etcd_bytes tb_str(struct txnb *t, const char *s)
{
    return tb_bytes(t, s, strlen(s));
}

static struct cp_etcd_bytes tb_prefix_end(struct txnb *t, const char *prefix)
{
    char end[CP_KEYS_DOC_MAX];
    size_t n;
    if (cp_keys_range_end(prefix, strlen(prefix), end, sizeof(end), &n) != SB_OK) {
        t->failed = true;
        return (struct cp_etcd_bytes){NULL, 0};
    }
    return tb_bytes(t, end, n);
}

static struct cp_etcd_op *tb_succ(struct txnb *t)
{
    if (t->ns == t->caps) {
        size_t cap = t->caps ? t->caps * 2 : 16;
        struct cp_etcd_op *a = realloc(t->succ, cap * sizeof(*a));
        if (a == NULL) {
            t->failed = true;
            return NULL;
        }
        t->succ = a;
        t->caps = cap;
    }
    struct cp_etcd_op *op = &t->succ[t->ns++];
    memset(op, 0, sizeof(*op));
    return op;
}

static void tb_put(struct txnb *t, const char *key, const char *val, size_t vlen, int64_t lease)
{
    struct cp_etcd_op *op = tb_succ(t);
    if (op == NULL)
        return;
    op->type = CP_ETCD_OP_PUT;
    op->u.put.key = tb_str(t, key);
    op->u.put.value = tb_bytes(t, val, vlen);
    op->u.put.lease = lease;
}

static void tb_del(struct txnb *t, const char *key, bool prefix)
{
    struct cp_etcd_op *op = tb_succ(t);
    if (op == NULL)
        return;
    op->type = CP_ETCD_OP_DELETE;
    op->u.del.key = tb_str(t, key);
    if (prefix)
        op->u.del.range_end = tb_prefix_end(t, key);
}

/* Deletes [from, to) (both full keys). */
static void tb_del_range(struct txnb *t, const char *from, const char *to)
{
    struct cp_etcd_op *op = tb_succ(t);
    if (op == NULL)
        return;
    op->type = CP_ETCD_OP_DELETE;
    op->u.del.key = tb_str(t, from);
    op->u.del.range_end = tb_str(t, to);
}

static void tb_get_op(struct txnb *t, struct cp_etcd_op *op, const char *key, bool prefix)
{
    op->type = CP_ETCD_OP_RANGE;
    op->u.range.key = tb_str(t, key);
    if (prefix)
        op->u.range.range_end = tb_prefix_end(t, key);
}

/* The last REPLAY_SCAN keys under `prefix`, highest first (op NULL: out of memory). */
static void tb_get_tail(struct txnb *t, struct cp_etcd_op *op, const char *prefix)
{
    if (op == NULL)
        return;
    memset(op, 0, sizeof(*op));
    tb_get_op(t, op, prefix, true);
    op->u.range.limit = REPLAY_SCAN;
    op->u.range.descend = true;
}

static void tb_get(struct txnb *t, const char *key, bool prefix)
{
    struct cp_etcd_op *op = tb_succ(t);
    if (op != NULL)
        tb_get_op(t, op, key, prefix);
}

static void tb_fail_get(struct txnb *t, const char *key, bool prefix)
{
    if (t->nf >= sizeof(t->fail) / sizeof(t->fail[0])) {
        t->failed = true;
        return;
    }
    struct cp_etcd_op *op = &t->fail[t->nf++];
    memset(op, 0, sizeof(*op));
    tb_get_op(t, op, key, prefix);
}

static void tb_cmp(struct txnb *t, const char *key, enum cp_etcd_cmp_target target,
                   enum cp_etcd_cmp_result result, int64_t num)
{
    if (t->nc == t->capc) {
        size_t cap = t->capc ? t->capc * 2 : 8;
        struct cp_etcd_cmp *a = realloc(t->cmp, cap * sizeof(*a));
        if (a == NULL) {
            t->failed = true;
            return;
        }
        t->cmp = a;
        t->capc = cap;
    }
    struct cp_etcd_cmp *c = &t->cmp[t->nc++];
    memset(c, 0, sizeof(*c));
    c->key = tb_str(t, key);
    c->target = target;
    c->result = result;
    c->num = num;
}

/* Compares `key`'s value with `value` (EQUAL). */
static void tb_cmp_value(struct txnb *t, const char *key, const char *value)
{
    tb_cmp(t, key, CP_ETCD_CMP_VALUE, CP_ETCD_CMP_EQUAL, 0);
    if (!t->failed)
        t->cmp[t->nc - 1].value = tb_str(t, value);
}

/* The last seq stored in a range answer of sb/seq/<room> (0: no key yet). */
static int64_t stored_seq(const struct cp_etcd_result *r)
{
    if (r == NULL || r->n_kvs == 0 || r->kvs[0].value_len == 0 || r->kvs[0].value_len > 20)
        return 0;
    char buf[24];
    memcpy(buf, r->kvs[0].value, r->kvs[0].value_len);
    buf[r->kvs[0].value_len] = '\0';
    return strtoll(buf, NULL, 10);
}

/* Builds the JSON (NULL on failure) and frees the builder. */
static char *tb_json(struct txnb *t)
{
    char *out = NULL;
    if (!t->failed) {
        struct cp_etcd_txn_req r = {t->cmp, t->nc, t->succ, t->ns, t->fail, t->nf};
        if (cp_etcd_json_txn(&r, &out) != SB_OK)
            out = NULL;
    }
    tb_fini(t);
    return out;
}

/* ---------------------------------------------------------------- small helpers */

static char *json_text(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static json_t *json_parse(const char *v, size_t n)
{
    if (v == NULL || n == 0)
        return NULL;
    return json_loadb(v, n, JSON_DECODE_INT_AS_REAL & 0, NULL);
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int64_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static char *sdup(const char *s)
{
    return strdup(s ? s : "");
}

static char *idem_map_key(const char *room_id, const char *key)
{
    size_t n = strlen(room_id) + strlen(key) + 2;
    char *k = malloc(n);
    if (k != NULL)
        snprintf(k, n, "%s\n%s", room_id, key);
    return k;
}

static void idem_free(struct idem *x)
{
    if (x == NULL)
        return;
    free(x->message_id);
    cp_message_free(x->stored);
    free(x);
}

/* ---------------------------------------------------------------- cache: rooms */

static void eroom_free(struct eroom *r)
{
    for (size_t i = 0; i < r->n_members; i++)
        free(r->members[i].user_id);
    free(r->members);
    cp_room_free(&r->room, false);
    free(r);
}

static struct eroom *room_get_or_add(struct estore *s, const char *id)
{
    struct eroom *r = sb_map_get(&s->rooms, id);
    if (r != NULL)
        return r;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->room.id = strdup(id);
    r->room.name = strdup("");
    r->room.description = strdup("");
    r->room.owner_id = strdup("");
    if (!r->room.id || !r->room.name || !r->room.description || !r->room.owner_id ||
        sb_map_put(&s->rooms, id, r) != SB_OK) {
        eroom_free(r);
        return NULL;
    }
    return r;
}

/* A live room (NULL when absent or deleted). member_count and last_seq refreshed. */
static struct eroom *room_live(struct estore *s, const char *id)
{
    struct eroom *r = sb_map_get(&s->rooms, id);
    if (r == NULL || !r->exists)
        return NULL;
    r->room.member_count = (int32_t)r->n_members;
    r->room.last_seq = r->last_seq;
    return r;
}

static void room_maybe_drop(struct estore *s, struct eroom *r)
{
    if (!r->exists && r->n_members == 0 && r->last_seq == 0) {
        sb_map_remove(&s->rooms, r->room.id);
        eroom_free(r);
    }
}

static json_t *room_to_json(const struct cp_room *r)
{
    json_t *meta = json_object();
    for (size_t i = 0; i < r->n_metadata; i++)
        json_object_set_new(meta, r->metadata[i].key ? r->metadata[i].key : "",
                            json_string(r->metadata[i].value ? r->metadata[i].value : ""));
    return json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:o}", "name",
                     r->name ? r->name : "", "description", r->description ? r->description : "",
                     "owner_id", r->owner_id ? r->owner_id : "", "private", r->is_private,
                     "archived", r->archived, "max_members", (json_int_t)r->max_members,
                     "created_at", (json_int_t)r->created_at, "updated_at",
                     (json_int_t)r->updated_at, "metadata", meta);
}

/* A room record (value of sb/rooms/<id>) as a new cp_room (member_count, last_seq 0); NULL
 * when unreadable or out of memory. */
static struct cp_room *room_parse(const char *id, const char *v, size_t n)
{
    json_t *j = json_parse(v, n);
    if (j == NULL)
        return NULL;
    struct cp_room nr = {0};
    nr.id = (char *)id;
    nr.name = (char *)jstr(j, "name");
    nr.description = (char *)jstr(j, "description");
    nr.owner_id = (char *)jstr(j, "owner_id");
    nr.is_private = json_is_true(json_object_get(j, "private"));
    nr.archived = json_is_true(json_object_get(j, "archived"));
    nr.max_members = (int32_t)jint(j, "max_members");
    nr.created_at = jint(j, "created_at");
    nr.updated_at = jint(j, "updated_at");
    json_t *meta = json_object_get(j, "metadata");
    size_t nm = json_is_object(meta) ? json_object_size(meta) : 0;
    struct cp_kv *kvs = nm ? calloc(nm, sizeof(*kvs)) : NULL;
    if (nm > 0 && kvs != NULL) {
        const char *k;
        json_t *v;
        size_t i = 0;
        json_object_foreach(meta, k, v)
        {
            kvs[i].key = (char *)k;
            kvs[i].value = (char *)(json_string_value(v) ? json_string_value(v) : "");
            i++;
        }
        nr.metadata = kvs;
        nr.n_metadata = nm;
    }
    struct cp_room *d = nm > 0 && kvs == NULL ? NULL : cp_room_dup(&nr);
    free(kvs);
    json_decref(j);
    return d;
}

static void apply_room_put(struct estore *s, const char *id, const struct cp_etcd_kv *kv)
{
    struct eroom *r = room_get_or_add(s, id);
    struct cp_room *d = r ? room_parse(id, kv->value, kv->value_len) : NULL;
    if (d == NULL) {
        SB_LOG_WARN("cp", "unreadable room record ignored (or out of memory)", "room=%s", id);
        return;
    }
    cp_room_free(&r->room, false);
    r->room = *d;
    free(d);
    r->exists = true;
    r->create_rev = kv->create_revision;
}

static ssize_t member_find(const struct eroom *r, const char *user, bool *found)
{
    size_t lo = 0, hi = r->n_members;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(r->members[mid].user_id, user);
        if (c == 0) {
            *found = true;
            return (ssize_t)mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return (ssize_t)lo;
}

static const struct cp_member *member_get(const struct eroom *r, const char *user)
{
    bool found;
    ssize_t i = member_find(r, user, &found);
    return found ? &r->members[i] : NULL;
}

/* Returns true when the member is new. */
static bool apply_member_put(struct estore *s, const char *room, const char *user,
                             const struct cp_etcd_kv *kv)
{
    struct eroom *r = room_get_or_add(s, room);
    if (r == NULL)
        return false;
    json_t *j = json_parse(kv->value, kv->value_len);
    enum cp_role role = CP_ROLE_MEMBER;
    if (j != NULL && cp_role_parse(jstr(j, "role"), &role) != SB_OK)
        role = CP_ROLE_MEMBER;
    int64_t joined = j ? jint(j, "joined_at") : 0;
    json_decref(j);
    bool found;
    ssize_t i = member_find(r, user, &found);
    if (found) {
        r->members[i].role = role;
        r->members[i].joined_at = joined;
        return false;
    }
    if (r->n_members == r->cap_members) {
        size_t cap = r->cap_members ? r->cap_members * 2 : 8;
        struct cp_member *a = realloc(r->members, cap * sizeof(*a));
        if (a == NULL)
            return false;
        r->members = a;
        r->cap_members = cap;
    }
    char *uid = strdup(user);
    if (uid == NULL)
        return false;
    memmove(&r->members[i + 1], &r->members[i], (r->n_members - (size_t)i) * sizeof(*r->members));
    r->members[i] = (struct cp_member){uid, role, joined};
    r->n_members++;
    return true;
}

static bool apply_member_del(struct estore *s, const char *room, const char *user)
{
    struct eroom *r = sb_map_get(&s->rooms, room);
    if (r == NULL)
        return false;
    bool found;
    ssize_t i = member_find(r, user, &found);
    if (!found)
        return false;
    free(r->members[i].user_id);
    memmove(&r->members[i], &r->members[i + 1],
            (r->n_members - (size_t)i - 1) * sizeof(*r->members));
    r->n_members--;
    room_maybe_drop(s, r);
    return true;
}

static void idset_free(struct idset *x)
{
    for (size_t i = 0; i < x->n; i++)
        free(x->ids[i]);
    free(x->ids);
    free(x);
}

static ssize_t idset_find(const struct idset *x, const char *id, bool *found)
{
    size_t lo = 0, hi = x->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(x->ids[mid], id);
        if (c == 0) {
            *found = true;
            return (ssize_t)mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return (ssize_t)lo;
}

static void apply_user_room(struct estore *s, const char *user, const char *room, bool put)
{
    struct idset *x = sb_map_get(&s->user_rooms, user);
    if (x == NULL) {
        if (!put)
            return;
        x = calloc(1, sizeof(*x));
        if (x == NULL || sb_map_put(&s->user_rooms, user, x) != SB_OK) {
            free(x);
            return;
        }
    }
    bool found;
    ssize_t i = idset_find(x, room, &found);
    if (put && !found) {
        if (x->n == x->cap) {
            size_t cap = x->cap ? x->cap * 2 : 4;
            char **a = realloc(x->ids, cap * sizeof(*a));
            if (a == NULL)
                return;
            x->ids = a;
            x->cap = cap;
        }
        char *d = strdup(room);
        if (d == NULL)
            return;
        memmove(&x->ids[i + 1], &x->ids[i], (x->n - (size_t)i) * sizeof(*x->ids));
        x->ids[i] = d;
        x->n++;
    } else if (!put && found) {
        free(x->ids[i]);
        memmove(&x->ids[i], &x->ids[i + 1], (x->n - (size_t)i - 1) * sizeof(*x->ids));
        x->n--;
        if (x->n == 0) {
            sb_map_remove(&s->user_rooms, user);
            idset_free(x);
        }
    }
}

/* ---------------------------------------------------------------- cache: the rest */

static void enode_free(struct enode *n)
{
    free(n->address);
    free(n);
}

static void claim_leader(struct estore *s);
static void sr_lost(struct estore *s, struct seqroom *sr, const char *why);
static struct cp_message *message_parse(const char *v, size_t n);

/* Reports a change applied from the watch to the observer (nothing while listing). */
static void emit(struct estore *s, struct cp_store_event ev, int64_t rev)
{
    if (!s->live || s->obs_fn == NULL)
        return;
    ev.revision = rev;
    s->obs_fn(s->obs_arg, &ev);
}

/* A watched history key: a new message (the key's first version since it was created) or an
 * overwritten one (message_update). Deletes (trimming) are not reported. */
static void emit_history(struct estore *s, const char *room, const struct cp_etcd_kv *kv)
{
    if (!s->live || s->obs_fn == NULL)
        return;
    struct cp_message *m = message_parse(kv->value, kv->value_len);
    if (m == NULL) {
        SB_LOG_WARN("cp", "unreadable history message not reported", "room=%s", room);
        return;
    }
    bool fresh = kv->create_revision == kv->mod_revision;
    emit(s,
         (struct cp_store_event){.kind = fresh ? CP_STORE_EV_MESSAGE : CP_STORE_EV_MESSAGE_UPDATE,
                                 .room_id = room,
                                 .message = m},
         kv->mod_revision);
    cp_message_free(m);
}

static void emit_doc(struct estore *s, const struct cp_keys_parts *p, bool put,
                     const struct cp_etcd_kv *kv)
{
    if (!s->live || s->obs_fn == NULL)
        return;
    char key[CP_KEYS_DOC_KEY_MAX + 1];
    memcpy(key, p->doc, p->doc_len);
    key[p->doc_len] = '\0';
    struct cp_doc d = {.key = key,
                       .value = put ? kv->value : NULL,
                       .len = put ? kv->value_len : 0,
                       .version = put ? kv->mod_revision : 0};
    emit(s, (struct cp_store_event){.kind = CP_STORE_EV_DOC, .doc = &d}, kv->mod_revision);
}

static void apply_kv(struct estore *s, enum cp_etcd_event_type type, const struct cp_etcd_kv *kv)
{
    struct cp_keys_parts p;
    if (cp_keys_parse(kv->key, kv->key_len, &p) != SB_OK)
        return;
    bool put = type == CP_ETCD_EVENT_PUT;
    int64_t rev = kv->mod_revision;
    switch (p.kind) {
    case CP_KEYS_KIND_ROOM:
        if (put) {
            apply_room_put(s, p.a, kv);
            struct eroom *r = room_live(s, p.a);
            if (r != NULL)
                emit(s,
                     (struct cp_store_event){
                         .kind = CP_STORE_EV_ROOM, .room_id = r->room.id, .room = &r->room},
                     rev);
        } else {
            struct eroom *r = sb_map_get(&s->rooms, p.a);
            bool existed = r != NULL && r->exists;
            if (r != NULL) {
                r->exists = false;
                r->create_rev = 0;
                room_maybe_drop(s, r);
            }
            if (existed)
                emit(s, (struct cp_store_event){.kind = CP_STORE_EV_ROOM_DELETED, .room_id = p.a},
                     rev);
        }
        break;
    case CP_KEYS_KIND_MEMBER: {
        /* A room delete removes the room key first, then its members: like the memory store,
         * only the room's deletion is reported, not each member leaving. */
        struct eroom *r0 = sb_map_get(&s->rooms, p.a);
        bool room_exists = r0 != NULL && r0->exists;
        if (put ? apply_member_put(s, p.a, p.b, kv) : apply_member_del(s, p.a, p.b)) {
            if (s->hooks.member != NULL)
                s->hooks.member(s->hooks.ud, p.a, p.b, put, rev);
            struct eroom *r = put ? sb_map_get(&s->rooms, p.a) : NULL;
            const struct cp_member *m = r != NULL ? member_get(r, p.b) : NULL;
            if (m != NULL)
                emit(s,
                     (struct cp_store_event){.kind = CP_STORE_EV_MEMBER_ADDED,
                                             .room_id = r->room.id,
                                             .user_id = m->user_id,
                                             .member = m},
                     rev);
            else if (!put && room_exists)
                emit(s,
                     (struct cp_store_event){
                         .kind = CP_STORE_EV_MEMBER_REMOVED, .room_id = p.a, .user_id = p.b},
                     rev);
        }
        break;
    }
    case CP_KEYS_KIND_HISTORY:
        if (put)
            emit_history(s, p.a, kv);
        break;
    case CP_KEYS_KIND_DOC:
        emit_doc(s, &p, put, kv);
        break;
    case CP_KEYS_KIND_USER_ROOM:
        apply_user_room(s, p.a, p.b, put);
        break;
    case CP_KEYS_KIND_CONN:
        if (s->hooks.conn != NULL)
            s->hooks.conn(s->hooks.ud, p.a, p.b, p.c, put ? kv->value : NULL,
                          put ? kv->value_len : 0);
        break;
    case CP_KEYS_KIND_PRESENCE:
        /* written by versions before presence records became presence/<user> documents
         * (docs/presence.md); nothing writes or reads them now */
        break;
    case CP_KEYS_KIND_SEQ: {
        struct eroom *r = put ? room_get_or_add(s, p.a) : sb_map_get(&s->rooms, p.a);
        if (r != NULL) {
            int64_t v = put ? strtoll(kv->value, NULL, 10) : 0;
            r->last_seq = v;
            if (!put)
                room_maybe_drop(s, r);
        }
        break;
    }
    case CP_KEYS_KIND_NODE: {
        struct enode *n = sb_map_remove(&s->nodes, p.a);
        if (n != NULL)
            enode_free(n);
        if (!put)
            break;
        json_t *j = json_parse(kv->value, kv->value_len);
        n = calloc(1, sizeof(*n));
        if (n != NULL) {
            n->address = sdup(j ? jstr(j, "address") : "");
            n->last_heartbeat = j ? jint(j, "last_heartbeat") : 0;
            n->connections = j ? jint(j, "connections") : 0;
            if (n->address == NULL || sb_map_put(&s->nodes, p.a, n) != SB_OK)
                enode_free(n);
        }
        json_decref(j);
        break;
    }
    case CP_KEYS_KIND_CP: {
        char *old = sb_map_remove(&s->cps, p.a);
        free(old);
        if (put) {
            char *a = malloc(kv->value_len + 1);
            if (a != NULL) {
                memcpy(a, kv->value, kv->value_len);
                a[kv->value_len] = '\0';
                if (sb_map_put(&s->cps, p.a, a) != SB_OK)
                    free(a);
            }
        }
        break;
    }
    case CP_KEYS_KIND_SEQUENCER: {
        struct holder *h = sb_map_remove(&s->holders, p.a);
        if (h != NULL) {
            free(h->cp_id);
            free(h);
        }
        struct seqroom *sr = sb_map_get(&s->seqrooms, p.a);
        if (put) {
            h = calloc(1, sizeof(*h));
            if (h != NULL) {
                h->cp_id = malloc(kv->value_len + 1);
                if (h->cp_id != NULL) {
                    memcpy(h->cp_id, kv->value, kv->value_len);
                    h->cp_id[kv->value_len] = '\0';
                }
                h->create_rev = kv->create_revision;
                h->lease = kv->lease;
                if (h->cp_id == NULL || sb_map_put(&s->holders, p.a, h) != SB_OK) {
                    free(h->cp_id);
                    free(h);
                    h = NULL;
                }
            }
            if (sr != NULL && sr->state == SR_HELD && kv->create_revision != sr->fence)
                sr_lost(s, sr, "another replica holds the room");
        } else if (sr != NULL && sr->state == SR_HELD) {
            sr_lost(s, sr, "sequencer key deleted");
        }
        break;
    }
    case CP_KEYS_KIND_LEADER:
        if (strcmp(p.a, CP_KEYS_ROLE_PRESENCE) != 0)
            break;
        free(s->leader);
        s->leader = NULL;
        if (put) {
            s->leader = malloc(kv->value_len + 1);
            if (s->leader != NULL) {
                memcpy(s->leader, kv->value, kv->value_len);
                s->leader[kv->value_len] = '\0';
            }
        }
        {
            bool was = s->is_leader;
            s->is_leader =
                put && s->leader != NULL && strcmp(s->leader, s->id) == 0 && kv->lease == s->lease;
            if (was != s->is_leader)
                SB_LOG_INFO("cp",
                            s->is_leader ? "presence leader: this replica"
                                         : "presence leader: another replica",
                            "leader=%s", s->leader ? s->leader : "-");
        }
        if (!put && !s->relisting)
            claim_leader(s);
        break;
    default:
        break;
    }
}

/* Watch batches: copied on the etcd thread, applied on the owner. */
struct wbatch {
    struct estore *s;
    size_t n;
    struct cp_etcd_event ev[];
};

static void wbatch_free(struct wbatch *b)
{
    for (size_t i = 0; i < b->n; i++)
        cp_etcd_kv_fini(&b->ev[i].kv);
    free(b);
}

static void wbatch_run(void *arg)
{
    struct wbatch *b = arg;
    struct estore *s = b->s;
    int64_t rev = 0;
    if (!s->relisting) {
        s->live = true;
        for (size_t i = 0; i < b->n; i++) {
            apply_kv(s, b->ev[i].type, &b->ev[i].kv);
            rev = b->ev[i].kv.mod_revision;
        }
        s->live = false;
    }
    wbatch_free(b);
    if (rev > 0)
        cp_barrier_advance(&s->barrier, rev);
}

static char *memdup0(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        if (n > 0)
            memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

static void watch_events_cb(void *ud, const struct cp_etcd_event *events, size_t n)
{
    struct estore *s = ud;
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
        d->kv.key = memdup0(kv->key, kv->key_len);
        d->kv.value = memdup0(kv->value ? kv->value : "", kv->value ? kv->value_len : 0);
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

static void relist(struct estore *s);

static void relist_run(void *arg)
{
    struct estore *s = arg;
    SB_LOG_WARN("cp", "etcd watch start revision was compacted: re-listing", NULL);
    relist(s);
}

static void watch_reset_cb(void *ud, int64_t compact_revision)
{
    (void)compact_revision;
    struct estore *s = ud;
    cp_handoff_post(s->h, relist_run, s);
}

/* ---------------------------------------------------------------- listing */

static void clear_cache(struct estore *s)
{
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&s->rooms, &it);
    while ((e = sb_map_iter_next(&s->rooms, &it)) != NULL)
        eroom_free(e->value);
    sb_map_fini(&s->rooms);
    sb_map_init(&s->rooms);
    sb_map_iter_init(&s->user_rooms, &it);
    while ((e = sb_map_iter_next(&s->user_rooms, &it)) != NULL)
        idset_free(e->value);
    sb_map_fini(&s->user_rooms);
    sb_map_init(&s->user_rooms);
    sb_map_iter_init(&s->nodes, &it);
    while ((e = sb_map_iter_next(&s->nodes, &it)) != NULL)
        enode_free(e->value);
    sb_map_fini(&s->nodes);
    sb_map_init(&s->nodes);
    sb_map_iter_init(&s->cps, &it);
    while ((e = sb_map_iter_next(&s->cps, &it)) != NULL)
        free(e->value);
    sb_map_fini(&s->cps);
    sb_map_init(&s->cps);
    sb_map_iter_init(&s->holders, &it);
    while ((e = sb_map_iter_next(&s->holders, &it)) != NULL) {
        struct holder *h = e->value;
        free(h->cp_id);
        free(h);
    }
    sb_map_fini(&s->holders);
    sb_map_init(&s->holders);
}

/* Three ranges at one revision: everything under sb/ except documents and history (which no
 * cache needs: documents are read from etcd, history too). */
struct list_op {
    int64_t rev;
    int step;
    bool initial;
};

static void list_step(struct estore *s, struct list_op *lo);

static void list_done(struct estore *s, struct list_op *lo, enum sb_err err)
{
    bool initial = lo->initial;
    int64_t rev = lo->rev;
    free(lo);
    if (err != SB_OK) {
        if (initial) {
            s->open_err = err;
            s->opening = 0;
            return;
        }
        SB_LOG_WARN("cp", "re-list failed: retrying", "err=%s", sb_err_str(err));
        relist(s);
        return;
    }
    s->relisting = false;
    if (s->hooks.relist_end != NULL)
        s->hooks.relist_end(s->hooks.ud);
    cp_barrier_reset(&s->barrier, rev);
    if (s->watch == NULL) {
        if (cp_etcd_watch_start(s->e, CP_KEYS_ROOT, "sb0", rev + 1, watch_events_cb, watch_reset_cb,
                                s, &s->watch) != SB_OK) {
            if (initial) {
                s->open_err = SB_ENOMEM;
                s->opening = 0;
            }
            return;
        }
    } else {
        cp_etcd_watch_restart(s->watch, rev + 1);
    }
    if (s->leader == NULL)
        claim_leader(s);
    if (initial)
        s->opening--;
    SB_LOG_INFO("cp", "etcd cache loaded", "revision=%lld rooms=%zu", (long long)rev,
                cp_store_etcd_room_count(&s->base));
}

static void list_answer(struct estore *s, void *ud, enum sb_err st, const char *body, size_t len)
{
    struct list_op *lo = ud;
    struct cp_etcd_result r;
    if (st != SB_OK) {
        list_done(s, lo, st);
        return;
    }
    if (cp_etcd_json_parse_result(body, len, &r) != SB_OK) {
        list_done(s, lo, SB_EPROTO);
        return;
    }
    if (lo->step == 0)
        lo->rev = r.revision;
    for (size_t i = 0; i < r.n_kvs; i++)
        apply_kv(s, CP_ETCD_EVENT_PUT, &r.kvs[i]);
    cp_etcd_result_fini(&r);
    lo->step++;
    if (lo->step == 3)
        list_done(s, lo, SB_OK);
    else
        list_step(s, lo);
}

static void list_step(struct estore *s, struct list_op *lo)
{
    /* [sb/, sb/doc/), [sb/doc0, sb/history/) and [sb/history0, sb0), the last two at the
     * first answer's revision. */
    static const char *const from[] = {CP_KEYS_ROOT, "sb/doc0", "sb/history0"};
    static const char *const to[] = {CP_KEYS_DOC, CP_KEYS_HISTORY, "sb0"};
    struct cp_etcd_range_req q = {0};
    q.key = cp_etcd_str(from[lo->step]);
    q.range_end = cp_etcd_str(to[lo->step]);
    q.revision = lo->step > 0 ? lo->rev : 0;
    char *json = NULL;
    if (cp_etcd_json_range(&q, &json) != SB_OK)
        json = NULL;
    ecall(s, CP_ETCD_PATH_RANGE, json, CP_ETCD_RETRY, list_answer, lo);
}

static void relist(struct estore *s)
{
    struct list_op *lo = calloc(1, sizeof(*lo));
    if (lo == NULL) {
        SB_LOG_ERROR("cp", "out of memory re-listing", NULL);
        return;
    }
    s->relisting = true;
    if (s->hooks.relist_begin != NULL)
        s->hooks.relist_begin(s->hooks.ud);
    clear_cache(s);
    list_step(s, lo);
}

/* ---------------------------------------------------------------- barrier helpers */

typedef void after_fn(struct estore *s, void *ud, bool ok);

struct after {
    struct estore *s;
    after_fn *fn;
    void *ud;
};

static void after_run(void *arg, bool ok)
{
    struct after *a = arg;
    a->fn(a->s, a->ud, ok);
    free(a);
}

/* Runs fn once the cache reached rev (ok false: timed out or stopping). */
static void after_rev(struct estore *s, int64_t rev, after_fn *fn, void *ud)
{
    struct after *a = malloc(sizeof(*a));
    if (a == NULL) {
        fn(s, ud, false);
        return;
    }
    *a = (struct after){s, fn, ud};
    if (cp_barrier_wait(&s->barrier, rev, mono(s), after_run, a) != SB_OK) {
        free(a);
        fn(s, ud, false);
    }
}

/* Parses a txn answer: SB_OK with the result, or an error (the caller answers
 * unavailable). */
static enum sb_err txn_parse(enum sb_err st, const char *body, size_t len,
                             struct cp_etcd_txn_result *out)
{
    if (st != SB_OK)
        return st;
    return cp_etcd_json_parse_txn(body, len, out);
}

/* ---------------------------------------------------------------- rooms */

static void s_room_get(struct cp_store *st, const char *room_id, cp_store_room_fn *cb, void *arg)
{
    struct estore *s = ES(st);
    struct cp_status ok;
    struct eroom *r = room_live(s, room_id);
    if (r == NULL) {
        cp_status_set(&ok, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", room_id);
        cb(arg, &ok, NULL);
        return;
    }
    cp_status_ok(&ok);
    cb(arg, &ok, &r->room);
}

struct create_op {
    cp_store_room_fn *cb;
    void *arg;
    char *room_id;
};

static void create_after(struct estore *s, void *ud, bool okb)
{
    (void)okb;
    struct create_op *op = ud;
    struct cp_status st;
    struct eroom *r = room_live(s, op->room_id);
    if (r == NULL) {
        cp_status_set(&st, SB_CODE_UNAVAILABLE, "room %s was created but is not visible yet",
                      op->room_id);
        op->cb(op->arg, &st, NULL);
    } else {
        cp_status_ok(&st);
        op->cb(op->arg, &st, &r->room);
    }
    free(op->room_id);
    free(op);
}

static void create_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    struct create_op *op = ud;
    struct cp_etcd_txn_result t;
    struct cp_status st;
    if (txn_parse(e, body, len, &t) != SB_OK) {
        set_unavail(&st, "room create");
        op->cb(op->arg, &st, NULL);
        free(op->room_id);
        free(op);
        return;
    }
    bool won = t.succeeded;
    int64_t rev = t.revision;
    cp_etcd_txn_result_fini(&t);
    if (!won) {
        cp_status_set(&st, SB_CODE_ROOM_ALREADY_EXISTS, "room %s already exists", op->room_id);
        op->cb(op->arg, &st, NULL);
        free(op->room_id);
        free(op);
        return;
    }
    after_rev(s, rev, create_after, op);
}

static char *member_json(enum cp_role role, int64_t joined_at)
{
    return json_text(
        json_pack("{s:s, s:I}", "role", cp_role_name(role), "joined_at", (json_int_t)joined_at));
}

/* Adds the ops that make (room, user) a member. */
static void tb_member_put(struct txnb *t, const char *room, const char *user, enum cp_role role,
                          int64_t joined_at)
{
    char k[CP_KEYS_MAX];
    char *v = member_json(role, joined_at);
    if (v == NULL || cp_keys_member(room, user, k, sizeof(k)) != SB_OK) {
        free(v);
        t->failed = true;
        return;
    }
    tb_put(t, k, v, strlen(v), 0);
    free(v);
    if (cp_keys_user_room(user, room, k, sizeof(k)) != SB_OK) {
        t->failed = true;
        return;
    }
    tb_put(t, k, "", 0, 0);
}

static void tb_member_del(struct txnb *t, const char *room, const char *user)
{
    char k[CP_KEYS_MAX];
    if (cp_keys_member(room, user, k, sizeof(k)) != SB_OK) {
        t->failed = true;
        return;
    }
    tb_del(t, k, false);
    if (cp_keys_user_room(user, room, k, sizeof(k)) != SB_OK) {
        t->failed = true;
        return;
    }
    tb_del(t, k, false);
}

static void s_room_create(struct cp_store *st, const struct cp_room *room, cp_store_room_fn *cb,
                          void *arg)
{
    struct estore *s = ES(st);
    struct cp_status stt;
    char key[CP_KEYS_MAX];
    if (cp_keys_room(room->id, key, sizeof(key)) != SB_OK) {
        cp_status_set(&stt, SB_CODE_INVALID_MESSAGE, "room id is not valid");
        cb(arg, &stt, NULL);
        return;
    }
    struct create_op *op = calloc(1, sizeof(*op));
    char *val = json_text(room_to_json(room));
    if (op == NULL || val == NULL || (op->room_id = strdup(room->id)) == NULL) {
        free(op);
        free(val);
        oom(&stt);
        cb(arg, &stt, NULL);
        return;
    }
    op->cb = cb;
    op->arg = arg;
    struct txnb t;
    tb_init(&t);
    tb_cmp(&t, key, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
    tb_put(&t, key, val, strlen(val), 0);
    free(val);
    if (room->owner_id != NULL && room->owner_id[0] != '\0')
        tb_member_put(&t, room->id, room->owner_id, CP_ROLE_OWNER, room->created_at);
    ecall(s, CP_ETCD_PATH_TXN, tb_json(&t), CP_ETCD_RETRY, create_answer, op);
}

static int cmp_room_ptr(const void *a, const void *b)
{
    const struct cp_room *x = *(const struct cp_room *const *)a;
    const struct cp_room *y = *(const struct cp_room *const *)b;
    return strcmp(x->id, y->id);
}

static void s_room_list(struct cp_store *st, const struct cp_room_query *q, cp_store_rooms_fn *cb,
                        void *arg)
{
    struct estore *s = ES(st);
    struct cp_status ok;
    size_t cap = s->rooms.count, n = 0;
    const struct cp_room **all = cap ? malloc(cap * sizeof(*all)) : NULL;
    if (cap > 0 && all == NULL) {
        oom(&ok);
        cb(arg, &ok, NULL, 0, false);
        return;
    }
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&s->rooms, &it);
    while ((e = sb_map_iter_next(&s->rooms, &it)) != NULL && n < cap) {
        struct eroom *r = e->value;
        if (!r->exists)
            continue;
        if (q->after_id != NULL && q->after_id[0] != '\0' && strcmp(r->room.id, q->after_id) <= 0)
            continue;
        if (q->name_prefix != NULL && q->name_prefix[0] != '\0' &&
            strncmp(r->room.name, q->name_prefix, strlen(q->name_prefix)) != 0)
            continue;
        if (r->room.archived && !q->include_archived)
            continue;
        room_live(s, r->room.id);
        all[n++] = &r->room;
    }
    if (n > 1)
        qsort(all, n, sizeof(*all), cmp_room_ptr);
    size_t lim = q->limit > 0 ? (size_t)q->limit : n;
    bool more = n > lim;
    cp_status_ok(&ok);
    cb(arg, &ok, (const struct cp_room *const *)all, more ? lim : n, more);
    free(all);
}

struct delete_op {
    cp_store_members_fn *cb;
    void *arg;
    char *room_id;
    struct cp_member *former;
    size_t n_former;
};

static void delete_op_free(struct delete_op *op)
{
    for (size_t i = 0; i < op->n_former; i++)
        free(op->former[i].user_id);
    free(op->former);
    free(op->room_id);
    free(op);
}

static void delete_after(struct estore *s, void *ud, bool okb)
{
    (void)s;
    (void)okb;
    struct delete_op *op = ud;
    struct cp_status st;
    cp_status_ok(&st);
    op->cb(op->arg, &st, op->former, op->n_former);
    delete_op_free(op);
}

static void delete_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    struct delete_op *op = ud;
    struct cp_etcd_txn_result t;
    struct cp_status st;
    if (txn_parse(e, body, len, &t) != SB_OK) {
        set_unavail(&st, "room delete");
        op->cb(op->arg, &st, NULL, 0);
        delete_op_free(op);
        return;
    }
    bool won = t.succeeded;
    int64_t rev = t.revision;
    cp_etcd_txn_result_fini(&t);
    if (!won) {
        cp_status_set(&st, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", op->room_id);
        op->cb(op->arg, &st, NULL, 0);
        delete_op_free(op);
        return;
    }
    after_rev(s, rev, delete_after, op);
}

static void s_room_delete(struct cp_store *st, const char *room_id, cp_store_members_fn *cb,
                          void *arg)
{
    struct estore *s = ES(st);
    struct cp_status stt;
    struct eroom *r = room_live(s, room_id);
    if (r == NULL) {
        cp_status_set(&stt, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", room_id);
        cb(arg, &stt, NULL, 0);
        return;
    }
    struct delete_op *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->room_id = strdup(room_id)) == NULL ||
        (r->n_members > 0 && (op->former = calloc(r->n_members, sizeof(*op->former))) == NULL)) {
        if (op != NULL)
            delete_op_free(op);
        oom(&stt);
        cb(arg, &stt, NULL, 0);
        return;
    }
    op->cb = cb;
    op->arg = arg;
    struct txnb t;
    tb_init(&t);
    char k[CP_KEYS_MAX];
    cp_keys_room(room_id, k, sizeof(k));
    tb_cmp(&t, k, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, r->create_rev);
    tb_del(&t, k, false);
    for (size_t i = 0; i < r->n_members; i++) {
        op->former[i] = r->members[i];
        op->former[i].user_id = strdup(r->members[i].user_id);
        op->n_former = i + 1;
        if (op->former[i].user_id == NULL)
            t.failed = true;
        else if (cp_keys_user_room(r->members[i].user_id, room_id, k, sizeof(k)) == SB_OK)
            tb_del(&t, k, false);
    }
    cp_keys_members_of(room_id, k, sizeof(k));
    tb_del(&t, k, true);
    cp_keys_history_of(room_id, k, sizeof(k));
    tb_del(&t, k, true);
    cp_keys_idem_of(room_id, k, sizeof(k));
    tb_del(&t, k, true);
    cp_keys_seq(room_id, k, sizeof(k));
    tb_del(&t, k, false);
    cp_keys_sequencer(room_id, k, sizeof(k));
    tb_del(&t, k, false);
    ecall(s, CP_ETCD_PATH_TXN, tb_json(&t), CP_ETCD_RETRY, delete_answer, op);
}

/* ---------------------------------------------------------------- membership */

struct join_op {
    cp_store_join_fn *cb;
    void *arg;
    char *room_id;
    char *user_id;
    enum cp_role role;
    int64_t now;
    bool deny_private, auto_create, created;
    int tries;
};

static void join_free(struct join_op *op)
{
    free(op->room_id);
    free(op->user_id);
    free(op);
}

static void join_try(struct estore *s, struct join_op *op);

static void join_answer_now(struct estore *s, struct join_op *op, bool added)
{
    struct cp_status st;
    struct eroom *r = room_live(s, op->room_id);
    const struct cp_member *m = r ? member_get(r, op->user_id) : NULL;
    if (r == NULL || m == NULL) {
        cp_status_set(&st, SB_CODE_UNAVAILABLE, "membership of %s in %s is not visible yet",
                      op->user_id, op->room_id);
        op->cb(op->arg, &st, NULL);
    } else {
        struct cp_join_result res = {.room = &r->room,
                                     .member = m,
                                     .added = added,
                                     .created_room = op->created && added,
                                     .members = r->members,
                                     .n_members = r->n_members};
        cp_status_ok(&st);
        op->cb(op->arg, &st, &res);
    }
    join_free(op);
}

static void join_after(struct estore *s, void *ud, bool okb)
{
    (void)okb;
    join_answer_now(s, ud, true);
}

static void join_retry_after(struct estore *s, void *ud, bool okb)
{
    (void)okb;
    join_try(s, ud);
}

static void join_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    struct join_op *op = ud;
    struct cp_etcd_txn_result t;
    struct cp_status st;
    if (txn_parse(e, body, len, &t) != SB_OK) {
        set_unavail(&st, "join");
        op->cb(op->arg, &st, NULL);
        join_free(op);
        return;
    }
    bool won = t.succeeded;
    int64_t rev = t.revision;
    cp_etcd_txn_result_fini(&t);
    if (won) {
        after_rev(s, rev, join_after, op);
        return;
    }
    op->created = false;
    /* Lost a race: look again once the cache has caught up with what beat us. */
    if (++op->tries >= OP_RETRIES) {
        cp_status_set(&st, SB_CODE_UNAVAILABLE, "join of room %s kept conflicting", op->room_id);
        op->cb(op->arg, &st, NULL);
        join_free(op);
        return;
    }
    after_rev(s, rev, join_retry_after, op);
}

static void join_try(struct estore *s, struct join_op *op)
{
    struct cp_status st;
    struct eroom *r = room_live(s, op->room_id);
    char rk[CP_KEYS_MAX], mk[CP_KEYS_MAX];
    cp_keys_room(op->room_id, rk, sizeof(rk));
    if (cp_keys_member(op->room_id, op->user_id, mk, sizeof(mk)) != SB_OK) {
        cp_status_set(&st, SB_CODE_INVALID_MESSAGE, "room or user id is not valid");
        op->cb(op->arg, &st, NULL);
        join_free(op);
        return;
    }
    struct txnb t;
    tb_init(&t);
    if (r == NULL) {
        if (!op->auto_create) {
            tb_fini(&t);
            cp_status_set(&st, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", op->room_id);
            op->cb(op->arg, &st, NULL);
            join_free(op);
            return;
        }
        struct cp_room nr = {.id = op->room_id,
                             .name = op->room_id,
                             .description = "",
                             .owner_id = op->user_id,
                             .created_at = op->now,
                             .updated_at = op->now};
        char *val = json_text(room_to_json(&nr));
        if (val == NULL)
            t.failed = true;
        tb_cmp(&t, rk, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
        if (val != NULL)
            tb_put(&t, rk, val, strlen(val), 0);
        free(val);
        tb_member_put(&t, op->room_id, op->user_id, CP_ROLE_OWNER, op->now);
        op->created = true;
        ecall(s, CP_ETCD_PATH_TXN, tb_json(&t), CP_ETCD_RETRY, join_answer, op);
        return;
    }
    if (member_get(r, op->user_id) != NULL) {
        tb_fini(&t);
        join_answer_now(s, op, false);
        return;
    }
    enum sb_code code = SB_CODE_NONE;
    if (op->deny_private && r->room.is_private)
        code = SB_CODE_PERMISSION_DENIED;
    else if (r->room.archived)
        code = SB_CODE_ROOM_ARCHIVED;
    else if (r->room.max_members > 0 && r->n_members >= (size_t)r->room.max_members)
        code = SB_CODE_ROOM_FULL;
    if (code != SB_CODE_NONE) {
        tb_fini(&t);
        if (code == SB_CODE_PERMISSION_DENIED)
            cp_status_set(&st, code, "room %s is private", op->room_id);
        else if (code == SB_CODE_ROOM_ARCHIVED)
            cp_status_set(&st, code, "room %s is archived", op->room_id);
        else
            cp_status_set(&st, code, "room %s is full", op->room_id);
        op->cb(op->arg, &st, NULL);
        join_free(op);
        return;
    }
    tb_cmp(&t, rk, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, r->create_rev);
    tb_cmp(&t, mk, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
    tb_member_put(&t, op->room_id, op->user_id, op->role, op->now);
    ecall(s, CP_ETCD_PATH_TXN, tb_json(&t), CP_ETCD_RETRY, join_answer, op);
}

static void s_member_add(struct cp_store *st, const struct cp_join_req *req, cp_store_join_fn *cb,
                         void *arg)
{
    struct estore *s = ES(st);
    struct join_op *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->room_id = strdup(req->room_id)) == NULL ||
        (op->user_id = strdup(req->user_id)) == NULL) {
        if (op != NULL)
            join_free(op);
        struct cp_status stt;
        oom(&stt);
        cb(arg, &stt, NULL);
        return;
    }
    op->cb = cb;
    op->arg = arg;
    op->role = req->role;
    op->now = req->now ? req->now : sb_time_now_ms();
    op->deny_private = req->deny_private;
    op->auto_create = req->auto_create;
    join_try(s, op);
}

struct leave_op {
    cp_store_members_fn *cb;
    void *arg;
    char *room_id;
    char *user_id;
    int tries;
};

static void leave_free(struct leave_op *op)
{
    free(op->room_id);
    free(op->user_id);
    free(op);
}

static void leave_try(struct estore *s, struct leave_op *op);

static void leave_after(struct estore *s, void *ud, bool okb)
{
    (void)okb;
    struct leave_op *op = ud;
    struct cp_status st;
    cp_status_ok(&st);
    struct eroom *r = room_live(s, op->room_id);
    op->cb(op->arg, &st, r ? r->members : NULL, r ? r->n_members : 0);
    leave_free(op);
}

static void leave_retry_after(struct estore *s, void *ud, bool okb)
{
    (void)okb;
    leave_try(s, ud);
}

static void leave_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    struct leave_op *op = ud;
    struct cp_etcd_txn_result t;
    struct cp_status st;
    if (txn_parse(e, body, len, &t) != SB_OK) {
        set_unavail(&st, "leave");
        op->cb(op->arg, &st, NULL, 0);
        leave_free(op);
        return;
    }
    bool won = t.succeeded;
    int64_t rev = t.revision;
    cp_etcd_txn_result_fini(&t);
    if (won) {
        after_rev(s, rev, leave_after, op);
    } else if (++op->tries >= OP_RETRIES) {
        cp_status_set(&st, SB_CODE_UNAVAILABLE, "leave of room %s kept conflicting", op->room_id);
        op->cb(op->arg, &st, NULL, 0);
        leave_free(op);
    } else {
        after_rev(s, rev, leave_retry_after, op);
    }
}

static void leave_try(struct estore *s, struct leave_op *op)
{
    struct cp_status st;
    struct eroom *r = room_live(s, op->room_id);
    if (r == NULL) {
        cp_status_set(&st, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", op->room_id);
        op->cb(op->arg, &st, NULL, 0);
        leave_free(op);
        return;
    }
    if (member_get(r, op->user_id) == NULL) {
        cp_status_set(&st, SB_CODE_NOT_ROOM_MEMBER, "user %s is not a member of room %s",
                      op->user_id, op->room_id);
        op->cb(op->arg, &st, NULL, 0);
        leave_free(op);
        return;
    }
    char mk[CP_KEYS_MAX];
    cp_keys_member(op->room_id, op->user_id, mk, sizeof(mk));
    struct txnb t;
    tb_init(&t);
    tb_cmp(&t, mk, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_GREATER, 0);
    tb_member_del(&t, op->room_id, op->user_id);
    ecall(s, CP_ETCD_PATH_TXN, tb_json(&t), CP_ETCD_RETRY, leave_answer, op);
}

static void s_member_remove(struct cp_store *st, const char *room_id, const char *user_id,
                            cp_store_members_fn *cb, void *arg)
{
    struct estore *s = ES(st);
    struct leave_op *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->room_id = strdup(room_id)) == NULL ||
        (op->user_id = strdup(user_id)) == NULL) {
        if (op != NULL)
            leave_free(op);
        struct cp_status stt;
        oom(&stt);
        cb(arg, &stt, NULL, 0);
        return;
    }
    op->cb = cb;
    op->arg = arg;
    leave_try(s, op);
}

static void s_members_list(struct cp_store *st, const char *room_id, cp_store_members_fn *cb,
                           void *arg)
{
    struct estore *s = ES(st);
    struct cp_status stt;
    struct eroom *r = room_live(s, room_id);
    if (r == NULL) {
        cp_status_set(&stt, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", room_id);
        cb(arg, &stt, NULL, 0);
        return;
    }
    cp_status_ok(&stt);
    cb(arg, &stt, r->members, r->n_members);
}

static void s_user_rooms(struct cp_store *st, const char *user_id, cp_store_ids_fn *cb, void *arg)
{
    struct estore *s = ES(st);
    struct cp_status ok;
    cp_status_ok(&ok);
    struct idset *x = sb_map_get(&s->user_rooms, user_id);
    cb(arg, &ok, x ? (const char *const *)x->ids : NULL, x ? x->n : 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void s_user_peers(struct cp_store *st, const char *user_id, cp_store_ids_fn *cb, void *arg)
{
    struct estore *s = ES(st);
    struct cp_status ok;
    struct idset *x = sb_map_get(&s->user_rooms, user_id);
    size_t cap = 0;
    for (size_t i = 0; x != NULL && i < x->n; i++) {
        struct eroom *r = room_live(s, x->ids[i]);
        if (r != NULL)
            cap += r->n_members;
    }
    const char **ids = cap ? malloc(cap * sizeof(*ids)) : NULL;
    if (cap > 0 && ids == NULL) {
        oom(&ok);
        cb(arg, &ok, NULL, 0);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; x != NULL && i < x->n; i++) {
        struct eroom *r = room_live(s, x->ids[i]);
        for (size_t j = 0; r != NULL && j < r->n_members; j++)
            if (strcmp(r->members[j].user_id, user_id) != 0)
                ids[n++] = r->members[j].user_id;
    }
    if (n > 1)
        qsort(ids, n, sizeof(*ids), cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || strcmp(ids[u - 1], ids[i]) != 0)
            ids[u++] = ids[i];
    cp_status_ok(&ok);
    cb(arg, &ok, (const char *const *)ids, u);
    free(ids);
}

/* ---------------------------------------------------------------- messages: encoding */

/* The stored JSON of a message. `transient`: a message of a room without history
 * (max_history 0), stored only so that every replica's watch reports it; history reads,
 * message_update and history_trim's count skip it, the next commit deletes it. */
static char *message_json_t(const struct cp_message *m, bool transient)
{
    json_t *meta = json_object();
    for (size_t i = 0; i < m->n_metadata; i++)
        json_object_set_new(meta, m->metadata[i].key ? m->metadata[i].key : "",
                            json_string(m->metadata[i].value ? m->metadata[i].value : ""));
    json_t *j = json_pack("{s:s, s:I, s:s, s:I, s:s%, s:o}", "id", m->id, "seq", (json_int_t)m->seq,
                          "room_id", m->room_id, "timestamp", (json_int_t)m->timestamp, "data",
                          m->data != NULL ? m->data : "", m->data != NULL ? m->data_len : 0,
                          "metadata", meta);
    if (j == NULL)
        return NULL;
    int rc = 0;
    if (m->user_id != NULL)
        rc |= json_object_set_new(j, "user_id", json_string(m->user_id));
    if (m->thread_id != NULL)
        rc |= json_object_set_new(j, "thread_id", json_string(m->thread_id));
    /* Issue 4: left out at their zero value (the records of issue 3 read the same). */
    if (m->deleted)
        rc |= json_object_set_new(j, "deleted", json_true());
    if (m->deleted_at != 0)
        rc |= json_object_set_new(j, "deleted_at", json_integer((json_int_t)m->deleted_at));
    if (m->edited_at != 0)
        rc |= json_object_set_new(j, "edited_at", json_integer((json_int_t)m->edited_at));
    if (m->ext != NULL)
        rc |= json_object_set_new(j, "ext", json_string(m->ext));
    if (transient)
        rc |= json_object_set_new(j, "transient", json_true());
    if (rc != 0) {
        json_decref(j);
        return NULL;
    }
    return json_text(j);
}

static char *message_json(const struct cp_message *m)
{
    return message_json_t(m, false);
}

/* *transient (may be NULL): see message_json_t. */
static struct cp_message *message_parse_t(const char *v, size_t n, bool *transient)
{
    json_t *j = json_parse(v, n);
    if (j == NULL)
        return NULL;
    if (transient != NULL)
        *transient = json_is_true(json_object_get(j, "transient"));
    struct cp_message m = {0};
    m.id = (char *)jstr(j, "id");
    m.seq = jint(j, "seq");
    m.room_id = (char *)jstr(j, "room_id");
    json_t *u = json_object_get(j, "user_id");
    m.user_id = json_is_string(u) ? (char *)json_string_value(u) : NULL;
    json_t *th = json_object_get(j, "thread_id");
    m.thread_id = json_is_string(th) ? (char *)json_string_value(th) : NULL;
    m.timestamp = jint(j, "timestamp");
    json_t *d = json_object_get(j, "data");
    m.data = (char *)(json_is_string(d) ? json_string_value(d) : "null");
    m.data_len = json_is_string(d) ? json_string_length(d) : 4;
    m.deleted = json_is_true(json_object_get(j, "deleted"));
    m.deleted_at = jint(j, "deleted_at");
    m.edited_at = jint(j, "edited_at");
    json_t *ext = json_object_get(j, "ext");
    m.ext = json_is_string(ext) ? (char *)json_string_value(ext) : NULL;
    json_t *meta = json_object_get(j, "metadata");
    size_t nm = json_is_object(meta) ? json_object_size(meta) : 0;
    struct cp_kv *kvs = nm ? calloc(nm, sizeof(*kvs)) : NULL;
    if (kvs != NULL) {
        const char *k;
        json_t *val;
        size_t i = 0;
        json_object_foreach(meta, k, val)
        {
            kvs[i].key = (char *)k;
            kvs[i].value = (char *)(json_string_value(val) ? json_string_value(val) : "");
            i++;
        }
        m.metadata = kvs;
        m.n_metadata = nm;
    }
    struct cp_message *out = m.id[0] != '\0' ? cp_message_dup(&m) : NULL;
    free(kvs);
    json_decref(j);
    return out;
}

static struct cp_message *message_parse(const char *v, size_t n)
{
    return message_parse_t(v, n, NULL);
}

/* ---------------------------------------------------------------- sequencing */

static struct seqroom *seqroom_get(struct estore *s, const char *room_id, bool add)
{
    struct seqroom *sr = sb_map_get(&s->seqrooms, room_id);
    if (sr != NULL || !add)
        return sr;
    sr = calloc(1, sizeof(*sr));
    if (sr == NULL || (sr->room_id = strdup(room_id)) == NULL ||
        sb_map_put(&s->seqrooms, room_id, sr) != SB_OK) {
        if (sr != NULL)
            free(sr->room_id);
        free(sr);
        return NULL;
    }
    return sr;
}

static void idem_pend_drop(struct estore *s, struct draft *d)
{
    if (d->msg->idem_key == NULL)
        return;
    char *k = idem_map_key(d->msg->room_id, d->msg->idem_key);
    if (k != NULL && sb_map_get(&s->idem_pend, k) == d)
        sb_map_remove(&s->idem_pend, k);
    free(k);
}

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
static void draft_answer(struct estore *s, struct draft *d, const struct cp_status *st,
                         const char *forward_to)
{
    idem_pend_drop(s, d);
    struct eroom *r = room_live(s, d->msg->room_id);
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
            oom(&o);
            x->cb(x->arg, &o, NULL);
        } else {
            x->cb(x->arg, st, with_res ? &res : NULL);
        }
        draft_free(x);
    }
    draft_free(d);
}

static void drafts_fail(struct estore *s, struct draft *list, const struct cp_status *st,
                        const char *forward_to)
{
    while (list != NULL) {
        struct draft *d = list;
        list = d->next;
        d->next = NULL;
        draft_answer(s, d, st, forward_to);
    }
}

/* Makes d the answer of idempotency record e: the first id and seq; the stored message itself
 * when e has it (a previous sequencer stored it, maybe without delivering it): d then
 * delivers it again, once. SB_ENOMEM leaves d unchanged. */
static enum sb_err draft_from_idem(struct draft *d, struct idem *e)
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

/* The live idempotency record of d's key, NULL when none. */
static struct idem *idem_find(struct estore *s, const struct draft *d)
{
    if (d->msg->idem_key == NULL)
        return NULL;
    char *k = idem_map_key(d->msg->room_id, d->msg->idem_key);
    struct idem *e = k ? sb_map_get(&s->idem, k) : NULL;
    free(k);
    return e != NULL && e->expires > mono(s) ? e : NULL;
}

/* Moves the queued drafts whose key has a record now (loaded at a takeover or found by a failed
 * commit) to *hits, made into answers of their record: they are never stored again. */
static void sr_pull_hits(struct estore *s, struct seqroom *sr, struct draft **hits)
{
    struct draft **pp = &sr->pend_head, *last = NULL;
    while (*pp != NULL) {
        struct draft *d = *pp;
        struct idem *e = idem_find(s, d);
        if (e != NULL && draft_from_idem(d, e) == SB_OK) {
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

/* Messages a previous sequencer stored, delivered again (data planes drop a seq they saw), then
 * drafts answered from idempotency records; both after the barrier at `rev`, so before the
 * deliveries of this replica's next commits. */
struct replay_op {
    char *room_id;
    struct cp_message **msgs; /* ascending seq */
    size_t n;
    struct draft *hits;
};

static void replay_after(struct estore *s, void *ud, bool okb)
{
    (void)okb;
    struct replay_op *op = ud;
    struct eroom *r = room_live(s, op->room_id);
    if (op->n > 0)
        SB_LOG_INFO("cp", "messages of the previous sequencer delivered again",
                    "room=%s count=%zu first_seq=%lld last_seq=%lld", op->room_id, op->n,
                    (long long)op->msgs[0]->seq, (long long)op->msgs[op->n - 1]->seq);
    for (size_t i = 0; i < op->n; i++) {
        if (r != NULL && !s->stopped && s->hooks.redeliver != NULL)
            s->hooks.redeliver(s->hooks.ud, op->msgs[i], r->members, r->n_members);
        cp_message_free(op->msgs[i]);
    }
    struct cp_status st;
    cp_status_ok(&st);
    /* hits is newest first: answer in queue order */
    struct draft *rev = NULL;
    while (op->hits != NULL) {
        struct draft *d = op->hits;
        op->hits = d->next;
        d->next = rev;
        rev = d;
    }
    drafts_fail(s, rev, &st, NULL); /* answers each with success */
    free(op->msgs);
    free(op->room_id);
    free(op);
}

/* Runs replay_after for msgs (taken) and hits at rev; frees everything on ENOMEM after answering
 * the hits (they are stored: success). */
static void replay_at(struct estore *s, const char *room_id, int64_t rev, struct cp_message **msgs,
                      size_t n, struct draft *hits)
{
    struct replay_op *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->room_id = strdup(room_id)) == NULL) {
        free(op);
        for (size_t i = 0; i < n; i++)
            cp_message_free(msgs[i]);
        free(msgs);
        struct cp_status st;
        cp_status_ok(&st);
        drafts_fail(s, hits, &st, NULL);
        return;
    }
    op->msgs = msgs;
    op->n = n;
    op->hits = hits;
    after_rev(s, rev, replay_after, op);
}

static void sr_take_pending(struct seqroom *sr, struct draft **out)
{
    *out = sr->pend_head;
    sr->pend_head = sr->pend_tail = NULL;
}

static void sr_kick(struct estore *s, struct seqroom *sr);

static void sr_lost(struct estore *s, struct seqroom *sr, const char *why)
{
    SB_LOG_INFO("cp", "room sequencing lost", "room=%s reason=\"%s\"", sr->room_id, why);
    sr->state = SR_NONE;
    sr->fence = 0;
    if (!sr->committing && sr->pend_head != NULL)
        sr_kick(s, sr);
}

struct claim_op {
    struct seqroom *sr;
};

/* Adds the idempotency records of range result r (sb/idem/<room>/...) to the map. */
static void load_idem(struct estore *s, const struct cp_etcd_result *r)
{
    for (size_t i = 0; i < r->n_kvs; i++) {
        json_t *j = json_parse(r->kvs[i].value, r->kvs[i].value_len);
        struct cp_keys_parts p;
        if (j == NULL || cp_keys_parse(r->kvs[i].key, r->kvs[i].key_len, &p) != SB_OK) {
            json_decref(j);
            continue;
        }
        char *k = idem_map_key(p.a, jstr(j, "k"));
        if (k != NULL && sb_map_get(&s->idem, k) == NULL) {
            struct idem *e = calloc(1, sizeof(*e));
            if (e != NULL && (e->message_id = strdup(jstr(j, "id"))) != NULL) {
                e->seq = jint(j, "seq");
                e->expires = mono(s) + IDEM_TTL_MS;
                if (sb_map_put(&s->idem, k, e) != SB_OK) {
                    free(e->message_id);
                    free(e);
                }
            } else {
                free(e);
            }
        }
        free(k);
        json_decref(j);
    }
}

/* The history tail read with a claim (newest first): the messages of the previous holder's last
 * REPLAY_TXNS commits go to *out (ascending seq; they may never have been delivered), and each
 * tail message whose idempotency record was just loaded is kept with the record (delivered
 * again with its first hit). */
static void claim_tail(struct estore *s, struct seqroom *sr, const struct cp_etcd_result *idemr,
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
        msgs[i] = message_parse(histr->kvs[i].value, histr->kvs[i].value_len);
        if (histr->kvs[i].create_revision != last_rev) {
            last_rev = histr->kvs[i].create_revision;
            n_txn++;
        }
        if (n_txn <= REPLAY_TXNS)
            take = i + 1;
    }
    for (size_t i = 0; idemr != NULL && i < idemr->n_kvs; i++) {
        json_t *j = json_parse(idemr->kvs[i].value, idemr->kvs[i].value_len);
        int64_t seq = j ? jint(j, "seq") : 0;
        char *k = j ? idem_map_key(sr->room_id, jstr(j, "k")) : NULL;
        struct idem *e = k ? sb_map_get(&s->idem, k) : NULL;
        for (size_t m = 0; e != NULL && e->stored == NULL && m < n; m++)
            if (msgs[m] != NULL && msgs[m]->seq == seq && strcmp(msgs[m]->id, e->message_id) == 0)
                e->stored = cp_message_dup(msgs[m]);
        free(k);
        json_decref(j);
    }
    /* Newest first -> ascending, keeping the replayed ones. */
    struct cp_message **rp = take ? calloc(take, sizeof(*rp)) : NULL;
    size_t nr = 0;
    for (size_t i = take; i-- > 0;)
        if (rp != NULL && msgs[i] != NULL) {
            rp[nr++] = msgs[i];
            msgs[i] = NULL;
        }
    for (size_t i = 0; i < n; i++)
        cp_message_free(msgs[i]);
    free(msgs);
    *out = rp;
    *n_out = nr;
}

static void claim_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    struct seqroom *sr = ud;
    struct cp_etcd_txn_result t;
    struct cp_status st;
    struct draft *list;
    if (txn_parse(e, body, len, &t) != SB_OK) {
        sr->state = SR_NONE;
        sr_take_pending(sr, &list);
        set_unavail(&st, "sequencer claim");
        drafts_fail(s, list, &st, NULL);
        return;
    }
    size_t base = t.succeeded ? 1 : 0; /* success ops start with the put */
    const struct cp_etcd_result *keyr = t.n_ops > base ? &t.ops[base].r : NULL;
    const struct cp_etcd_result *seqr = t.n_ops > base + 1 ? &t.ops[base + 1].r : NULL;
    const struct cp_etcd_result *idemr = t.n_ops > base + 2 ? &t.ops[base + 2].r : NULL;
    const struct cp_etcd_result *histr = t.n_ops > base + 3 ? &t.ops[base + 3].r : NULL;
    const struct cp_etcd_kv *kv = keyr && keyr->n_kvs ? &keyr->kvs[0] : NULL;
    bool mine = kv != NULL && kv->lease == s->lease && kv->value_len == strlen(s->id) &&
                memcmp(kv->value, s->id, kv->value_len) == 0;
    if (!mine) {
        sr->state = SR_NONE;
        sr_take_pending(sr, &list);
        char holder[SB_IDENT_MAX + 1] = "";
        if (kv != NULL && kv->value_len <= SB_IDENT_MAX) {
            memcpy(holder, kv->value, kv->value_len);
            holder[kv->value_len] = '\0';
        }
        cp_etcd_txn_result_fini(&t);
        if (holder[0] != '\0') {
            cp_status_set(&st, SB_CODE_UNAVAILABLE, "not_sequencer: room %s is sequenced by %s",
                          sr->room_id, holder);
            drafts_fail(s, list, &st, holder);
        } else {
            cp_status_set(&st, SB_CODE_UNAVAILABLE, "room %s sequencer changed: retry",
                          sr->room_id);
            drafts_fail(s, list, &st, NULL);
        }
        return;
    }
    sr->fence = kv->create_revision;
    sr->last_seq = seqr && seqr->n_kvs ? strtoll(seqr->kvs[0].value, NULL, 10) : 0;
    if (idemr != NULL)
        load_idem(s, idemr);
    struct cp_message **replay = NULL;
    size_t n_replay = 0;
    if (histr != NULL)
        claim_tail(s, sr, idemr, histr, &replay, &n_replay);
    sr->state = SR_HELD;
    SB_LOG_INFO("cp", "room sequencing taken", "room=%s last_seq=%lld fence=%lld", sr->room_id,
                (long long)sr->last_seq, (long long)sr->fence);
    int64_t rev = t.revision;
    cp_etcd_txn_result_fini(&t);
    /* Publishes queued while the claim was in flight were checked against the records known
     * then (none of this room's yet): check them again. */
    struct draft *hits = NULL;
    sr_pull_hits(s, sr, &hits);
    replay_at(s, sr->room_id, rev, replay, n_replay, hits);
    sr_kick(s, sr);
}

static void sr_claim(struct estore *s, struct seqroom *sr)
{
    struct eroom *r = room_live(s, sr->room_id);
    struct cp_status st;
    struct draft *list;
    if (r == NULL || s->lease == 0) {
        sr_take_pending(sr, &list);
        if (r == NULL)
            cp_status_set(&st, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", sr->room_id);
        else
            cp_status_set(&st, SB_CODE_UNAVAILABLE, "this replica has no etcd lease right now");
        drafts_fail(s, list, &st, NULL);
        return;
    }
    sr->state = SR_CLAIMING;
    sr->room_rev = r->create_rev;
    char k[CP_KEYS_MAX], sk[CP_KEYS_MAX], ik[CP_KEYS_MAX], hk[CP_KEYS_MAX];
    cp_keys_sequencer(sr->room_id, k, sizeof(k));
    cp_keys_seq(sr->room_id, sk, sizeof(sk));
    cp_keys_idem_of(sr->room_id, ik, sizeof(ik));
    cp_keys_history_of(sr->room_id, hk, sizeof(hk));
    struct txnb t;
    tb_init(&t);
    tb_cmp(&t, k, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
    tb_put(&t, k, s->id, strlen(s->id), s->lease);
    tb_get(&t, k, false);
    tb_get(&t, sk, false);
    tb_get(&t, ik, true);
    tb_get_tail(&t, tb_succ(&t), hk);
    tb_fail_get(&t, k, false);
    tb_fail_get(&t, sk, false);
    tb_fail_get(&t, ik, true);
    if (t.nf < sizeof(t.fail) / sizeof(t.fail[0]))
        tb_get_tail(&t, &t.fail[t.nf++], hk);
    else
        t.failed = true;
    ecall(s, CP_ETCD_PATH_TXN, tb_json(&t), CP_ETCD_RETRY, claim_answer, sr);
}

struct commit_op {
    struct seqroom *sr;
    struct draft *list;
    int64_t new_last;
};

static void commit_after(struct estore *s, void *ud, bool okb)
{
    (void)okb;
    struct commit_op *op = ud;
    struct cp_status st;
    cp_status_ok(&st);
    drafts_fail(s, op->list, &st, NULL); /* answers each with success */
    free(op);
}

static void idem_record(struct estore *s, const struct draft *d)
{
    if (d->msg->idem_key == NULL)
        return;
    char *k = idem_map_key(d->msg->room_id, d->msg->idem_key);
    if (k == NULL || sb_map_get(&s->idem, k) != NULL) {
        free(k);
        return;
    }
    struct idem *e = calloc(1, sizeof(*e));
    if (e != NULL && (e->message_id = strdup(d->msg->id)) != NULL) {
        e->seq = d->msg->seq;
        e->expires = mono(s) + IDEM_TTL_MS;
        if (sb_map_put(&s->idem, k, e) == SB_OK)
            e = NULL;
    }
    if (e != NULL) {
        free(e->message_id);
        free(e);
    }
    free(k);
}

/* True when range result r has a record at d's key whose stored key is another one (a hash
 * collision). */
static bool idem_collides(const struct draft *d, const struct cp_etcd_result *r)
{
    char hash[17], ik[CP_KEYS_MAX];
    cp_keys_idem_hash(d->msg->idem_key, hash);
    if (r == NULL || cp_keys_idem(d->msg->room_id, hash, ik, sizeof(ik)) != SB_OK)
        return false;
    for (size_t i = 0; i < r->n_kvs; i++) {
        if (r->kvs[i].key_len != strlen(ik) || memcmp(r->kvs[i].key, ik, r->kvs[i].key_len) != 0)
            continue;
        json_t *j = json_parse(r->kvs[i].value, r->kvs[i].value_len);
        bool other = j == NULL || strcmp(jstr(j, "k"), d->msg->idem_key) != 0;
        json_decref(j);
        return other;
    }
    return false;
}

/* A commit failed on an idempotency compare: drafts with a record are answered from it (after
 * the barrier at rev), colliding keys fail, the rest go back to the front of the queue. */
static void commit_split(struct estore *s, struct seqroom *sr, struct draft *list,
                         const struct cp_etcd_result *idemr, int64_t rev, bool seq_moved)
{
    struct draft *hits = NULL, *keep = NULL, *keep_last = NULL;
    size_t n_hits = 0, n_collide = 0;
    while (list != NULL) {
        struct draft *d = list;
        list = d->next;
        d->next = NULL;
        d->msg->seq = 0;
        struct idem *e = idem_find(s, d);
        if (e != NULL && draft_from_idem(d, e) == SB_OK) {
            d->next = hits;
            hits = d;
            n_hits++;
        } else if (d->msg->idem_key != NULL && idem_collides(d, idemr)) {
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
        drafts_fail(s, keep, &st, NULL);
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

static void commit_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    struct commit_op *op = ud;
    struct seqroom *sr = op->sr;
    struct cp_etcd_txn_result t;
    struct cp_status st;
    sr->committing = false;
    if (txn_parse(e, body, len, &t) != SB_OK) {
        /* Outcome unknown: re-claim (which re-reads sb/seq) before the next commit. */
        sr->state = SR_NONE;
        set_unavail(&st, "message store");
        drafts_fail(s, op->list, &st, NULL);
        free(op);
        sr_kick(s, sr);
        return;
    }
    if (!t.succeeded) {
        const struct cp_etcd_result *keyr = t.n_ops > 0 ? &t.ops[0].r : NULL;
        const struct cp_etcd_result *idemr = t.n_ops > 1 ? &t.ops[1].r : NULL;
        const struct cp_etcd_result *roomr = t.n_ops > 2 ? &t.ops[2].r : NULL;
        int64_t stored = stored_seq(t.n_ops > 3 ? &t.ops[3].r : NULL);
        const struct cp_etcd_kv *kv = keyr && keyr->n_kvs ? &keyr->kvs[0] : NULL;
        const struct cp_etcd_kv *rkv = roomr && roomr->n_kvs ? &roomr->kvs[0] : NULL;
        if (kv == NULL || kv->create_revision != sr->fence) {
            sr->state = SR_NONE;
            cp_status_set(&st, SB_CODE_UNAVAILABLE, "room %s sequencer moved: retry", sr->room_id);
        } else if (rkv == NULL || rkv->create_revision != sr->room_rev) {
            cp_status_set(&st, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", sr->room_id);
            sr->state = SR_NONE;
        } else if (stored < sr->last_seq) {
            /* The stored seq went back: not ours to explain. Re-claim re-reads it. */
            sr->state = SR_NONE;
            cp_status_set(&st, SB_CODE_UNAVAILABLE, "room %s sequence moved back: retry",
                          sr->room_id);
        } else {
            /* An idempotency key of the batch has a record already, or an earlier commit of
             * ours landed although its answer was lost (the stored seq is ahead): continue
             * after the stored seq, answer drafts with a record from it and put the others
             * back in front of the queue. */
            int64_t rev = t.revision;
            bool seq_moved = stored > sr->last_seq;
            if (seq_moved) {
                SB_LOG_WARN("cp", "an earlier commit landed unanswered: continuing after it",
                            "room=%s believed=%lld stored=%lld", sr->room_id,
                            (long long)sr->last_seq, (long long)stored);
                sr->last_seq = stored;
            }
            if (idemr != NULL)
                load_idem(s, idemr);
            commit_split(s, sr, op->list, idemr, rev, seq_moved);
            cp_etcd_txn_result_fini(&t);
            free(op);
            sr_kick(s, sr);
            return;
        }
        cp_etcd_txn_result_fini(&t);
        drafts_fail(s, op->list, &st, NULL);
        free(op);
        sr_kick(s, sr);
        return;
    }
    int64_t rev = t.revision;
    cp_etcd_txn_result_fini(&t);
    sr->last_seq = op->new_last;
    for (struct draft *d = op->list; d != NULL; d = d->next)
        idem_record(s, d);
    after_rev(s, rev, commit_after, op);
    sr_kick(s, sr);
}

static void sr_commit(struct estore *s, struct seqroom *sr)
{
    struct commit_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return; /* retried on the next publish */
    op->sr = sr;
    /* Take up to COMMIT_MAX_MSGS / COMMIT_MAX_BYTES from the queue. */
    struct draft **tail = &op->list;
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
    int max_history = op->list->max_history;
    char k[CP_KEYS_MAX], rk[CP_KEYS_MAX], sk[CP_KEYS_MAX], hk[CP_KEYS_MAX];
    cp_keys_sequencer(sr->room_id, k, sizeof(k));
    cp_keys_room(sr->room_id, rk, sizeof(rk));
    cp_keys_seq(sr->room_id, sk, sizeof(sk));
    struct txnb t;
    tb_init(&t);
    tb_cmp(&t, k, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, sr->fence);
    tb_cmp(&t, rk, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, sr->room_rev);
    /* The stored last seq must be the one this sequencer believes: a commit whose answer was
     * lost (a leader change, a retry on another endpoint) can never make a later one reuse its
     * seqs and overwrite the messages it stored. */
    char last[32];
    snprintf(last, sizeof(last), "%lld", (long long)sr->last_seq);
    if (sr->last_seq == 0)
        tb_cmp(&t, sk, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
    else
        tb_cmp_value(&t, sk, last);
    int64_t seq = sr->last_seq;
    for (struct draft *d = op->list; d != NULL; d = d->next) {
        d->msg->seq = ++seq;
        {
            char *v = message_json_t(d->msg, max_history <= 0);
            if (v == NULL || cp_keys_history(sr->room_id, seq, hk, sizeof(hk)) != SB_OK)
                t.failed = true;
            else
                tb_put(&t, hk, v, strlen(v), 0);
            free(v);
        }
        if (d->msg->idem_key != NULL) {
            /* The record goes in the same fenced txn, which fails if the key has one already
             * (whoever wrote it): a key is never stored twice. */
            char hash[17], ik[CP_KEYS_MAX];
            cp_keys_idem_hash(d->msg->idem_key, hash);
            char *v = json_text(json_pack("{s:s, s:s, s:I}", "k", d->msg->idem_key, "id",
                                          d->msg->id, "seq", (json_int_t)seq));
            if (v == NULL || cp_keys_idem(sr->room_id, hash, ik, sizeof(ik)) != SB_OK) {
                t.failed = true;
            } else {
                tb_cmp(&t, ik, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
                tb_put(&t, ik, v, strlen(v), s->idem_lease != 0 ? s->idem_lease : s->lease);
            }
            free(v);
        }
    }
    op->new_last = seq;
    char sv[32];
    snprintf(sv, sizeof(sv), "%lld", (long long)seq);
    tb_put(&t, sk, sv, strlen(sv), 0);
    if (max_history <= 0 && sr->last_seq > 0) {
        /* The previous commit's transient messages (see message_json_t). */
        char from[CP_KEYS_MAX];
        cp_keys_history(sr->room_id, 0, from, sizeof(from));
        cp_keys_history(sr->room_id, sr->last_seq + 1, hk, sizeof(hk));
        tb_del_range(&t, from, hk);
    } else if (max_history > 0 && seq > max_history) {
        char from[CP_KEYS_MAX];
        cp_keys_history(sr->room_id, 0, from, sizeof(from));
        cp_keys_history(sr->room_id, seq - max_history + 1, hk, sizeof(hk));
        tb_del_range(&t, from, hk);
    }
    char ik[CP_KEYS_MAX];
    cp_keys_idem_of(sr->room_id, ik, sizeof(ik));
    tb_fail_get(&t, k, false);
    tb_fail_get(&t, ik, true);
    tb_fail_get(&t, rk, false);
    tb_fail_get(&t, sk, false);
    sr->committing = true;
    ecall(s, CP_ETCD_PATH_TXN, tb_json(&t), CP_ETCD_RETRY, commit_answer, op);
}

static void sr_kick(struct estore *s, struct seqroom *sr)
{
    if (sr->pend_head == NULL || sr->committing)
        return;
    if (sr->state == SR_NONE) {
        struct holder *h = sb_map_get(&s->holders, sr->room_id);
        if (h != NULL && h->cp_id != NULL && strcmp(h->cp_id, s->id) != 0) {
            struct draft *list;
            struct cp_status st;
            sr_take_pending(sr, &list);
            cp_status_set(&st, SB_CODE_UNAVAILABLE, "not_sequencer: room %s is sequenced by %s",
                          sr->room_id, h->cp_id);
            char holder[SB_IDENT_MAX + 1];
            snprintf(holder, sizeof(holder), "%s", h->cp_id);
            drafts_fail(s, list, &st, holder);
            return;
        }
        sr_claim(s, sr);
    } else if (sr->state == SR_HELD) {
        sr_commit(s, sr);
    }
}

static void s_message_append(struct cp_store *st, const struct cp_message *draft,
                             const char *require_member, int max_history, cp_store_append_fn *cb,
                             void *arg)
{
    struct estore *s = ES(st);
    struct cp_status stt;
    struct eroom *r = room_live(s, draft->room_id);
    if (r == NULL) {
        cp_status_set(&stt, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", draft->room_id);
        cb(arg, &stt, NULL);
        return;
    }
    if (r->room.archived) {
        cp_status_set(&stt, SB_CODE_ROOM_ARCHIVED, "room %s is archived", draft->room_id);
        cb(arg, &stt, NULL);
        return;
    }
    if (require_member != NULL && member_get(r, require_member) == NULL) {
        cp_status_set(&stt, SB_CODE_NOT_ROOM_MEMBER, "user %s is not a member of room %s",
                      require_member, draft->room_id);
        cb(arg, &stt, NULL);
        return;
    }
    struct draft *d = calloc(1, sizeof(*d));
    if (d == NULL || (d->msg = cp_message_dup(draft)) == NULL) {
        free(d);
        oom(&stt);
        cb(arg, &stt, NULL);
        return;
    }
    d->cb = cb;
    d->arg = arg;
    d->max_history = max_history;
    if (draft->idem_key != NULL) {
        char *k = idem_map_key(draft->room_id, draft->idem_key);
        struct idem *e = idem_find(s, d);
        if (e != NULL) {
            free(k);
            if (draft_from_idem(d, e) != SB_OK) {
                draft_free(d);
                oom(&stt);
                cb(arg, &stt, NULL);
                return;
            }
            cp_status_ok(&stt);
            draft_answer(s, d, &stt, NULL);
            return;
        }
        struct draft *first = k ? sb_map_get(&s->idem_pend, k) : NULL;
        if (first != NULL) {
            d->next = first->dups;
            first->dups = d;
            free(k);
            return;
        }
        if (k == NULL || sb_map_put(&s->idem_pend, k, d) != SB_OK) {
            free(d->msg->idem_key); /* cannot track it: publish without dedup */
            d->msg->idem_key = NULL;
        }
        free(k);
    }
    struct seqroom *sr = seqroom_get(s, draft->room_id, true);
    if (sr == NULL) {
        idem_pend_drop(s, d);
        draft_free(d);
        oom(&stt);
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

/* ---------------------------------------------------------------- history */

struct hist_op {
    cp_store_history_fn *cb;
    void *arg;
    struct cp_history_query q;
    char *room_id;
    char *thread_id;
};

static void hist_free(struct hist_op *op)
{
    free(op->room_id);
    free(op->thread_id);
    free(op);
}

static void hist_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    struct hist_op *op = ud;
    struct cp_status st;
    struct cp_etcd_result r;
    if (e != SB_OK || cp_etcd_json_parse_result(body, len, &r) != SB_OK) {
        set_unavail(&st, "history");
        op->cb(op->arg, &st, NULL);
        hist_free(op);
        return;
    }
    struct cp_history h;
    cp_history_init(&h);
    for (size_t i = 0; i < r.n_kvs; i++) {
        bool transient = false;
        struct cp_message *m = message_parse_t(r.kvs[i].value, r.kvs[i].value_len, &transient);
        if (m == NULL || transient) {
            cp_message_free(m);
            continue;
        }
        if (h.count == 0)
            h.last_seq = m->seq - 1;
        if (m->seq != cp_history_next_seq(&h) || cp_history_append(&h, m, SIZE_MAX) != SB_OK)
            cp_message_free(m);
    }
    cp_etcd_result_fini(&r);
    struct eroom *room = room_live(s, op->room_id);
    if (room != NULL && room->last_seq > h.last_seq)
        h.last_seq = room->last_seq;
    const struct cp_message **msgs = NULL;
    size_t n = 0;
    bool gap = false;
    if (cp_history_query(&h, &op->q, &msgs, &n, &gap) != SB_OK) {
        oom(&st);
        op->cb(op->arg, &st, NULL);
    } else {
        struct cp_history_result res = {msgs, n, gap, h.last_seq};
        cp_status_ok(&st);
        op->cb(op->arg, &st, &res);
    }
    free(msgs);
    cp_history_fini(&h);
    hist_free(op);
}

static void s_history_query(struct cp_store *st, const struct cp_history_query *q,
                            const char *require_member, cp_store_history_fn *cb, void *arg)
{
    struct estore *s = ES(st);
    struct cp_status stt;
    struct eroom *r = room_live(s, q->room_id);
    if (r == NULL) {
        cp_status_set(&stt, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", q->room_id);
        cb(arg, &stt, NULL);
        return;
    }
    if (require_member != NULL && member_get(r, require_member) == NULL) {
        cp_status_set(&stt, SB_CODE_NOT_ROOM_MEMBER, "user %s is not a member of room %s",
                      require_member, q->room_id);
        cb(arg, &stt, NULL);
        return;
    }
    struct hist_op *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->room_id = strdup(q->room_id)) == NULL ||
        (q->thread_id != NULL && (op->thread_id = strdup(q->thread_id)) == NULL)) {
        if (op != NULL)
            hist_free(op);
        oom(&stt);
        cb(arg, &stt, NULL);
        return;
    }
    op->cb = cb;
    op->arg = arg;
    op->q = *q;
    op->q.room_id = op->room_id;
    op->q.thread_id = op->thread_id;
    char k[CP_KEYS_MAX], end[CP_KEYS_MAX];
    size_t en;
    cp_keys_history_of(q->room_id, k, sizeof(k));
    cp_keys_range_end(k, strlen(k), end, sizeof(end), &en);
    struct cp_etcd_range_req rq = {.key = cp_etcd_str(k), .range_end = {end, en}};
    char *json = NULL;
    if (cp_etcd_json_range(&rq, &json) != SB_OK)
        json = NULL;
    ecall(s, CP_ETCD_PATH_RANGE, json, CP_ETCD_RETRY, hist_answer, op);
}

/* ---------------------------------------------------------------- issue 4: documents */

/* Write markers. A compare-guarded txn sent with CP_ETCD_RETRY may be applied, lose its answer
 * (leader change, endpoint failure) and be sent again, whose compares then fail on the
 * txn's own changes: a false CONFLICT, or an edit applied twice. So these txns also put a
 * unique marker key (sb/txn/<cp_id>/<n>, on the short idempotency lease) and read it back in
 * their failure branch: a failed compare with the marker present means the first attempt
 * landed, at the marker's mod_revision. Must be the txn's only failure op. */
static void tb_marker(struct estore *s, struct txnb *t)
{
    char k[CP_KEYS_MAX];
    if (cp_keys_txn(s->id, s->txn_marker++, k, sizeof(k)) != SB_OK) {
        t->failed = true;
        return;
    }
    tb_put(t, k, "", 0, s->idem_lease != 0 ? s->idem_lease : s->lease);
    tb_fail_get(t, k, false);
}

/* For a txn with tb_marker: true when it is applied (succeeded, or an earlier attempt of it
 * landed), with *rev its revision. */
static bool txn_applied(const struct cp_etcd_txn_result *t, int64_t *rev)
{
    *rev = t->revision;
    if (t->succeeded)
        return true;
    const struct cp_etcd_kv *kv =
        t->n_ops > 0 && t->ops[0].r.n_kvs > 0 ? &t->ops[0].r.kvs[0] : NULL;
    if (kv == NULL)
        return false;
    SB_LOG_INFO("cp", "a write was retried after it landed: answered from its marker",
                "revision=%lld", (long long)kv->mod_revision);
    *rev = kv->mod_revision;
    return true;
}

/* Documents (sb/doc/<key>) are not cached: doc_get and doc_list are range reads straight from
 * etcd (linearizable: they see every write answered before they started, on any replica);
 * doc_write is one txn answered after the barrier (so this replica's observer has seen it). */

#define DOC_MAX_OPS     64
#define DOC_MAX_TXN_OPS 128 /* etcd's --max-txn-ops default */
#define RMW_RETRIES     8
#define HIST_PAGE       64

static void set_bad_key(struct cp_status *st, const char *what, const char *key)
{
    cp_status_set(st, SB_CODE_INVALID_MESSAGE, "document %s \"%.64s\" is not valid", what,
                  key ? key : "(null)");
}

/* A range answer's documents: etcd keys minus "sb/doc/". */
struct docread_op {
    cp_store_doc_fn *doc_cb;
    cp_store_docs_fn *docs_cb;
    void *arg;
};

static void docread_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    (void)s;
    struct docread_op *op = ud;
    struct cp_status st;
    struct cp_etcd_result r;
    if (e != SB_OK || cp_etcd_json_parse_result(body, len, &r) != SB_OK) {
        set_unavail(&st, "document read");
        if (op->doc_cb != NULL)
            op->doc_cb(op->arg, &st, NULL);
        else
            op->docs_cb(op->arg, &st, NULL, 0);
        free(op);
        return;
    }
    size_t skip = strlen(CP_KEYS_DOC);
    struct cp_doc *docs = r.n_kvs ? calloc(r.n_kvs, sizeof(*docs)) : NULL;
    size_t n = 0;
    if (r.n_kvs > 0 && docs == NULL) {
        oom(&st);
    } else {
        cp_status_ok(&st);
        for (size_t i = 0; i < r.n_kvs; i++) {
            const struct cp_etcd_kv *kv = &r.kvs[i];
            if (kv->key_len <= skip)
                continue;
            docs[n++] = (struct cp_doc){.key = kv->key + skip,
                                        .value = kv->value,
                                        .len = kv->value_len,
                                        .version = kv->mod_revision};
        }
    }
    if (op->doc_cb != NULL)
        op->doc_cb(op->arg, &st, st.code == SB_CODE_NONE && n > 0 ? &docs[0] : NULL);
    else
        op->docs_cb(op->arg, &st, st.code == SB_CODE_NONE ? docs : NULL,
                    st.code == SB_CODE_NONE ? n : 0);
    free(docs);
    cp_etcd_result_fini(&r);
    free(op);
}

static void doc_read(struct estore *s, const char *ekey, bool prefix, struct docread_op *op)
{
    char end[CP_KEYS_DOC_MAX];
    size_t en = 0;
    struct cp_etcd_range_req q = {.key = cp_etcd_str(ekey)};
    if (prefix && cp_keys_range_end(ekey, strlen(ekey), end, sizeof(end), &en) == SB_OK)
        q.range_end = (struct cp_etcd_bytes){end, en};
    char *json = NULL;
    if (cp_etcd_json_range(&q, &json) != SB_OK)
        json = NULL;
    ecall(s, CP_ETCD_PATH_RANGE, json, CP_ETCD_RETRY, docread_answer, op);
}

static void s_doc_get(struct cp_store *st, const char *key, cp_store_doc_fn *cb, void *arg)
{
    struct estore *s = ES(st);
    struct cp_status stt;
    char k[CP_KEYS_DOC_MAX];
    if (cp_keys_doc(key, k, sizeof(k)) != SB_OK) {
        set_bad_key(&stt, "key", key);
        cb(arg, &stt, NULL);
        return;
    }
    struct docread_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        oom(&stt);
        cb(arg, &stt, NULL);
        return;
    }
    op->doc_cb = cb;
    op->arg = arg;
    doc_read(s, k, false, op);
}

static void s_doc_list(struct cp_store *st, const char *prefix, cp_store_docs_fn *cb, void *arg)
{
    struct estore *s = ES(st);
    struct cp_status stt;
    char k[CP_KEYS_DOC_MAX];
    if (cp_keys_doc_prefix(prefix, k, sizeof(k)) != SB_OK) {
        set_bad_key(&stt, "prefix", prefix);
        cb(arg, &stt, NULL, 0);
        return;
    }
    struct docread_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        oom(&stt);
        cb(arg, &stt, NULL, 0);
        return;
    }
    op->docs_cb = cb;
    op->arg = arg;
    doc_read(s, k, true, op);
}

struct docwrite_op {
    cp_store_write_fn *cb;
    void *arg;
    int64_t *versions;
    size_t n;
    char *first_expect; /* the first key with an expectation, for the CONFLICT message */
    int64_t rev;
};

static void docwrite_free(struct docwrite_op *op)
{
    free(op->versions);
    free(op->first_expect);
    free(op);
}

static void docwrite_after(struct estore *s, void *ud, bool okb)
{
    (void)s;
    (void)okb;
    struct docwrite_op *op = ud;
    struct cp_status st;
    cp_status_ok(&st);
    op->cb(op->arg, &st, op->versions, op->n);
    docwrite_free(op);
}

static void docwrite_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    struct docwrite_op *op = ud;
    struct cp_etcd_txn_result t;
    struct cp_status st;
    if (e == SB_EPROTO) {
        /* etcd refused the request itself (a bug of ours: keys, sizes). */
        struct cp_etcd_error er;
        if (cp_etcd_json_parse_error(body, len, &er) == SB_OK) {
            cp_status_set(&st, SB_CODE_INTERNAL, "etcd refused the document write: %s", er.message);
            cp_etcd_error_fini(&er);
        } else {
            cp_status_set(&st, SB_CODE_INTERNAL, "etcd refused the document write");
        }
        op->cb(op->arg, &st, NULL, 0);
        docwrite_free(op);
        return;
    }
    if (txn_parse(e, body, len, &t) != SB_OK) {
        set_unavail(&st, "document write");
        op->cb(op->arg, &st, NULL, 0);
        docwrite_free(op);
        return;
    }
    int64_t rev;
    bool won = txn_applied(&t, &rev);
    cp_etcd_txn_result_fini(&t);
    if (!won) {
        cp_status_set(&st, SB_CODE_CONFLICT, "%s changed concurrently",
                      op->first_expect ? op->first_expect : "a document");
        op->cb(op->arg, &st, NULL, 0);
        docwrite_free(op);
        return;
    }
    for (size_t i = 0; i < op->n; i++)
        if (op->versions[i] != 0)
            op->versions[i] = rev;
    after_rev(s, rev, docwrite_after, op);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Deletes [from, to) minus the keys `skip` (sorted, all inside the range): etcd refuses a txn
 * whose put falls inside one of its deletes, so the range is cut around each key put later in
 * the same write (the put overwrites it anyway: the same final state as applying the ops in
 * order). */
static void tb_del_except(struct txnb *t, const char *from, const char *to, size_t to_n,
                          char **skip, size_t n_skip)
{
    struct cp_etcd_bytes lo = tb_str(t, from);
    for (size_t i = 0; i <= n_skip && !t->failed; i++) {
        struct cp_etcd_bytes hi =
            i < n_skip ? tb_str(t, skip[i]) : tb_bytes(t, to, to_n); /* exclusive */
        size_t m = lo.n < hi.n ? lo.n : hi.n;
        int c = memcmp(lo.p, hi.p, m);
        bool empty = c > 0 || (c == 0 && lo.n >= hi.n);
        if (!empty) {
            struct cp_etcd_op *op = tb_succ(t);
            if (op == NULL)
                return;
            op->type = CP_ETCD_OP_DELETE;
            op->u.del.key = lo;
            op->u.del.range_end = hi;
        }
        if (i < n_skip)
            lo = tb_bytes(t, skip[i], strlen(skip[i]) + 1); /* the key + "\0": just after it */
    }
}

static void s_doc_write(struct cp_store *st, const struct cp_doc_op *ops, size_t n,
                        cp_store_write_fn *cb, void *arg)
{
    struct estore *s = ES(st);
    struct cp_status stt;
    if (n == 0) {
        cp_status_ok(&stt);
        cb(arg, &stt, NULL, 0);
        return;
    }
    if (n > DOC_MAX_OPS) {
        cp_status_set(&stt, SB_CODE_INVALID_MESSAGE, "a document write takes at most %d ops",
                      DOC_MAX_OPS);
        cb(arg, &stt, NULL, 0);
        return;
    }
    char **ek = calloc(n, sizeof(*ek));
    bool *keep = calloc(n, sizeof(*keep));
    char **skip = calloc(n, sizeof(*skip));
    struct docwrite_op *op = calloc(1, sizeof(*op));
    if (op != NULL)
        op->versions = calloc(n, sizeof(*op->versions));
    bool bad = false,
         nomem = ek == NULL || keep == NULL || skip == NULL || op == NULL || op->versions == NULL;
    for (size_t i = 0; !nomem && !bad && i < n; i++) {
        char k[CP_KEYS_DOC_MAX];
        enum sb_err e = ops[i].prefix ? cp_keys_doc_prefix(ops[i].key, k, sizeof(k))
                                      : cp_keys_doc(ops[i].key, k, sizeof(k));
        if (e != SB_OK || (ops[i].prefix && ops[i].value != NULL)) {
            set_bad_key(&stt, ops[i].prefix ? "prefix" : "key", ops[i].key);
            bad = true;
        } else if ((ek[i] = strdup(k)) == NULL) {
            nomem = true;
        }
    }
    struct txnb t;
    tb_init(&t);
    if (!nomem && !bad) {
        /* An op touched again by a later one (same key, or under a later prefix delete) is
         * superseded: only the last write of a key goes to etcd (it takes no duplicates). */
        for (size_t i = 0; i < n; i++) {
            keep[i] = true;
            for (size_t j = i + 1; keep[i] && !ops[i].prefix && j < n; j++)
                if (ops[j].prefix ? has_prefix(ek[i], ek[j]) : strcmp(ek[i], ek[j]) == 0)
                    keep[i] = false;
        }
        for (size_t i = 0; i < n; i++) {
            if (!ops[i].prefix && ops[i].expect >= 0) {
                if (op->first_expect == NULL)
                    op->first_expect = strdup(ops[i].key);
                if (ops[i].expect == 0)
                    tb_cmp(&t, ek[i], CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
                else
                    tb_cmp(&t, ek[i], CP_ETCD_CMP_MOD, CP_ETCD_CMP_EQUAL, ops[i].expect);
            }
            op->versions[i] = ops[i].value != NULL ? 1 : 0; /* set to the revision on success */
            if (!keep[i])
                continue;
            if (ops[i].prefix) {
                size_t ns = 0;
                for (size_t j = i + 1; j < n; j++)
                    if (keep[j] && !ops[j].prefix && ops[j].value != NULL &&
                        has_prefix(ek[j], ek[i]))
                        skip[ns++] = ek[j];
                if (ns > 1)
                    qsort(skip, ns, sizeof(*skip), cmp_cstr);
                char end[CP_KEYS_DOC_MAX];
                size_t en;
                if (cp_keys_range_end(ek[i], strlen(ek[i]), end, sizeof(end), &en) != SB_OK)
                    t.failed = true;
                else
                    tb_del_except(&t, ek[i], end, en, skip, ns);
            } else if (ops[i].value == NULL) {
                tb_del(&t, ek[i], false);
            } else {
                tb_put(&t, ek[i], ops[i].value, strlen(ops[i].value), 0);
            }
        }
        if (t.ns + 1 > DOC_MAX_TXN_OPS) {
            cp_status_set(&stt, SB_CODE_INVALID_MESSAGE,
                          "document write too large: %zu etcd operations (at most %d)", t.ns + 1,
                          DOC_MAX_TXN_OPS);
            bad = true;
        } else if (t.nc > 0) {
            tb_marker(s, &t);
        }
    }
    for (size_t i = 0; ek != NULL && i < n; i++)
        free(ek[i]);
    free(ek);
    free(keep);
    free(skip);
    if (nomem || bad) {
        tb_fini(&t);
        if (op != NULL)
            docwrite_free(op);
        if (nomem)
            oom(&stt);
        cb(arg, &stt, NULL, 0);
        return;
    }
    op->cb = cb;
    op->arg = arg;
    op->n = n;
    ecall(s, CP_ETCD_PATH_TXN, tb_json(&t), CP_ETCD_RETRY, docwrite_answer, op);
}

/* ---------------------------------------------------------------- issue 4: updates */

/* room_update, member_set_role and message_update read the record straight from etcd, apply
 * the change and write it back with a txn comparing the record's mod_revision: a concurrent
 * change fails the compare and the whole step (read, edit, write) runs again, at most
 * RMW_RETRIES times, then answers UNAVAILABLE "busy". Writers are answered after the barrier
 * (the cache, and this replica's observer, have seen the write). history_trim reads the
 * room's history in pages to find the cut and deletes below it in one range delete. None of
 * them writes sb/seq or the sequencer key: the room's sequencer is never disturbed. */

/* A read-only txn's op i result (NULL when absent). */
static const struct cp_etcd_result *txn_op(const struct cp_etcd_txn_result *t, size_t i)
{
    return i < t->n_ops ? &t->ops[i].r : NULL;
}

static const struct cp_etcd_kv *first_kv(const struct cp_etcd_result *r)
{
    return r != NULL && r->n_kvs > 0 ? &r->kvs[0] : NULL;
}

static void set_busy(struct cp_status *st, const char *what, const char *id)
{
    cp_status_set(st, SB_CODE_UNAVAILABLE, "%s %s is busy: it changed concurrently %d times", what,
                  id, RMW_RETRIES);
}

/* ---- room_update */

struct ru_op {
    cp_store_room_fn *cb;
    void *arg;
    cp_room_edit_fn *edit;
    void *edit_arg;
    char *room_id;
    struct cp_room *room; /* the edited copy, once written */
    int tries;
};

static void ru_free(struct ru_op *op)
{
    if (op->room != NULL)
        cp_room_free(op->room, true);
    free(op->room_id);
    free(op);
}

static void ru_fail(struct ru_op *op, const struct cp_status *st)
{
    op->cb(op->arg, st, NULL);
    ru_free(op);
}

static void ru_try(struct estore *s, struct ru_op *op);

static void ru_after(struct estore *s, void *ud, bool okb)
{
    struct ru_op *op = ud;
    struct cp_status st;
    cp_status_ok(&st);
    /* The cache (member_count, last_seq) once it shows the write; else what was written. */
    struct eroom *r = okb ? room_live(s, op->room_id) : NULL;
    op->cb(op->arg, &st, r != NULL ? &r->room : op->room);
    ru_free(op);
}

static void ru_write_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    struct ru_op *op = ud;
    struct cp_etcd_txn_result t;
    struct cp_status st;
    if (txn_parse(e, body, len, &t) != SB_OK) {
        set_unavail(&st, "room update");
        ru_fail(op, &st);
        return;
    }
    int64_t rev;
    bool won = txn_applied(&t, &rev);
    cp_etcd_txn_result_fini(&t);
    if (won) {
        after_rev(s, rev, ru_after, op);
    } else if (++op->tries >= RMW_RETRIES) {
        set_busy(&st, "room", op->room_id);
        ru_fail(op, &st);
    } else {
        cp_room_free(op->room, true);
        op->room = NULL;
        ru_try(s, op);
    }
}

static void ru_read_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    struct ru_op *op = ud;
    struct cp_status st;
    struct cp_etcd_result r;
    if (e != SB_OK || cp_etcd_json_parse_result(body, len, &r) != SB_OK) {
        set_unavail(&st, "room read");
        ru_fail(op, &st);
        return;
    }
    const struct cp_etcd_kv *kv = first_kv(&r);
    if (kv == NULL) {
        cp_etcd_result_fini(&r);
        cp_status_set(&st, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", op->room_id);
        ru_fail(op, &st);
        return;
    }
    int64_t mod = kv->mod_revision;
    struct cp_room *copy = room_parse(op->room_id, kv->value, kv->value_len);
    cp_etcd_result_fini(&r);
    if (copy == NULL) {
        cp_status_set(&st, SB_CODE_INTERNAL, "room %s: unreadable record", op->room_id);
        ru_fail(op, &st);
        return;
    }
    struct eroom *cached = room_live(s, op->room_id);
    if (cached != NULL) {
        copy->member_count = cached->room.member_count;
        copy->last_seq = cached->room.last_seq;
    }
    int64_t created_at = copy->created_at;
    cp_status_ok(&st);
    op->edit(op->edit_arg, copy, &st);
    if (st.code != SB_CODE_NONE) {
        cp_room_free(copy, true);
        ru_fail(op, &st);
        return;
    }
    /* What the store owns: the id and the times. */
    char *id = strdup(op->room_id);
    if (id == NULL) {
        cp_room_free(copy, true);
        oom(&st);
        ru_fail(op, &st);
        return;
    }
    free(copy->id);
    copy->id = id;
    copy->created_at = created_at;
    copy->updated_at = sb_time_now_ms();
    if (cached != NULL) {
        copy->member_count = cached->room.member_count;
        copy->last_seq = cached->room.last_seq;
    }
    op->room = copy;
    char k[CP_KEYS_MAX];
    cp_keys_room(op->room_id, k, sizeof(k));
    char *val = json_text(room_to_json(copy));
    struct txnb t;
    tb_init(&t);
    if (val == NULL)
        t.failed = true;
    tb_cmp(&t, k, CP_ETCD_CMP_MOD, CP_ETCD_CMP_EQUAL, mod);
    if (val != NULL)
        tb_put(&t, k, val, strlen(val), 0);
    free(val);
    tb_marker(s, &t);
    ecall(s, CP_ETCD_PATH_TXN, tb_json(&t), CP_ETCD_RETRY, ru_write_answer, op);
}

static void ru_try(struct estore *s, struct ru_op *op)
{
    char k[CP_KEYS_MAX];
    cp_keys_room(op->room_id, k, sizeof(k));
    struct cp_etcd_range_req q = {.key = cp_etcd_str(k)};
    char *json = NULL;
    if (cp_etcd_json_range(&q, &json) != SB_OK)
        json = NULL;
    ecall(s, CP_ETCD_PATH_RANGE, json, CP_ETCD_RETRY, ru_read_answer, op);
}

static void s_room_update(struct cp_store *st, const char *room_id, cp_room_edit_fn *edit,
                          void *edit_arg, cp_store_room_fn *cb, void *arg)
{
    struct estore *s = ES(st);
    struct cp_status stt;
    char k[CP_KEYS_MAX];
    if (cp_keys_room(room_id, k, sizeof(k)) != SB_OK) {
        cp_status_set(&stt, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist",
                      room_id ? room_id : "");
        cb(arg, &stt, NULL);
        return;
    }
    struct ru_op *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->room_id = strdup(room_id)) == NULL) {
        free(op);
        oom(&stt);
        cb(arg, &stt, NULL);
        return;
    }
    op->cb = cb;
    op->arg = arg;
    op->edit = edit;
    op->edit_arg = edit_arg;
    ru_try(s, op);
}

/* ---- member_set_role */

struct role_op {
    cp_store_members_fn *cb;
    void *arg;
    char *room_id;
    char *user_id;
    enum cp_role role;
    int64_t joined_at;
    int tries;
};

static void role_free(struct role_op *op)
{
    free(op->room_id);
    free(op->user_id);
    free(op);
}

static void role_fail(struct role_op *op, const struct cp_status *st)
{
    op->cb(op->arg, st, NULL, 0);
    role_free(op);
}

static void role_try(struct estore *s, struct role_op *op);

static void role_answer_now(struct estore *s, struct role_op *op)
{
    struct cp_status st;
    cp_status_ok(&st);
    struct eroom *r = room_live(s, op->room_id);
    const struct cp_member *m = r != NULL ? member_get(r, op->user_id) : NULL;
    struct cp_member mine = {op->user_id, op->role, op->joined_at};
    op->cb(op->arg, &st, m != NULL && m->role == op->role ? m : &mine, 1);
    role_free(op);
}

static void role_after(struct estore *s, void *ud, bool okb)
{
    (void)okb;
    role_answer_now(s, ud);
}

static void role_write_answer(struct estore *s, void *ud, enum sb_err e, const char *body,
                              size_t len)
{
    struct role_op *op = ud;
    struct cp_etcd_txn_result t;
    struct cp_status st;
    if (txn_parse(e, body, len, &t) != SB_OK) {
        set_unavail(&st, "member role");
        role_fail(op, &st);
        return;
    }
    int64_t rev;
    bool won = txn_applied(&t, &rev);
    cp_etcd_txn_result_fini(&t);
    if (won) {
        after_rev(s, rev, role_after, op);
    } else if (++op->tries >= RMW_RETRIES) {
        set_busy(&st, "membership of", op->user_id);
        role_fail(op, &st);
    } else {
        role_try(s, op);
    }
}

static void role_read_answer(struct estore *s, void *ud, enum sb_err e, const char *body,
                             size_t len)
{
    struct role_op *op = ud;
    struct cp_etcd_txn_result t;
    struct cp_status st;
    if (txn_parse(e, body, len, &t) != SB_OK) {
        set_unavail(&st, "member read");
        role_fail(op, &st);
        return;
    }
    const struct cp_etcd_kv *rkv = first_kv(txn_op(&t, 0));
    const struct cp_etcd_kv *mkv = first_kv(txn_op(&t, 1));
    if (rkv == NULL || mkv == NULL) {
        cp_etcd_txn_result_fini(&t);
        if (rkv == NULL)
            cp_status_set(&st, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", op->room_id);
        else
            cp_status_set(&st, SB_CODE_NOT_ROOM_MEMBER, "user %s is not a member of room %s",
                          op->user_id, op->room_id);
        role_fail(op, &st);
        return;
    }
    json_t *j = json_parse(mkv->value, mkv->value_len);
    enum cp_role cur = CP_ROLE_MEMBER;
    if (j != NULL && cp_role_parse(jstr(j, "role"), &cur) != SB_OK)
        cur = CP_ROLE_MEMBER;
    op->joined_at = j ? jint(j, "joined_at") : 0;
    json_decref(j);
    int64_t mod = mkv->mod_revision;
    cp_etcd_txn_result_fini(&t);
    if (cur == op->role) {
        role_answer_now(s, op); /* nothing to write */
        return;
    }
    char k[CP_KEYS_MAX];
    cp_keys_member(op->room_id, op->user_id, k, sizeof(k));
    char *val = member_json(op->role, op->joined_at);
    struct txnb w;
    tb_init(&w);
    if (val == NULL)
        w.failed = true;
    tb_cmp(&w, k, CP_ETCD_CMP_MOD, CP_ETCD_CMP_EQUAL, mod);
    if (val != NULL)
        tb_put(&w, k, val, strlen(val), 0);
    free(val);
    tb_marker(s, &w);
    ecall(s, CP_ETCD_PATH_TXN, tb_json(&w), CP_ETCD_RETRY, role_write_answer, op);
}

static void role_try(struct estore *s, struct role_op *op)
{
    char rk[CP_KEYS_MAX], mk[CP_KEYS_MAX];
    cp_keys_room(op->room_id, rk, sizeof(rk));
    cp_keys_member(op->room_id, op->user_id, mk, sizeof(mk));
    struct txnb t;
    tb_init(&t);
    tb_get(&t, rk, false);
    tb_get(&t, mk, false);
    ecall(s, CP_ETCD_PATH_TXN, tb_json(&t), CP_ETCD_RETRY, role_read_answer, op);
}

static void s_member_set_role(struct cp_store *st, const char *room_id, const char *user_id,
                              enum cp_role role, cp_store_members_fn *cb, void *arg)
{
    struct estore *s = ES(st);
    struct cp_status stt;
    char k[CP_KEYS_MAX];
    if (cp_keys_room(room_id, k, sizeof(k)) != SB_OK) {
        cp_status_set(&stt, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist",
                      room_id ? room_id : "");
        cb(arg, &stt, NULL, 0);
        return;
    }
    if (cp_keys_member(room_id, user_id, k, sizeof(k)) != SB_OK) {
        cp_status_set(&stt, SB_CODE_NOT_ROOM_MEMBER, "user %s is not a member of room %s",
                      user_id ? user_id : "", room_id);
        cb(arg, &stt, NULL, 0);
        return;
    }
    struct role_op *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->room_id = strdup(room_id)) == NULL ||
        (op->user_id = strdup(user_id)) == NULL) {
        if (op != NULL)
            role_free(op);
        oom(&stt);
        cb(arg, &stt, NULL, 0);
        return;
    }
    op->cb = cb;
    op->arg = arg;
    op->role = role;
    role_try(s, op);
}

/* ---- history pages: a read txn of the room key and one page of its history */

/* Ascending from `from` (a full key; its bytes up to from_n), or descending below `below`
 * (exclusive; NULL: from the newest). */
static void hist_page(struct estore *s, const char *room_id, const char *from, size_t from_n,
                      const char *below, size_t below_n, ecall_fn *fn, void *ud)
{
    char rk[CP_KEYS_MAX], hk[CP_KEYS_MAX], end[CP_KEYS_MAX];
    size_t en = 0;
    cp_keys_room(room_id, rk, sizeof(rk));
    cp_keys_history_of(room_id, hk, sizeof(hk));
    cp_keys_range_end(hk, strlen(hk), end, sizeof(end), &en);
    struct txnb t;
    tb_init(&t);
    tb_get(&t, rk, false);
    struct cp_etcd_op *op = tb_succ(&t);
    if (op != NULL) {
        op->type = CP_ETCD_OP_RANGE;
        op->u.range.limit = HIST_PAGE;
        if (from != NULL) {
            op->u.range.key = tb_bytes(&t, from, from_n);
            op->u.range.range_end = tb_bytes(&t, end, en);
        } else {
            op->u.range.key = tb_str(&t, hk);
            op->u.range.range_end =
                below != NULL ? tb_bytes(&t, below, below_n) : tb_bytes(&t, end, en);
            op->u.range.descend = true;
        }
    }
    ecall(s, CP_ETCD_PATH_TXN, tb_json(&t), CP_ETCD_RETRY, fn, ud);
}

/* ---- message_update */

struct mu_op {
    cp_store_message_fn *cb;
    void *arg;
    cp_message_edit_fn *edit;
    void *edit_arg;
    char *room_id;
    char *message_id;
    char *below; /* next page: keys below this one */
    size_t below_n;
    struct cp_message *msg; /* the edited copy, once written */
    int tries;
};

static void mu_free(struct mu_op *op)
{
    cp_message_free(op->msg);
    free(op->below);
    free(op->room_id);
    free(op->message_id);
    free(op);
}

static void mu_fail(struct mu_op *op, const struct cp_status *st)
{
    op->cb(op->arg, st, NULL);
    mu_free(op);
}

static void mu_read_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len);

static void mu_try(struct estore *s, struct mu_op *op)
{
    hist_page(s, op->room_id, NULL, 0, op->below, op->below_n, mu_read_answer, op);
}

static void mu_after(struct estore *s, void *ud, bool okb)
{
    (void)s;
    (void)okb;
    struct mu_op *op = ud;
    struct cp_status st;
    cp_status_ok(&st);
    op->cb(op->arg, &st, op->msg);
    mu_free(op);
}

static void mu_write_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    struct mu_op *op = ud;
    struct cp_etcd_txn_result t;
    struct cp_status st;
    if (txn_parse(e, body, len, &t) != SB_OK) {
        set_unavail(&st, "message update");
        mu_fail(op, &st);
        return;
    }
    int64_t rev;
    bool won = txn_applied(&t, &rev);
    cp_etcd_txn_result_fini(&t);
    if (won) {
        after_rev(s, rev, mu_after, op);
    } else if (++op->tries >= RMW_RETRIES) {
        set_busy(&st, "message", op->message_id);
        mu_fail(op, &st);
    } else {
        cp_message_free(op->msg);
        op->msg = NULL;
        free(op->below);
        op->below = NULL;
        mu_try(s, op);
    }
}

/* True when the stored JSON of a message may be the one with id `id` (a cheap filter before
 * parsing: ids need no JSON escaping unless they hold '"', '\\' or control bytes). */
static bool may_hold_id(const struct cp_etcd_kv *kv, const char *id)
{
    for (const char *p = id; *p != '\0'; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            return true;
    size_t n = strlen(id);
    for (size_t i = 0; i + n <= kv->value_len; i++)
        if (memcmp(kv->value + i, id, n) == 0)
            return true;
    return false;
}

/* Edits m (the stored message, taken) and writes it back under a compare on mod. */
static void mu_write(struct estore *s, struct mu_op *op, struct cp_message *cur,
                     const struct cp_etcd_kv *kv)
{
    struct cp_status st;
    struct cp_message *copy = cp_message_dup(cur);
    if (copy == NULL) {
        cp_message_free(cur);
        oom(&st);
        mu_fail(op, &st);
        return;
    }
    cp_status_ok(&st);
    op->edit(op->edit_arg, copy, &st);
    if (st.code != SB_CODE_NONE) {
        cp_message_free(copy);
        cp_message_free(cur);
        mu_fail(op, &st);
        return;
    }
    /* The identity of a message never changes. */
    free(copy->id);
    free(copy->room_id);
    copy->id = cur->id;
    copy->room_id = cur->room_id;
    copy->seq = cur->seq;
    copy->timestamp = cur->timestamp;
    cur->id = cur->room_id = NULL;
    cp_message_free(cur);
    free(copy->idem_key);
    copy->idem_key = NULL;
    op->msg = copy;
    char *val = message_json(copy);
    struct txnb t;
    tb_init(&t);
    if (val == NULL)
        t.failed = true;
    tb_cmp(&t, kv->key, CP_ETCD_CMP_MOD, CP_ETCD_CMP_EQUAL, kv->mod_revision);
    if (val != NULL)
        tb_put(&t, kv->key, val, strlen(val), 0);
    free(val);
    tb_marker(s, &t);
    ecall(s, CP_ETCD_PATH_TXN, tb_json(&t), CP_ETCD_RETRY, mu_write_answer, op);
}

static void mu_read_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    struct mu_op *op = ud;
    struct cp_etcd_txn_result t;
    struct cp_status st;
    if (txn_parse(e, body, len, &t) != SB_OK) {
        set_unavail(&st, "history read");
        mu_fail(op, &st);
        return;
    }
    if (first_kv(txn_op(&t, 0)) == NULL) {
        cp_etcd_txn_result_fini(&t);
        cp_status_set(&st, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", op->room_id);
        mu_fail(op, &st);
        return;
    }
    const struct cp_etcd_result *h = txn_op(&t, 1);
    for (size_t i = 0; h != NULL && i < h->n_kvs; i++) {
        const struct cp_etcd_kv *kv = &h->kvs[i];
        if (!may_hold_id(kv, op->message_id))
            continue;
        bool transient = false;
        struct cp_message *m = message_parse_t(kv->value, kv->value_len, &transient);
        if (m != NULL && !transient && strcmp(m->id, op->message_id) == 0) {
            mu_write(s, op, m, kv);
            cp_etcd_txn_result_fini(&t);
            return;
        }
        cp_message_free(m);
    }
    if (h != NULL && h->more && h->n_kvs > 0) {
        const struct cp_etcd_kv *low = &h->kvs[h->n_kvs - 1];
        char *b = malloc(low->key_len + 1);
        if (b == NULL) {
            cp_etcd_txn_result_fini(&t);
            oom(&st);
            mu_fail(op, &st);
            return;
        }
        memcpy(b, low->key, low->key_len + 1);
        free(op->below);
        op->below = b;
        op->below_n = low->key_len;
        cp_etcd_txn_result_fini(&t);
        mu_try(s, op);
        return;
    }
    cp_etcd_txn_result_fini(&t);
    cp_status_set(&st, SB_CODE_MESSAGE_NOT_FOUND, "message %s is not in the history of room %s",
                  op->message_id, op->room_id);
    mu_fail(op, &st);
}

static void s_message_update(struct cp_store *st, const char *room_id, const char *message_id,
                             cp_message_edit_fn *edit, void *edit_arg, cp_store_message_fn *cb,
                             void *arg)
{
    struct estore *s = ES(st);
    struct cp_status stt;
    char k[CP_KEYS_MAX];
    if (cp_keys_room(room_id, k, sizeof(k)) != SB_OK) {
        cp_status_set(&stt, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist",
                      room_id ? room_id : "");
        cb(arg, &stt, NULL);
        return;
    }
    if (message_id == NULL || message_id[0] == '\0') {
        cp_status_set(&stt, SB_CODE_MESSAGE_NOT_FOUND, "message \"\" does not exist");
        cb(arg, &stt, NULL);
        return;
    }
    struct mu_op *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->room_id = strdup(room_id)) == NULL ||
        (op->message_id = strdup(message_id)) == NULL) {
        if (op != NULL)
            mu_free(op);
        oom(&stt);
        cb(arg, &stt, NULL);
        return;
    }
    op->cb = cb;
    op->arg = arg;
    op->edit = edit;
    op->edit_arg = edit_arg;
    mu_try(s, op);
}

/* ---- history_trim */

struct trim_op {
    cp_store_count_fn *cb;
    void *arg;
    char *room_id;
    int64_t before_time;
    int64_t room_rev; /* create_revision of the room at the first page */
    char *from;       /* next page starts here (a full key) */
    size_t from_n;
    char *cut; /* delete below this key (exclusive) */
    size_t cut_n;
    int64_t count;
    int tries;
};

static void trim_free(struct trim_op *op)
{
    free(op->room_id);
    free(op->from);
    free(op->cut);
    free(op);
}

static void trim_answer(struct trim_op *op, const struct cp_status *st, int64_t n)
{
    op->cb(op->arg, st, n);
    trim_free(op);
}

static void trim_read_answer(struct estore *s, void *ud, enum sb_err e, const char *body,
                             size_t len);

static void trim_restart(struct estore *s, struct trim_op *op)
{
    free(op->from);
    free(op->cut);
    op->cut = NULL;
    op->room_rev = 0;
    op->count = 0;
    char k[CP_KEYS_MAX];
    cp_keys_history(op->room_id, 0, k, sizeof(k));
    op->from = strdup(k);
    op->from_n = strlen(k);
    if (op->from == NULL) {
        struct cp_status st;
        oom(&st);
        trim_answer(op, &st, 0);
        return;
    }
    hist_page(s, op->room_id, op->from, op->from_n, NULL, 0, trim_read_answer, op);
}

static void trim_write_answer(struct estore *s, void *ud, enum sb_err e, const char *body,
                              size_t len)
{
    struct trim_op *op = ud;
    struct cp_etcd_txn_result t;
    struct cp_status st;
    if (txn_parse(e, body, len, &t) != SB_OK) {
        set_unavail(&st, "history trim");
        trim_answer(op, &st, 0);
        return;
    }
    bool won = t.succeeded;
    cp_etcd_txn_result_fini(&t);
    if (won) {
        cp_status_ok(&st);
        trim_answer(op, &st, op->count);
    } else if (++op->tries >= RMW_RETRIES) {
        set_busy(&st, "room", op->room_id);
        trim_answer(op, &st, 0);
    } else {
        trim_restart(s, op); /* the room was deleted or re-created meanwhile */
    }
}

/* Deletes [history/<room>/0, cut) under the room's create_revision. */
static void trim_write(struct estore *s, struct trim_op *op)
{
    char rk[CP_KEYS_MAX], from[CP_KEYS_MAX];
    cp_keys_room(op->room_id, rk, sizeof(rk));
    cp_keys_history(op->room_id, 0, from, sizeof(from));
    struct txnb t;
    tb_init(&t);
    tb_cmp(&t, rk, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, op->room_rev);
    struct cp_etcd_op *d = tb_succ(&t);
    if (d != NULL) {
        d->type = CP_ETCD_OP_DELETE;
        d->u.del.key = tb_str(&t, from);
        d->u.del.range_end = tb_bytes(&t, op->cut, op->cut_n);
    }
    ecall(s, CP_ETCD_PATH_TXN, tb_json(&t), CP_ETCD_RETRY, trim_write_answer, op);
}

/* Keeps a copy of n bytes (+ `extra_nul` zero bytes) in *dst. */
static bool keep_bytes(char **dst, size_t *dst_n, const char *p, size_t n, bool extra_nul)
{
    char *b = malloc(n + 2);
    if (b == NULL)
        return false;
    memcpy(b, p, n);
    b[n] = '\0';
    b[n + 1] = '\0';
    free(*dst);
    *dst = b;
    *dst_n = n + (extra_nul ? 1 : 0);
    return true;
}

static void trim_read_answer(struct estore *s, void *ud, enum sb_err e, const char *body,
                             size_t len)
{
    struct trim_op *op = ud;
    struct cp_etcd_txn_result t;
    struct cp_status st;
    if (txn_parse(e, body, len, &t) != SB_OK) {
        set_unavail(&st, "history read");
        trim_answer(op, &st, 0);
        return;
    }
    const struct cp_etcd_kv *rkv = first_kv(txn_op(&t, 0));
    if (rkv == NULL) {
        cp_etcd_txn_result_fini(&t);
        cp_status_set(&st, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", op->room_id);
        trim_answer(op, &st, 0);
        return;
    }
    if (op->room_rev == 0) {
        op->room_rev = rkv->create_revision;
    } else if (op->room_rev != rkv->create_revision) {
        /* Deleted and re-created between two pages. */
        cp_etcd_txn_result_fini(&t);
        if (++op->tries >= RMW_RETRIES) {
            set_busy(&st, "room", op->room_id);
            trim_answer(op, &st, 0);
        } else {
            trim_restart(s, op);
        }
        return;
    }
    const struct cp_etcd_result *h = txn_op(&t, 1);
    bool found_cut = false, ok = true;
    for (size_t i = 0; h != NULL && i < h->n_kvs && ok; i++) {
        const struct cp_etcd_kv *kv = &h->kvs[i];
        json_t *j = json_parse(kv->value, kv->value_len);
        int64_t ts = j != NULL ? jint(j, "timestamp") : 0;
        bool transient = j != NULL && json_is_true(json_object_get(j, "transient"));
        json_decref(j);
        if (ts >= op->before_time) {
            ok = keep_bytes(&op->cut, &op->cut_n, kv->key, kv->key_len, false);
            found_cut = true;
            break;
        }
        op->count += transient ? 0 : 1;
        /* Everything up to this key goes: the cut is just after it. */
        ok = keep_bytes(&op->cut, &op->cut_n, kv->key, kv->key_len, true);
    }
    bool more = h != NULL && h->more && h->n_kvs > 0;
    if (ok && !found_cut && more) {
        const struct cp_etcd_kv *last = &h->kvs[h->n_kvs - 1];
        ok = keep_bytes(&op->from, &op->from_n, last->key, last->key_len, true);
    }
    cp_etcd_txn_result_fini(&t);
    if (!ok) {
        oom(&st);
        trim_answer(op, &st, 0);
    } else if (!found_cut && more) {
        hist_page(s, op->room_id, op->from, op->from_n, NULL, 0, trim_read_answer, op);
    } else if (op->count == 0) {
        cp_status_ok(&st);
        trim_answer(op, &st, 0);
    } else {
        trim_write(s, op);
    }
}

static void s_history_trim(struct cp_store *st, const char *room_id, int64_t before_time,
                           cp_store_count_fn *cb, void *arg)
{
    struct estore *s = ES(st);
    struct cp_status stt;
    char k[CP_KEYS_MAX];
    if (cp_keys_room(room_id, k, sizeof(k)) != SB_OK) {
        cp_status_set(&stt, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist",
                      room_id ? room_id : "");
        cb(arg, &stt, 0);
        return;
    }
    struct trim_op *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->room_id = strdup(room_id)) == NULL) {
        free(op);
        oom(&stt);
        cb(arg, &stt, 0);
        return;
    }
    op->cb = cb;
    op->arg = arg;
    op->before_time = before_time;
    trim_restart(s, op);
}

static void s_observe(struct cp_store *st, cp_store_event_fn *fn, void *arg)
{
    struct estore *s = ES(st);
    s->obs_fn = fn;
    s->obs_arg = fn != NULL ? arg : NULL;
}

/* ---------------------------------------------------------------- leases: this replica */

static void ignore_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    (void)s;
    (void)body;
    (void)len;
    if (e != SB_OK)
        SB_LOG_DEBUG("cp", "etcd write failed", "what=%s err=%s", (const char *)ud, sb_err_str(e));
}

static char *lease_id_json(int64_t id)
{
    char *json = NULL;
    if (cp_etcd_json_lease_id(id, &json) != SB_OK)
        return NULL;
    return json;
}

static char *grant_json(int64_t ttl)
{
    char *json = NULL;
    if (cp_etcd_json_lease_grant(ttl, 0, &json) != SB_OK)
        return NULL;
    return json;
}

static char *put_json(const char *key, const char *val, size_t vlen, int64_t lease)
{
    struct cp_etcd_put_req p = {.key = cp_etcd_str(key), .value = {val, vlen}, .lease = lease};
    char *json = NULL;
    if (cp_etcd_json_put(&p, &json) != SB_OK)
        return NULL;
    return json;
}

struct lost {
    struct estore *s;
    int64_t id;
};

static void replica_lease_start(struct estore *s);

static void lease_lost_run(void *arg)
{
    struct lost *l = arg;
    struct estore *s = l->s;
    int64_t id = l->id;
    free(l);
    if (s->stopped)
        return;
    if (id == s->lease) {
        SB_LOG_WARN("cp", "replica lease lost: sequencing and leadership dropped, re-granting",
                    "lease=%lld", (long long)id);
        s->lease = 0;
        s->is_leader = false;
        struct sb_map_iter it;
        struct sb_map_entry *e;
        sb_map_iter_init(&s->seqrooms, &it);
        while ((e = sb_map_iter_next(&s->seqrooms, &it)) != NULL) {
            struct seqroom *sr = e->value;
            sr->state = SR_NONE;
            sr->fence = 0;
        }
        if (s->lease_ka != NULL)
            cp_etcd_keepalive_close(s->lease_ka, NULL, NULL);
        s->lease_ka = NULL;
        replica_lease_start(s);
        return;
    }
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&s->leases, &it);
    while ((e = sb_map_iter_next(&s->leases, &it)) != NULL) {
        struct nodelease *nl = e->value;
        if (nl->lease != id)
            continue;
        char *node = strdup(nl->node_id);
        cp_store_etcd_release(&s->base, nl->node_id, false);
        SB_LOG_WARN("cp", "node lease lost", "node=%s lease=%lld", node ? node : "-",
                    (long long)id);
        if (node != NULL && s->hooks.node_lease_lost != NULL)
            s->hooks.node_lease_lost(s->hooks.ud, node);
        free(node);
        return;
    }
}

static void lease_lost_cb(void *ud, int64_t id)
{
    struct lost *l = malloc(sizeof(*l));
    if (l == NULL)
        return;
    l->s = ud;
    l->id = id;
    if (cp_handoff_post(l->s->h, lease_lost_run, l) != SB_OK)
        free(l);
}

static void cp_put_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    (void)ud;
    (void)body;
    (void)len;
    if (e != SB_OK) {
        SB_LOG_WARN("cp", "cannot register this replica in etcd", "err=%s", sb_err_str(e));
        if (s->opening > 0) {
            s->open_err = e;
            s->opening = 0;
        }
        return;
    }
    if (s->opening > 0)
        s->opening--;
    if (s->leader == NULL && !s->relisting)
        claim_leader(s);
}

static void replica_grant_answer(struct estore *s, void *ud, enum sb_err e, const char *body,
                                 size_t len)
{
    (void)ud;
    struct cp_etcd_lease l;
    s->lease_renewing = false;
    if (e != SB_OK || cp_etcd_json_parse_lease(body, len, &l) != SB_OK || l.id == 0) {
        SB_LOG_WARN("cp", "cannot grant the replica lease", "err=%s", sb_err_str(e));
        if (s->opening > 0) {
            s->open_err = e != SB_OK ? e : SB_EPROTO;
            s->opening = 0;
        }
        return; /* the tick retries */
    }
    s->lease = l.id;
    cp_etcd_lease_fini(&l);
    if (cp_etcd_keepalive_start(s->e, s->lease, s->ttl_s, lease_lost_cb, s, &s->lease_ka) != SB_OK)
        s->lease_ka = NULL;
    char k[CP_KEYS_MAX];
    cp_keys_cp(s->id, k, sizeof(k));
    ecall(s, CP_ETCD_PATH_PUT, put_json(k, s->advertise, strlen(s->advertise), s->lease),
          CP_ETCD_RETRY, cp_put_answer, NULL);
}

static void replica_lease_start(struct estore *s)
{
    if (s->lease_renewing || s->stopped)
        return;
    s->lease_renewing = true;
    ecall(s, CP_ETCD_PATH_GRANT, grant_json(s->ttl_s), CP_ETCD_RETRY, replica_grant_answer, NULL);
}

static void leader_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    (void)ud;
    (void)body;
    (void)len;
    s->claiming_leader = false;
    if (e != SB_OK)
        SB_LOG_DEBUG("cp", "presence leader claim failed", "err=%s", sb_err_str(e));
}

static void claim_leader(struct estore *s)
{
    if (s->claiming_leader || s->lease == 0 || s->stopped)
        return;
    char k[CP_KEYS_MAX];
    cp_keys_leader(CP_KEYS_ROLE_PRESENCE, k, sizeof(k));
    struct txnb t;
    tb_init(&t);
    tb_cmp(&t, k, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
    tb_put(&t, k, s->id, strlen(s->id), s->lease);
    s->claiming_leader = true;
    ecall(s, CP_ETCD_PATH_TXN, tb_json(&t), CP_ETCD_RETRY, leader_answer, NULL);
}

static void idem_grant_answer(struct estore *s, void *ud, enum sb_err e, const char *body,
                              size_t len)
{
    (void)ud;
    struct cp_etcd_lease l;
    s->idem_granting = false;
    if (e != SB_OK || cp_etcd_json_parse_lease(body, len, &l) != SB_OK) {
        if (s->opening > 0) {
            s->open_err = e != SB_OK ? e : SB_EPROTO;
            s->opening = 0;
        }
        return; /* the tick retries */
    }
    if (l.id != 0) {
        s->idem_lease = l.id;
        s->idem_lease_at = mono(s);
        if (s->opening > 0)
            s->opening--;
    }
    cp_etcd_lease_fini(&l);
}

/* ---------------------------------------------------------------- leases: nodes */

struct adopt_op {
    char *node_id;
    char *address;
    int64_t lease;
    bool renewed;
    cp_store_etcd_adopt_fn *cb;
    void *arg;
};

static void adopt_free(struct adopt_op *op)
{
    free(op->node_id);
    free(op->address);
    free(op);
}

static char *node_json(const char *address, int64_t hb, int64_t conns)
{
    return json_text(json_pack("{s:s, s:I, s:I}", "address", address ? address : "",
                               "last_heartbeat", (json_int_t)hb, "connections", (json_int_t)conns));
}

static void adopt_put_answer(struct estore *s, void *ud, enum sb_err e, const char *body,
                             size_t len)
{
    (void)s;
    (void)body;
    (void)len;
    struct adopt_op *op = ud;
    struct cp_status st;
    if (e != SB_OK) {
        set_unavail(&st, "node registration");
        op->cb(op->arg, &st, 0, false);
    } else {
        cp_status_ok(&st);
        op->cb(op->arg, &st, op->lease, op->renewed);
    }
    adopt_free(op);
}

static void adopt_finish(struct estore *s, struct adopt_op *op)
{
    struct nodelease *nl = sb_map_get(&s->leases, op->node_id);
    if (nl != NULL && nl->lease != op->lease) {
        cp_store_etcd_release(&s->base, op->node_id, false);
        nl = NULL;
    }
    if (nl == NULL) {
        nl = calloc(1, sizeof(*nl));
        if (nl == NULL || (nl->node_id = strdup(op->node_id)) == NULL ||
            (nl->address = strdup(op->address)) == NULL ||
            sb_map_put(&s->leases, op->node_id, nl) != SB_OK) {
            if (nl != NULL) {
                free(nl->node_id);
                free(nl->address);
            }
            free(nl);
            struct cp_status st;
            oom(&st);
            op->cb(op->arg, &st, 0, false);
            adopt_free(op);
            return;
        }
        nl->lease = op->lease;
        if (cp_etcd_keepalive_start(s->e, nl->lease, s->ttl_s, lease_lost_cb, s, &nl->ka) != SB_OK)
            nl->ka = NULL;
    }
    char k[CP_KEYS_MAX];
    cp_keys_node(op->node_id, k, sizeof(k));
    char *v = node_json(op->address, sb_time_now_ms(), 0);
    ecall(s, CP_ETCD_PATH_PUT, v ? put_json(k, v, strlen(v), op->lease) : NULL, CP_ETCD_RETRY,
          adopt_put_answer, op);
    free(v);
}

static void adopt_grant_answer(struct estore *s, void *ud, enum sb_err e, const char *body,
                               size_t len)
{
    struct adopt_op *op = ud;
    struct cp_etcd_lease l;
    if (e != SB_OK || cp_etcd_json_parse_lease(body, len, &l) != SB_OK || l.id == 0) {
        struct cp_status st;
        set_unavail(&st, "node lease grant");
        op->cb(op->arg, &st, 0, false);
        adopt_free(op);
        return;
    }
    op->lease = l.id;
    op->renewed = true;
    cp_etcd_lease_fini(&l);
    adopt_finish(s, op);
}

static void adopt_keep_answer(struct estore *s, void *ud, enum sb_err e, const char *body,
                              size_t len)
{
    struct adopt_op *op = ud;
    struct cp_etcd_lease l;
    if (e == SB_OK && cp_etcd_json_parse_lease(body, len, &l) == SB_OK) {
        bool alive = l.ttl > 0;
        cp_etcd_lease_fini(&l);
        if (alive) {
            op->renewed = false;
            adopt_finish(s, op);
            return;
        }
    } else if (e != SB_OK && e != SB_EPROTO) {
        struct cp_status st;
        set_unavail(&st, "node lease keep-alive");
        op->cb(op->arg, &st, 0, false);
        adopt_free(op);
        return;
    }
    /* Gone (no TTL, or "lease not found"): a new one. */
    ecall(s, CP_ETCD_PATH_GRANT, grant_json(s->ttl_s), CP_ETCD_RETRY, adopt_grant_answer, op);
}

void cp_store_etcd_adopt(struct cp_store *st, const char *node_id, const char *address,
                         int64_t lease_id, cp_store_etcd_adopt_fn *cb, void *arg)
{
    struct estore *s = ES(st);
    struct adopt_op *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->node_id = strdup(node_id)) == NULL ||
        (op->address = sdup(address)) == NULL) {
        if (op != NULL)
            adopt_free(op);
        struct cp_status stt;
        oom(&stt);
        cb(arg, &stt, 0, false);
        return;
    }
    op->cb = cb;
    op->arg = arg;
    op->lease = lease_id;
    if (lease_id != 0)
        ecall(s, CP_ETCD_PATH_KEEPALIVE, lease_id_json(lease_id), CP_ETCD_RETRY, adopt_keep_answer,
              op);
    else
        ecall(s, CP_ETCD_PATH_GRANT, grant_json(s->ttl_s), CP_ETCD_RETRY, adopt_grant_answer, op);
}

int64_t cp_store_etcd_node_lease(const struct cp_store *st, const char *node_id)
{
    const struct estore *s = (const struct estore *)st;
    struct nodelease *nl = sb_map_get(&s->leases, node_id);
    return nl ? nl->lease : 0;
}

void cp_store_etcd_release(struct cp_store *st, const char *node_id, bool revoke)
{
    struct estore *s = ES(st);
    struct nodelease *nl = sb_map_remove(&s->leases, node_id);
    if (nl == NULL)
        return;
    if (nl->ka != NULL)
        cp_etcd_keepalive_close(nl->ka, NULL, NULL);
    if (revoke && !s->stopped)
        ecall(s, CP_ETCD_PATH_REVOKE, lease_id_json(nl->lease), CP_ETCD_RETRY, ignore_answer,
              "lease revoke");
    free(nl->node_id);
    free(nl->address);
    free(nl);
}

void cp_store_etcd_heartbeat(struct cp_store *st, const char *node_id, const char *address,
                             int64_t connections)
{
    struct estore *s = ES(st);
    struct nodelease *nl = sb_map_get(&s->leases, node_id);
    if (nl == NULL || s->stopped)
        return;
    char k[CP_KEYS_MAX];
    cp_keys_node(node_id, k, sizeof(k));
    char *v = node_json(address ? address : nl->address, sb_time_now_ms(), connections);
    if (v == NULL)
        return;
    ecall(s, CP_ETCD_PATH_PUT, put_json(k, v, strlen(v), nl->lease), CP_ETCD_RETRY, ignore_answer,
          "node heartbeat");
    free(v);
}

struct conn_op {
    cp_store_etcd_done_fn *cb;
    void *arg;
};

static void conn_after(struct estore *s, void *ud, bool okb)
{
    (void)s;
    (void)okb;
    struct conn_op *op = ud;
    struct cp_status st;
    cp_status_ok(&st);
    op->cb(op->arg, &st);
    free(op);
}

static void conn_answer(struct estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    struct conn_op *op = ud;
    int64_t rev = 0;
    if (e != SB_OK || cp_etcd_json_parse_revision(body, len, &rev) != SB_OK) {
        struct cp_status st;
        set_unavail(&st, "connection record");
        op->cb(op->arg, &st);
        free(op);
        return;
    }
    after_rev(s, rev, conn_after, op);
}

void cp_store_etcd_conn_put(struct cp_store *st, const char *node_id, const char *user_id,
                            const char *conn_id, const char *session_id, const char *transport,
                            int64_t connected_at, cp_store_etcd_done_fn *cb, void *arg)
{
    struct estore *s = ES(st);
    struct cp_status stt;
    struct nodelease *nl = sb_map_get(&s->leases, node_id);
    char k[CP_KEYS_MAX];
    if (nl == NULL) {
        cp_status_set(&stt, SB_CODE_UNAVAILABLE, "node %s has no lease on this control plane",
                      node_id);
        cb(arg, &stt);
        return;
    }
    if (cp_keys_conn(node_id, user_id, conn_id, k, sizeof(k)) != SB_OK) {
        cp_status_set(&stt, SB_CODE_INVALID_MESSAGE, "connection or user id is not valid");
        cb(arg, &stt);
        return;
    }
    char *v = json_text(json_pack("{s:s, s:s, s:I}", "session_id", session_id ? session_id : "",
                                  "transport", transport ? transport : "", "connected_at",
                                  (json_int_t)connected_at));
    struct conn_op *op = malloc(sizeof(*op));
    if (v == NULL || op == NULL) {
        free(v);
        free(op);
        oom(&stt);
        cb(arg, &stt);
        return;
    }
    op->cb = cb;
    op->arg = arg;
    ecall(s, CP_ETCD_PATH_PUT, put_json(k, v, strlen(v), nl->lease), CP_ETCD_RETRY, conn_answer,
          op);
    free(v);
}

void cp_store_etcd_conn_delete(struct cp_store *st, const char *node_id, const char *user_id,
                               const char *conn_id, cp_store_etcd_done_fn *cb, void *arg)
{
    struct estore *s = ES(st);
    struct cp_status stt;
    char k[CP_KEYS_MAX];
    struct conn_op *op = malloc(sizeof(*op));
    if (op == NULL || cp_keys_conn(node_id, user_id, conn_id, k, sizeof(k)) != SB_OK) {
        free(op);
        cp_status_set(&stt, SB_CODE_INVALID_MESSAGE, "connection or user id is not valid");
        cb(arg, &stt);
        return;
    }
    op->cb = cb;
    op->arg = arg;
    struct cp_etcd_delete_req d = {.key = cp_etcd_str(k)};
    char *json = NULL;
    if (cp_etcd_json_delete(&d, &json) != SB_OK)
        json = NULL;
    ecall(s, CP_ETCD_PATH_DELETE, json, CP_ETCD_RETRY, conn_answer, op);
}

/* ---------------------------------------------------------------- cluster facts */

bool cp_store_etcd_is_presence_leader(const struct cp_store *st)
{
    return ((const struct estore *)st)->is_leader;
}

const char *cp_store_etcd_cp_address(const struct cp_store *st, const char *cp_id)
{
    return sb_map_get(&((const struct estore *)st)->cps, cp_id);
}

const char *cp_store_etcd_id(const struct cp_store *st)
{
    return ((const struct estore *)st)->id;
}

size_t cp_store_etcd_room_count(const struct cp_store *st)
{
    const struct estore *s = (const struct estore *)st;
    size_t n = 0;
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&s->rooms, &it);
    while ((e = sb_map_iter_next(&s->rooms, &it)) != NULL)
        n += ((struct eroom *)e->value)->exists ? 1 : 0;
    return n;
}

void cp_store_etcd_nodes(const struct cp_store *st,
                         void (*fn)(void *arg, const struct cp_store_etcd_node *n), void *arg)
{
    const struct estore *s = (const struct estore *)st;
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&s->nodes, &it);
    while ((e = sb_map_iter_next(&s->nodes, &it)) != NULL) {
        struct enode *n = e->value;
        struct cp_store_etcd_node v = {e->key, n->address, n->last_heartbeat, n->connections};
        fn(arg, &v);
    }
}

bool cp_store_is_etcd(const struct cp_store *s)
{
    return s != NULL && s->ops == &ops;
}

/* ---------------------------------------------------------------- lifetime */

static void fail_all_drafts(struct estore *s)
{
    struct cp_status st;
    cp_status_set(&st, SB_CODE_UNAVAILABLE, "control plane shutting down");
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&s->seqrooms, &it);
    while ((e = sb_map_iter_next(&s->seqrooms, &it)) != NULL) {
        struct seqroom *sr = e->value;
        struct draft *list;
        sr_take_pending(sr, &list);
        drafts_fail(s, list, &st, NULL);
    }
}

static void finalize_run(void *arg)
{
    struct estore *s = arg;
    cp_barrier_fini(&s->barrier);
    cp_barrier_init(&s->barrier);
    fail_all_drafts(s);
}

void cp_store_etcd_stop(struct cp_store *st)
{
    struct estore *s = ES(st);
    if (s->stopped)
        return;
    s->stopped = true;
    cp_etcd_stop(s->e);
    cp_handoff_post(s->h, finalize_run, s);
}

void cp_store_etcd_relist(struct cp_store *st)
{
    struct estore *s = ES(st);
    if (!s->stopped && !s->relisting)
        relist(s);
}

void cp_store_etcd_tick(struct cp_store *st, int64_t now)
{
    struct estore *s = ES(st);
    s->now_mono = now;
    if (s->stopped)
        return;
    size_t n = cp_barrier_expire(&s->barrier, now, BARRIER_MAX_WAIT_MS);
    if (n > 0)
        SB_LOG_WARN("cp", "revision barrier timed out: answering from a cache that may lag",
                    "waiters=%zu", n);
    static int64_t last_purge;
    if (now - last_purge > 5000) {
        last_purge = now;
        struct sb_map_iter it;
        struct sb_map_entry *e;
        sb_map_iter_init(&s->idem, &it);
        while ((e = sb_map_iter_next(&s->idem, &it)) != NULL) {
            struct idem *x = e->value;
            if (x->expires <= now) {
                idem_free(x);
                e->value = NULL;
            }
        }
        /* Remove the freed entries (cannot remove while iterating). */
        for (;;) {
            const char *dead = NULL;
            sb_map_iter_init(&s->idem, &it);
            while ((e = sb_map_iter_next(&s->idem, &it)) != NULL)
                if (e->value == NULL) {
                    dead = e->key;
                    break;
                }
            if (dead == NULL)
                break;
            sb_map_remove(&s->idem, dead);
        }
        if (s->lease == 0)
            replica_lease_start(s);
        if (s->leader == NULL && !s->relisting)
            claim_leader(s);
    }
    if (!s->idem_granting && (s->idem_lease == 0 || now - s->idem_lease_at > IDEM_ROTATE_MS)) {
        s->idem_granting = true;
        ecall(s, CP_ETCD_PATH_GRANT, grant_json(IDEM_LEASE_S), CP_ETCD_RETRY, idem_grant_answer,
              NULL);
    }
}

static void s_destroy(struct cp_store *st)
{
    struct estore *s = ES(st);
    cp_store_etcd_stop(st);
    cp_handoff_drain(s->h);
    cp_etcd_destroy(s->e);
    clear_cache(s);
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&s->seqrooms, &it);
    while ((e = sb_map_iter_next(&s->seqrooms, &it)) != NULL) {
        struct seqroom *sr = e->value;
        free(sr->room_id);
        free(sr);
    }
    sb_map_iter_init(&s->idem, &it);
    while ((e = sb_map_iter_next(&s->idem, &it)) != NULL) {
        idem_free(e->value);
    }
    sb_map_iter_init(&s->leases, &it);
    while ((e = sb_map_iter_next(&s->leases, &it)) != NULL) {
        struct nodelease *nl = e->value;
        free(nl->node_id);
        free(nl->address);
        free(nl);
    }
    sb_map_fini(&s->rooms);
    sb_map_fini(&s->user_rooms);
    sb_map_fini(&s->nodes);
    sb_map_fini(&s->cps);
    sb_map_fini(&s->holders);
    sb_map_fini(&s->seqrooms);
    sb_map_fini(&s->idem);
    sb_map_fini(&s->idem_pend);
    sb_map_fini(&s->leases);
    free(s->leader);
    free(s->id);
    free(s->advertise);
    free(s);
}

static const struct cp_store_ops ops = {
    .destroy = s_destroy,
    .room_create = s_room_create,
    .room_get = s_room_get,
    .room_list = s_room_list,
    .room_delete = s_room_delete,
    .member_add = s_member_add,
    .member_remove = s_member_remove,
    .members_list = s_members_list,
    .user_rooms = s_user_rooms,
    .user_peers = s_user_peers,
    .message_append = s_message_append,
    .history_query = s_history_query,
    .room_update = s_room_update,
    .member_set_role = s_member_set_role,
    .message_update = s_message_update,
    .history_trim = s_history_trim,
    .doc_get = s_doc_get,
    .doc_list = s_doc_list,
    .doc_write = s_doc_write,
    .observe = s_observe,
};

enum sb_err cp_store_etcd_open(const struct cp_store_etcd_config *cfg, struct cp_handoff *handoff,
                               struct cp_store **out)
{
    if (cfg->endpoints == NULL || cfg->cp_id == NULL || !sb_ident_is_valid(cfg->cp_id))
        return SB_EINVAL;
    struct estore *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return SB_ENOMEM;
    s->base.ops = &ops;
    s->h = handoff;
    s->id = strdup(cfg->cp_id);
    s->advertise = sdup(cfg->advertise);
    s->ttl_s = (cfg->lease_ttl_ms + 999) / 1000;
    if (s->ttl_s < 2)
        s->ttl_s = 2;
    s->timeout_ms = cfg->op_timeout_ms > 0 ? cfg->op_timeout_ms : 3000;
    s->hooks = cfg->hooks;
    /* Markers of a previous run under the same id may still live (180 s): start elsewhere. */
    s->txn_marker = (uint64_t)sb_time_now_ms() << 20;
    cp_barrier_init(&s->barrier);
    sb_map_init(&s->rooms);
    sb_map_init(&s->user_rooms);
    sb_map_init(&s->nodes);
    sb_map_init(&s->cps);
    sb_map_init(&s->holders);
    sb_map_init(&s->seqrooms);
    sb_map_init(&s->idem);
    sb_map_init(&s->idem_pend);
    sb_map_init(&s->leases);
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
    replica_lease_start(s);
    s->idem_granting = true;
    ecall(s, CP_ETCD_PATH_GRANT, grant_json(IDEM_LEASE_S), CP_ETCD_RETRY, idem_grant_answer, NULL);
    struct list_op *lo = calloc(1, sizeof(*lo));
    if (lo != NULL) {
        lo->initial = true;
        s->relisting = true;
        list_step(s, lo);
    } else {
        s->open_err = SB_ENOMEM;
        s->opening = 0;
    }
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
        s_destroy(&s->base);
        return e == SB_EINVAL ? SB_EINVAL : (e == SB_ENOMEM ? SB_ENOMEM : SB_EUNAVAIL);
    }
    SB_LOG_INFO("cp", "etcd store open", "id=%s lease=%lld ttl_s=%lld", s->id, (long long)s->lease,
                (long long)s->ttl_s);
    *out = &s->base;
    return SB_OK;
}
