/* Transactions of the etcd Store: a builder that collects compares and ops (keeping a copy of
 * every key and value it is given) and renders the /v3/kv/txn body, and the reading of a txn's
 * answer: applied, lost, or unknown. Pure: no I/O, no global state; any thread.
 *
 * Builder errors (out of memory, a key that cannot be built, too many failure ops) set
 * `failed`; cp_etxn_json then gives NULL, so callers build on without checking each step. */
#ifndef CP_ETXN_H
#define CP_ETXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_etcd_json.h"
#include "sb_err.h"

/* Failure ops of one txn at most (reads of what made it fail). */
#define CP_ETXN_MAX_FAILURE 8

struct cp_etxn {
    struct cp_etcd_cmp *cmp;
    size_t nc, capc;
    struct cp_etcd_op *succ;
    size_t ns, caps;
    struct cp_etcd_op fail[CP_ETXN_MAX_FAILURE];
    size_t nf;
    char **strs; /* the copies, freed by fini */
    size_t nstr, capstr;
    bool failed;
};

void cp_etxn_init(struct cp_etxn *t);
void cp_etxn_fini(struct cp_etxn *t);

/* A copy of n bytes (+ NUL) kept until fini ({NULL, 0} and failed on ENOMEM). */
struct cp_etcd_bytes cp_etxn_bytes(struct cp_etxn *t, const char *p, size_t n);
struct cp_etcd_bytes cp_etxn_str(struct cp_etxn *t, const char *s);

/* A new zeroed success op (NULL and failed on ENOMEM). */
struct cp_etcd_op *cp_etxn_op(struct cp_etxn *t);

/* Compare `key` (target) `result` num: CREATE 0 is "absent", MOD the mod_revision. */
void cp_etxn_cmp(struct cp_etxn *t, const char *key, enum cp_etcd_cmp_target target,
                 enum cp_etcd_cmp_result result, int64_t num);
/* Compare `key`'s value EQUAL to `value`. */
void cp_etxn_cmp_value(struct cp_etxn *t, const char *key, const char *value);

/* Success ops. */
void cp_etxn_put(struct cp_etxn *t, const char *key, const char *val, size_t vlen, int64_t lease);
/* Deletes `key`, or with prefix every key under it. */
void cp_etxn_del(struct cp_etxn *t, const char *key, bool prefix);
/* Deletes [from, to): full keys of from_n and to_n bytes. */
void cp_etxn_del_range(struct cp_etxn *t, const char *from, size_t from_n, const char *to,
                       size_t to_n);
/* Deletes [from, to) minus the keys `skip` (sorted, all inside the range, each NUL-terminated):
 * etcd refuses a txn whose put falls inside one of its deletes, so the range is cut around
 * each key the same txn puts (the put overwrites it anyway). */
void cp_etxn_del_except(struct cp_etxn *t, const char *from, const char *to, size_t to_n,
                        char *const *skip, size_t n_skip);

/* Reads, in the success branch or (`failure`) in the failure branch. */
void cp_etxn_get(struct cp_etxn *t, bool failure, const char *key, bool prefix);
/* [key, end) (end.p NULL: the single key), at most `limit` keys (0: all), highest first when
 * `descend`. */
void cp_etxn_range(struct cp_etxn *t, bool failure, struct cp_etcd_bytes key,
                   struct cp_etcd_bytes end, int64_t limit, bool descend);
/* The last `limit` keys under `prefix`, highest first. */
void cp_etxn_get_tail(struct cp_etxn *t, bool failure, const char *prefix, int64_t limit);

/* A write marker: the put of `marker_key` ("" on `lease`) and its read as the only failure op.
 * A compare-guarded txn sent again after its first attempt landed (the answer was lost, the
 * request retried on another endpoint) fails its compares on its own changes; the marker read
 * back in the failure branch says it landed (cp_etxn_answer_parse with `marker`). */
void cp_etxn_marker(struct cp_etxn *t, const char *marker_key, int64_t lease);

/* The txn's JSON body (new; NULL when anything failed). Finalises the builder. */
char *cp_etxn_json(struct cp_etxn *t);

/* ---- answers */

enum cp_etxn_outcome {
    CP_ETXN_UNKNOWN = 0, /* no answer or an unreadable one: the txn may or may not have landed */
    CP_ETXN_APPLIED,     /* the compares held (or the marker says an earlier attempt landed) */
    CP_ETXN_LOST,        /* a compare failed: nothing was written */
};

struct cp_etxn_answer {
    enum cp_etxn_outcome outcome;
    enum sb_err err;  /* UNKNOWN: the request's status, or the parser's (SB_EPROTO, SB_ENOMEM) */
    int64_t revision; /* the txn's revision; by_marker: the revision of the attempt that landed */
    bool by_marker;
    struct cp_etcd_txn_result r; /* the ops of the branch that ran; empty when UNKNOWN */
};

/* Reads the answer of a txn: `status` and `body` as cp_etcd_call gives them. With `marker` the
 * txn was built with cp_etxn_marker. Release with cp_etxn_answer_fini. */
void cp_etxn_answer_parse(enum sb_err status, const char *body, size_t len, bool marker,
                          struct cp_etxn_answer *out);
void cp_etxn_answer_fini(struct cp_etxn_answer *a);

/* Op i's result (NULL when absent), and a result's first kv (NULL when none). Borrowed. */
const struct cp_etcd_result *cp_etxn_answer_op(const struct cp_etxn_answer *a, size_t i);
const struct cp_etcd_kv *cp_etxn_first_kv(const struct cp_etcd_result *r);

#endif
