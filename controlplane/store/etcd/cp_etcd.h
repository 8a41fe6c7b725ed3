/* etcd v3 JSON gateway client: one thread runs a curl multi handle that carries every request,
 * watch stream, lease keep-alive and blocking lock call, so none of them blocks another.
 *
 * Threads: cp_etcd_create/start/stop/destroy belong to the owner's thread (main). Every other
 * function may be called from any thread (a locked command queue wakes the multi loop with
 * curl_multi_wakeup) and never blocks on the network. Every callback runs on the etcd thread:
 * callbacks must not block; to touch control-plane state, hand the result over to the
 * completion-queue thread (cp_server.c). Calling back into this API from a callback is fine.
 * Bodies and results given to callbacks are borrowed for the duration of the callback.
 *
 * Requests: every request is a POST of JSON (cp_etcd_json.h builds them) with
 * "Grpc-Metadata-hasleader: true" (a member without quorum answers 503 instead of hanging).
 * Endpoint failover: a transport error, 5xx or 408 makes the client prefer the next endpoint;
 * the failed request is retried there (after a short pause once every endpoint has failed)
 * until its deadline when it is flagged CP_ETCD_RETRY (idempotent or compare-guarded), or when
 * it never reached the server (connection refused / could not resolve). See docs/etcd.md. */
#ifndef CP_ETCD_H
#define CP_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_etcd_json.h"
#include "sb_err.h"

struct cp_etcd;
struct cp_etcd_watch;
struct cp_etcd_keepalive;

struct cp_etcd_config {
    const char *endpoints;  /* "http://a:2379,http://b:2379" (copied); no scheme: http:// */
    int connect_timeout_ms; /* 0: 1000 */
    int retry_pause_ms;     /* 0: 100; pause after every endpoint failed once (doubling, <=1 s) */
    int watch_backoff_ms;   /* 0: 100; first reconnect delay of a watch (doubling, <= 1 s) */
    /* A watch stream silent for this long is dropped and resumed (low-speed limit). Must
     * exceed etcd's --experimental-watch-progress-notify-interval (default 10 min; we run etcd
     * with 2-5 s). 0: 30000. */
    int watch_idle_ms;
    size_t max_response; /* 0: 64 MiB; larger answers fail with SB_EPROTO */
    /* Requests in flight at once (each holds a TCP connection: the gateway is HTTP/1.1); more
     * wait in a FIFO. Watches and CP_ETCD_UNQUEUED calls (locks, keep-alives) are not counted.
     * 0: 64. */
    int max_inflight;
};

/* Request flags. */
#define CP_ETCD_RETRY           0x1u /* idempotent or compare-guarded: retry on another endpoint */
#define CP_ETCD_EXPECT_CONTINUE 0x2u /* send "Expect: 100-continue" (bodies kept open) */
#define CP_ETCD_UNQUEUED        0x4u /* bypass max_inflight (blocking calls, keep-alives) */

/* Completion of cp_etcd_call. status: SB_OK (HTTP 200, body is the answer), SB_EPROTO (etcd
 * answered another 4xx: body is its error object, see cp_etcd_json_parse_error; or the answer
 * was too large), SB_EUNAVAIL (no endpoint answered, or 5xx/408 at the end; also when the
 * client stops), SB_ETIMEDOUT (the deadline passed), SB_EAGAIN (cancelled by cp_etcd_cancel).
 * http_code is 0 when no HTTP answer was received. body is "" (len 0) when there is none. */
typedef void cp_etcd_call_fn(void *ud, enum sb_err status, long http_code, const char *body,
                             size_t len);

/* Generic completion. */
typedef void cp_etcd_done_fn(void *ud, enum sb_err status);

/* Creates a stopped client. Returns SB_EINVAL for an empty or malformed endpoint list,
 * SB_ENOMEM. Owner's thread. */
enum sb_err cp_etcd_create(const struct cp_etcd_config *cfg, struct cp_etcd **out);

/* Starts the etcd thread. Requests submitted before start wait for it. SB_EIO if the thread
 * cannot be created. Owner's thread. */
enum sb_err cp_etcd_start(struct cp_etcd *e);

/* Stops the thread and joins it (bounded: no network wait). Requests still pending complete
 * with SB_EUNAVAIL on the etcd thread before it exits; watches and keep-alives stop silently.
 * Later submissions fail with SB_EUNAVAIL. Owner's thread; idempotent. */
void cp_etcd_stop(struct cp_etcd *e);

/* Stops if needed and frees everything, including watch and keep-alive handles never closed.
 * NULL is fine. */
void cp_etcd_destroy(struct cp_etcd *e);

/* Number of endpoints and the one currently preferred (for logs and tests). Any thread. */
size_t cp_etcd_endpoint_count(const struct cp_etcd *e);
size_t cp_etcd_preferred_endpoint(struct cp_etcd *e);

/* POSTs json_body (copied) to path ("/v3/kv/put") on the preferred endpoint. timeout_ms is the
 * overall deadline across retries (0: none, for blocking calls such as locks). cb fires exactly
 * once, on the etcd thread, unless this returns an error. If id_out is non-NULL it receives an
 * id for cp_etcd_cancel. Returns SB_OK, SB_EINVAL, SB_ENOMEM, SB_EUNAVAIL (stopped). */
enum sb_err cp_etcd_call(struct cp_etcd *e, const char *path, const char *json_body, int timeout_ms,
                         unsigned flags, cp_etcd_call_fn *cb, void *ud);
enum sb_err cp_etcd_call_id(struct cp_etcd *e, const char *path, const char *json_body,
                            int timeout_ms, unsigned flags, cp_etcd_call_fn *cb, void *ud,
                            uint64_t *id_out);

/* Cancels a pending call: its callback fires with SB_EAGAIN (unless it already completed, in
 * which case nothing happens). Any thread. */
void cp_etcd_cancel(struct cp_etcd *e, uint64_t id);

/* ---- Watches --------------------------------------------------------------------------- */

/* A batch of events, in revision order, each newer than every event delivered before on this
 * watch (events[i].kv.mod_revision is the revision). Borrowed. */
typedef void cp_etcd_watch_event_fn(void *ud, const struct cp_etcd_event *events, size_t n);

/* The start revision was compacted: the watch is paused. Re-list the range (note the answer's
 * header revision R), then cp_etcd_watch_restart(w, R + 1). */
typedef void cp_etcd_watch_reset_fn(void *ud, int64_t compact_revision);

typedef void cp_etcd_closed_fn(void *ud);

/* Watches [key, range_end) (range_end NULL: one key; use cp_keys_range_end for a prefix) from
 * start_rev (0: from now). A long-lived streaming POST parsed incrementally; on any disconnect
 * (error, etcd restart, a stream that ends normally, a silent stream) it reconnects from the
 * last delivered revision + 1 after a short backoff, on any endpoint, so events are never
 * skipped nor repeated. Returns the handle in *out (valid until closed). Any thread. */
enum sb_err cp_etcd_watch_start(struct cp_etcd *e, const char *key, const char *range_end,
                                int64_t start_rev, cp_etcd_watch_event_fn *event_cb,
                                cp_etcd_watch_reset_fn *reset_cb, void *ud,
                                struct cp_etcd_watch **out);

/* Restarts the watch from `rev` (> 0), dropping the current stream if any; events below `rev`
 * are not delivered. Used after a reset. Any thread. */
void cp_etcd_watch_restart(struct cp_etcd_watch *w, int64_t rev);

/* Revision of the newest event delivered (or progress seen); 0 before any. Any thread. */
int64_t cp_etcd_watch_last_revision(struct cp_etcd_watch *w);

/* Closes the watch: no callback starts after closed_cb (may be NULL) fires on the etcd thread;
 * the handle is freed then. Any thread. */
void cp_etcd_watch_close(struct cp_etcd_watch *w, cp_etcd_closed_fn *closed_cb, void *ud);

/* ---- Leases ---------------------------------------------------------------------------- */

/* id and ttl of the new lease when status is SB_OK. */
typedef void cp_etcd_lease_fn(void *ud, enum sb_err status, int64_t id, int64_t ttl);

/* Grants a lease of ttl_s seconds (>= 2 with default election timeouts). Retried (a retry may
 * leave an orphan lease that expires by itself). */
enum sb_err cp_etcd_lease_grant(struct cp_etcd *e, int64_t ttl_s, int timeout_ms,
                                cp_etcd_lease_fn *cb, void *ud);

/* Revokes: every key attached is deleted. status SB_ENOTFOUND when the lease is already gone. */
enum sb_err cp_etcd_lease_revoke(struct cp_etcd *e, int64_t id, int timeout_ms, cp_etcd_done_fn *cb,
                                 void *ud);

/* The lease is gone (etcd answered a keep-alive without TTL, or "lease not found"). */
typedef void cp_etcd_lease_lost_fn(void *ud, int64_t id);

/* Keeps lease `id` (granted with ttl_s) alive: one keep-alive POST every ttl_s/3 on the etcd
 * thread (the first one at once). While etcd is unreachable it retries every 500 ms and says
 * nothing: only an authoritative answer reports loss (after which the keeper is idle until
 * closed). Any thread. */
enum sb_err cp_etcd_keepalive_start(struct cp_etcd *e, int64_t id, int64_t ttl_s,
                                    cp_etcd_lease_lost_fn *lost_cb, void *ud,
                                    struct cp_etcd_keepalive **out);

/* Unix-epoch-free monotonic ms of the last successful refresh (0: none yet). Any thread. */
int64_t cp_etcd_keepalive_last_ok_ms(struct cp_etcd_keepalive *k);

/* Stops refreshing (does not revoke); closed_cb (may be NULL) fires on the etcd thread when no
 * lost_cb can run any more; the handle is freed then. Any thread. */
void cp_etcd_keepalive_close(struct cp_etcd_keepalive *k, cp_etcd_closed_fn *closed_cb, void *ud);

/* ---- Locks ----------------------------------------------------------------------------- */

/* key: the held lock key ("<name>/<lease hex>"), create_revision: its create revision, which
 * rises with every holder: guard every write made under the lock with a txn compare
 * CREATE(key) == create_revision (fencing). */
typedef void cp_etcd_lock_fn(void *ud, enum sb_err status, const char *key, size_t key_len,
                             int64_t create_revision);

/* Acquires lock `name` (e.g. cp_keys_lock_room) for lease `lease` (your own, kept alive): the
 * call waits on the multi handle while another lease holds it, never blocking other requests.
 * timeout_ms 0: wait until acquired or cancelled (cp_etcd_cancel with *id_out: status
 * SB_EAGAIN). Retried across endpoints (one lease = one holder, so a retry is harmless). After
 * a cancel or an error the lock may still have been granted: unlock "<name>/<lease hex>" or
 * revoke the lease to be sure. */
enum sb_err cp_etcd_lock(struct cp_etcd *e, const char *name, int64_t lease, int timeout_ms,
                         cp_etcd_lock_fn *cb, void *ud, uint64_t *id_out);

/* Releases a held lock key (deleting it); etcd answers OK for a missing key. */
enum sb_err cp_etcd_unlock(struct cp_etcd *e, const char *key, size_t key_len, int timeout_ms,
                           cp_etcd_done_fn *cb, void *ud);

#endif
