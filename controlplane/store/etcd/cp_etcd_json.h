/* etcd 3.4 JSON gateway (/v3/...) request bodies and response parsers. Pure: no I/O, no
 * global state; every function may be called from any thread.
 *
 * Wire rules (NOTES.md, "etcd"): keys, values and range_end are standard base64; int64s are
 * JSON strings both ways (lease ids exceed 2^53); fields at their zero value are absent from
 * answers (no "succeeded":false, "count":"0", "kvs":[], "type":"PUT", "TTL" of a dead lease);
 * unknown request fields are ignored by etcd, so request JSON is built here only, from
 * constants, and unit-tested.
 *
 * Builders return SB_OK and a new NUL-terminated string in *out (caller frees with free()),
 * SB_EINVAL for a missing key or a bad argument, SB_ENOMEM. Parsers take a body of `len` bytes
 * (not necessarily NUL-terminated) and return SB_OK, SB_EPROTO for anything that is not the
 * expected shape (invalid JSON, wrong types, bad base64, non-numeric int64) or SB_ENOMEM; their
 * out-structs are written only on success and released with the matching _fini. */
#ifndef CP_ETCD_JSON_H
#define CP_ETCD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"

/* ---- Requests ------------------------------------------------------------------------ */

/* Keys, range_end and values are byte strings (ptr, len). A NULL range_end means the single
 * key; use cp_keys_range_end() for prefixes. */
struct cp_etcd_bytes {
    const char *p;
    size_t n;
};

/* Wraps a NUL-terminated string (NULL stays NULL). */
struct cp_etcd_bytes cp_etcd_json_str(const char *s);

struct cp_etcd_range_req {
    struct cp_etcd_bytes key;
    struct cp_etcd_bytes range_end; /* p NULL: single key */
    int64_t limit;                  /* 0: none */
    int64_t revision;               /* 0: newest */
    bool keys_only;
    bool count_only;
    bool descend; /* sort by key, newest (highest) first; with limit: the last keys */
};

struct cp_etcd_put_req {
    struct cp_etcd_bytes key;
    struct cp_etcd_bytes value; /* may be empty */
    int64_t lease;              /* 0: none. NOTE a put without lease detaches a leased key */
    bool ignore_lease;          /* keep the key's current lease */
    bool prev_kv;
};

struct cp_etcd_delete_req {
    struct cp_etcd_bytes key;
    struct cp_etcd_bytes range_end; /* p NULL: single key */
    bool prev_kv;                   /* expensive on bulk deletes: avoid */
};

enum cp_etcd_op_type {
    CP_ETCD_OP_RANGE = 0,
    CP_ETCD_OP_PUT,
    CP_ETCD_OP_DELETE,
};

struct cp_etcd_op {
    enum cp_etcd_op_type type;
    union {
        struct cp_etcd_range_req range;
        struct cp_etcd_put_req put;
        struct cp_etcd_delete_req del;
    } u;
};

enum cp_etcd_cmp_target {
    CP_ETCD_CMP_VERSION = 0,
    CP_ETCD_CMP_CREATE,
    CP_ETCD_CMP_MOD,
    CP_ETCD_CMP_VALUE,
    CP_ETCD_CMP_LEASE,
};

enum cp_etcd_cmp_result {
    CP_ETCD_CMP_EQUAL = 0,
    CP_ETCD_CMP_GREATER,
    CP_ETCD_CMP_LESS,
    CP_ETCD_CMP_NOT_EQUAL,
};

/* One compare: `key` (target) `result` operand. The operand is `num` for VERSION, CREATE
 * (create_revision; 0 = absent), MOD (mod_revision) and LEASE, `value` for VALUE. */
struct cp_etcd_cmp {
    struct cp_etcd_bytes key;
    enum cp_etcd_cmp_target target;
    enum cp_etcd_cmp_result result;
    int64_t num;
    struct cp_etcd_bytes value;
};

struct cp_etcd_txn_req {
    const struct cp_etcd_cmp *compare;
    size_t n_compare;
    const struct cp_etcd_op *success;
    size_t n_success;
    const struct cp_etcd_op *failure;
    size_t n_failure;
};

/* Paths to POST each body to. */
#define CP_ETCD_PATH_RANGE     "/v3/kv/range"
#define CP_ETCD_PATH_PUT       "/v3/kv/put"
#define CP_ETCD_PATH_DELETE    "/v3/kv/deleterange"
#define CP_ETCD_PATH_TXN       "/v3/kv/txn"
#define CP_ETCD_PATH_COMPACT   "/v3/kv/compaction"
#define CP_ETCD_PATH_GRANT     "/v3/lease/grant"
#define CP_ETCD_PATH_KEEPALIVE "/v3/lease/keepalive"
#define CP_ETCD_PATH_REVOKE    "/v3/lease/revoke"
#define CP_ETCD_PATH_TTL       "/v3/lease/timetolive"
#define CP_ETCD_PATH_LOCK      "/v3/lock/lock"
#define CP_ETCD_PATH_UNLOCK    "/v3/lock/unlock"
#define CP_ETCD_PATH_WATCH     "/v3/watch"

enum sb_err cp_etcd_json_range(const struct cp_etcd_range_req *r, char **out);
enum sb_err cp_etcd_json_put(const struct cp_etcd_put_req *r, char **out);
enum sb_err cp_etcd_json_delete(const struct cp_etcd_delete_req *r, char **out);
/* Every op and compare needs a key; an empty success and failure is allowed (a pure check). */
enum sb_err cp_etcd_json_txn(const struct cp_etcd_txn_req *r, char **out);
/* {"revision":"R"}: compacts history up to R. */
enum sb_err cp_etcd_json_compact(int64_t revision, char **out);
/* {"TTL":"ttl"} (ttl > 0), and id 0 lets etcd choose the lease id. */
enum sb_err cp_etcd_json_lease_grant(int64_t ttl_s, int64_t id, char **out);
/* {"ID":"id"} for keepalive and revoke (id != 0). */
enum sb_err cp_etcd_json_lease_id(int64_t id, char **out);
/* {"ID":"id","keys":true|omitted} for timetolive. */
enum sb_err cp_etcd_json_lease_ttl(int64_t id, bool keys, char **out);
/* {"name":b64,"lease":"id"}: always pass your own lease (id != 0). */
enum sb_err cp_etcd_json_lock(struct cp_etcd_bytes name, int64_t lease, char **out);
/* {"key":b64}: the key the lock call answered. */
enum sb_err cp_etcd_json_unlock(struct cp_etcd_bytes key, char **out);
/* {"create_request":{key, range_end, start_revision, progress_notify}}; prev_kv is never
 * requested (put what a DELETE needs into the key). start_revision 0: from now. */
enum sb_err cp_etcd_json_watch_create(struct cp_etcd_bytes key, struct cp_etcd_bytes range_end,
                                      int64_t start_revision, bool progress_notify, char **out);
/* {"cancel_request":{"watch_id":"id"}}. */
enum sb_err cp_etcd_json_watch_cancel(int64_t watch_id, char **out);

/* ---- Responses ----------------------------------------------------------------------- */

/* A key-value pair, decoded. key and value are new NUL-terminated copies (the NUL is not
 * counted in the lengths; keys and values may contain NULs). */
struct cp_etcd_kv {
    char *key;
    size_t key_len;
    char *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
};

/* Range, put and delete answers (and the ops of a txn). */
struct cp_etcd_result {
    int64_t revision;       /* header revision (0 when absent) */
    struct cp_etcd_kv *kvs; /* range: the kvs; put: the prev_kv (0 or 1); delete: prev_kvs */
    size_t n_kvs;
    int64_t count; /* range: total matching keys; delete: keys deleted */
    bool more;     /* range: limit cut the answer */
};

struct cp_etcd_txn_op_result {
    enum cp_etcd_op_type type;
    struct cp_etcd_result r;
};

struct cp_etcd_txn_result {
    int64_t revision;
    bool succeeded; /* absent field: false (the compare lost) */
    struct cp_etcd_txn_op_result *ops;
    size_t n_ops;
};

struct cp_etcd_lease {
    int64_t revision;
    int64_t id;
    int64_t ttl;         /* remaining seconds; 0 (absent) or -1: the lease is gone */
    int64_t granted_ttl; /* timetolive only */
    char **keys;         /* timetolive with keys: decoded keys, NUL-terminated */
    size_t *key_lens;
    size_t n_keys;
};

/* An error answer: {"error":"..","message":"..","code":N} (unary) or
 * {"error":{"grpc_code":N,"http_code":N,"message":".."}} (stream). */
struct cp_etcd_error {
    int grpc_code;
    char *message; /* new; may be "" */
};

void cp_etcd_json_kv_fini(struct cp_etcd_kv *kv);
void cp_etcd_json_result_fini(struct cp_etcd_result *r);
void cp_etcd_json_txn_result_fini(struct cp_etcd_txn_result *r);
void cp_etcd_json_lease_fini(struct cp_etcd_lease *l);
void cp_etcd_json_error_fini(struct cp_etcd_error *e);

/* Just the header revision of any answer (0 when absent). */
enum sb_err cp_etcd_json_parse_revision(const char *body, size_t len, int64_t *out);
/* Range, put (prev_kv) and deleterange answers. */
enum sb_err cp_etcd_json_parse_result(const char *body, size_t len, struct cp_etcd_result *out);
enum sb_err cp_etcd_json_parse_txn(const char *body, size_t len, struct cp_etcd_txn_result *out);
/* grant, timetolive, and keepalive (whose answer is wrapped in "result"). */
enum sb_err cp_etcd_json_parse_lease(const char *body, size_t len, struct cp_etcd_lease *out);
/* Lock answer: the held key (decoded, new, NUL-terminated) and the header revision. */
enum sb_err cp_etcd_json_parse_lock(const char *body, size_t len, char **key, size_t *key_len,
                                    int64_t *revision);
/* SB_OK when the body is an error object (either form); SB_EPROTO otherwise. */
enum sb_err cp_etcd_json_parse_error(const char *body, size_t len, struct cp_etcd_error *out);

/* ---- Watch stream -------------------------------------------------------------------- */

enum cp_etcd_event_type {
    CP_ETCD_EVENT_PUT = 0,
    CP_ETCD_EVENT_DELETE,
};

struct cp_etcd_event {
    enum cp_etcd_event_type type;
    struct cp_etcd_kv kv; /* DELETE: key and mod_revision only */
};

/* One line of the watch stream. Exactly one of the kinds applies:
 *   ERROR:    the stream failed (error object); grpc_code/message set.
 *   CANCELED: the watch was cancelled; compact_revision > 0 when the start revision was
 *             compacted (the caller must re-list), cancel_reason may explain others.
 *   CREATED:  the watch exists (header revision = store revision at creation).
 *   EVENTS:   n_events >= 1, in revision order; a catch-up line may span several revisions
 *             (use each kv.mod_revision; the header revision is the store's, not the events').
 *   PROGRESS: no events: every event up to `revision` has been sent. */
enum cp_etcd_watch_kind {
    CP_ETCD_WATCH_ERROR = 0,
    CP_ETCD_WATCH_CANCELED,
    CP_ETCD_WATCH_CREATED,
    CP_ETCD_WATCH_EVENTS,
    CP_ETCD_WATCH_PROGRESS,
};

struct cp_etcd_watch_msg {
    enum cp_etcd_watch_kind kind;
    int64_t revision; /* header revision (0 when absent) */
    int64_t watch_id;
    int64_t compact_revision;
    char *cancel_reason; /* new or NULL */
    int grpc_code;       /* ERROR */
    char *message;       /* ERROR: new or NULL */
    struct cp_etcd_event *events;
    size_t n_events;
};

enum sb_err cp_etcd_json_parse_watch(const char *line, size_t len, struct cp_etcd_watch_msg *out);
void cp_etcd_json_watch_msg_fini(struct cp_etcd_watch_msg *m);

/* Incremental '\n' splitter for chunked streams. Lines are handed out without the '\n' (and
 * without a trailing '\r'); blank lines are skipped. A line longer than max_line fails with
 * SB_EFULL (the stream must be dropped). */
struct cp_etcd_lines {
    char *buf; /* partial line carried between chunks */
    size_t len;
    size_t cap;
    size_t max_line;
};

/* Called for each complete line; a non-SB_OK return stops feeding and is returned. */
typedef enum sb_err cp_etcd_line_fn(void *ud, const char *line, size_t len);

void cp_etcd_json_lines_init(struct cp_etcd_lines *l, size_t max_line);
void cp_etcd_json_lines_fini(struct cp_etcd_lines *l);
/* Drops a partial line (after a reconnect). */
void cp_etcd_json_lines_reset(struct cp_etcd_lines *l);
/* Feeds one chunk; complete lines go to fn in order. */
enum sb_err cp_etcd_json_lines_feed(struct cp_etcd_lines *l, const char *data, size_t n,
                                    cp_etcd_line_fn *fn, void *ud);
/* End of stream: hands out a final unterminated line, if any, then resets. */
enum sb_err cp_etcd_json_lines_finish(struct cp_etcd_lines *l, cp_etcd_line_fn *fn, void *ud);

/* ---- Base64 (standard alphabet, padded) ---------------------------------------------- */

/* New NUL-terminated base64 text of n bytes. */
enum sb_err cp_etcd_json_b64_encode(const void *p, size_t n, char **out, size_t *out_len);
/* New decoded bytes + NUL; SB_EPROTO on bad characters, length or padding. */
enum sb_err cp_etcd_json_b64_decode(const char *s, size_t n, char **out, size_t *out_len);

#endif
