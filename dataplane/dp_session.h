/* One client connection, whatever its transport: identity, state, the bounded outbox of shared
 * frames, the requests waiting for the control plane, and the SSE stream position.
 * The transport plugs in through dp_session_ops. lws thread only. */
#ifndef DP_SESSION_H
#define DP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_buf.h"
#include "dp_frame.h"
#include "dp_sse_fmt.h"
#include "sb_err.h"
#include "sb_id.h"
#include "sb_ident.h"

enum dp_transport { DP_TRANSPORT_WS, DP_TRANSPORT_SSE };

enum dp_session_state {
    DP_SESSION_OPENING, /* ConnOpen sent, waiting for ConnOpened */
    DP_SESSION_OPEN,    /* `connected` sent; indexed for fan-out */
    DP_SESSION_CLOSING, /* a close is pending; nothing more is queued */
};

enum dp_overflow { DP_OVERFLOW_DISCONNECT, DP_OVERFLOW_DROP };

/* Outbox slots kept inside the session (see struct dp_session's ring). */
#define DP_SESSION_INLINE 4

struct dp_session;

struct dp_session_ops {
    /* The outbox went from empty to non-empty, or a close was requested: ask for a writeable
     * callback. */
    void (*want_write)(struct dp_session *s);
    /* The outbox overflowed under the "disconnect" policy: close without waiting. */
    void (*abort)(struct dp_session *s);
};

/* An answer owed to the client: one per request forwarded to the control plane. */
struct dp_pending {
    struct dp_pending *next;
    uint64_t request_id;
    enum dp_frame_type type;
    bool has_ref;
    char ref[DP_FRAME_REF_MAX + 1];
    char room_id[SB_IDENT_MAX + 1];
    struct dp_post *post; /* SSE POST waiting for this answer, or NULL */
    /* The packed NodeItem, kept until the answer so a control-plane failover can re-send it
     * to the next primary with the same request id (owned). */
    unsigned char *item;
    size_t item_len;
    uint64_t sent_gen; /* primary generation it was last sent to (0: not sent yet) */
    bool resent;       /* sent to more than one primary */
};

struct dp_session {
    /* What a fan-out touches for every member comes first, so it spans as few cache lines as
     * possible: at 10,000 members the fan-out is a walk over 10,000 sessions and its cost is
     * mostly cache misses. */
    uint64_t mark; /* fan-out de-duplication */
    enum dp_session_state state;
    enum dp_overflow policy;
    bool overflowed;
    /* bounded outbox: a ring of shared frames. It lives in `inl` while at most DP_SESSION_INLINE
     * frames are queued (the steady state of a fan-out: no allocation per delivery), moves to the
     * heap when more are queued and back into `inl` once drained, so an idle connection holds no
     * ring memory beyond `inl` whatever burst it once absorbed. */
    struct dp_buf **ring;
    size_t head, count, cap;
    size_t bytes;
    size_t max_frames, max_bytes;
    /* Monotonic ms when the outbox last went from empty to non-empty or last made progress
     * (a frame written); 0 while empty. dp_hub_sweep closes sessions stalled too long: one
     * timestamp per session instead of an lws timeout re-armed on every frame, which costs a
     * walk of lws' sorted timer list each time (O(N^2) per fan-out to N connections). */
    int64_t stall_since_ms;
    const struct dp_session_ops *ops;
    void *wsi; /* the transport's handle (struct lws *) */
    struct dp_buf *inl[DP_SESSION_INLINE];

    char connection_id[SB_ID_LEN];
    /* Heap strings sized to their ids (fixed arrays of SB_IDENT_MAX + 1 cost ~390 bytes per
     * connection); change them with dp_session_set_ids. Never NULL. */
    char *session_id;        /* fresh, or the resumed one after ConnOpened */
    char *resume_session_id; /* asked for with ?session_id= ("" : none) */
    char *user_id;
    enum dp_transport transport;
    int64_t connected_at_ms;
    uint64_t open_request_id; /* of the last ConnOpen sent (0: none yet) */
    uint64_t open_gen;        /* primary generation that ConnOpen went to */
    bool indexed;             /* in the router */
    uint64_t dropped;
    size_t write_off; /* bytes of ring[head] already written (partial SSE/WS writes) */

    /* close after the outbox drains */
    bool close_pending;
    int close_code;
    char close_reason[64];

    /* answers owed */
    struct dp_pending *pending_head, *pending_tail;
    size_t n_pending;

    /* SSE: last seq seen per room on this stream */
    struct dp_sse_pos pos;

    /* the token the connection stands on (NULL: development mode), see dp_token.h */
    struct sb_jwt_claims *auth;
    bool expiring_sent; /* token_expiring went out for this token */
};

/* Outboxes currently on the heap, and outboxes moved back inline since the counter was last
 * reset (the server trims the heap after a burst from these). lws thread only. */
extern size_t dp_session_heap_rings;
extern size_t dp_session_rings_released;

/* Coarse monotonic clock (ms) for the outbox stall timestamps, refreshed by the server every
 * 100 ms; 0 (unit tests): read the real clock. A clock_gettime per frame written cost ~4% of
 * the data plane's samples in a flat-out fan-out, for a deadline counted in seconds. */
extern int64_t dp_session_clock_ms;

/* Returns a new session (state OPENING, ids fresh) for `user_id` (valid id), or NULL on ENOMEM.
 * The caller owns it: dp_session_destroy. */
struct dp_session *dp_session_create(enum dp_transport transport, const char *user_id,
                                     const struct dp_session_ops *ops, size_t max_frames,
                                     size_t max_bytes, enum dp_overflow policy);

/* Replaces the session id (`session_id`, NULL: unchanged) and the id asked for with
 * ?session_id= (`resume`, NULL: unchanged; "" : none). SB_ENOMEM leaves the old value. */
enum sb_err dp_session_set_ids(struct dp_session *s, const char *session_id, const char *resume);

/* Frees the session, its queued references and pending answers (their POSTs are detached
 * by the caller first). */
void dp_session_destroy(struct dp_session *s);

/* Appends a reference to `b` (the caller keeps its own). SB_OK when queued; SB_EFULL when the
 * outbox is full: under DP_OVERFLOW_DROP the frame is dropped and counted, under
 * DP_OVERFLOW_DISCONNECT the session is marked overflowed and ops->abort is called.
 * SB_EPERM when the session is closing (frame ignored). */
enum sb_err dp_session_push(struct dp_session *s, struct dp_buf *b);

/* Same, but puts the frame at the front (the `connected` frame goes before anything that was
 * answered locally while the session was opening). Bounds are still enforced. */
enum sb_err dp_session_push_front(struct dp_session *s, struct dp_buf *b);

/* Returns the i-th queued frame (borrowed) or NULL. */
struct dp_buf *dp_session_peek(const struct dp_session *s, size_t i);

/* Removes the frame at the front and drops its reference. */
void dp_session_pop(struct dp_session *s);

/* Number of frames queued. */
size_t dp_session_queued(const struct dp_session *s);

/* Asks for a close with `code` and `reason` once the outbox has drained (ops->want_write is
 * called). Later pushes are refused. */
void dp_session_close_after_drain(struct dp_session *s, int code, const char *reason);

/* Pending answers: add at the tail (SB_EFULL beyond `max`), take the one with `request_id`
 * (the caller frees it), or take the oldest. */
enum sb_err dp_session_pending_add(struct dp_session *s, struct dp_pending *p, size_t max);
struct dp_pending *dp_session_pending_take(struct dp_session *s, uint64_t request_id);
struct dp_pending *dp_session_pending_take_first(struct dp_session *s);

/* Frees a pending answer taken from the list (and its packed item). NULL is ignored. */
void dp_session_pending_free(struct dp_pending *p);

#endif
