/* Reference-counted outgoing frame, shared by every session it is sent to.
 * Holds the JSON text once, pre-framed for WebSocket in its LWS_PRE headroom, plus a lazily
 * built SSE rendering; a fan-out appends references, never copies. */
#ifndef DP_BUF_H
#define DP_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"

/* Headroom kept before the JSON text; must be >= LWS_PRE (checked in dp_buf.c) and leaves room
 * for the 10-byte WebSocket header we write ourselves. */
#define DP_BUF_PRE 16

struct dp_buf {
    unsigned refs;     /* lws thread only: no atomics */
    size_t len;        /* JSON text length */
    char *json;        /* the JSON text, NUL-terminated, inside `mem` after DP_BUF_PRE */
    unsigned char *ws; /* WebSocket frame start (header + json), inside `mem` */
    size_t ws_len;
    char *sse; /* lazily built "event: T\ndata: ...\n\n" (heap), or NULL */
    size_t sse_len;
    char *room_id; /* room of a room message (heap), for SSE stream positions; NULL otherwise */
    int64_t seq;   /* that message's seq (0 otherwise) */
    /* A channel message: SSE gives it an `id:` with the stream's current position (channels
     * have no history, so the position itself only tracks rooms). Set after create. */
    bool channel;
    unsigned char mem[];
};

/* Returns a new buffer (refs = 1) holding a copy of `json` (len bytes), pre-framed as one final
 * WebSocket text frame. `room_id` (copied; may be NULL) and `seq` tag room messages. NULL on
 * ENOMEM. Any thread (the buffer is then handed over whole). */
struct dp_buf *dp_buf_create(const char *json, size_t len, const char *room_id, int64_t seq);

/* Adds a reference; returns `b`. lws thread. */
struct dp_buf *dp_buf_ref(struct dp_buf *b);

/* Drops a reference; frees at zero. NULL is ignored. lws thread. */
void dp_buf_unref(struct dp_buf *b);

/* Builds (once) and returns the SSE rendering of the frame in *out / *out_len (borrowed, valid
 * while the buffer lives). SB_ENOMEM on failure. lws thread. */
enum sb_err dp_buf_sse(struct dp_buf *b, const char **out, size_t *out_len);

/* Writes the WebSocket header of an unmasked final text frame of `len` bytes into `hdr`
 * (10 bytes) and returns its length (2, 4 or 10). Pure. */
size_t dp_buf_ws_header(size_t len, unsigned char hdr[10]);

#endif
