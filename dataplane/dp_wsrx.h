/* WebSocket message reassembly: the size accounting and buffering of one connection's incoming
 * message, fed one libwebsockets receive callback at a time. Pure (no sockets): unit-tested and
 * fuzzed. lws thread only, like the connection that owns it. */
#ifndef DP_WSRX_H
#define DP_WSRX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One connection's reassembly state; zero-initialised storage is a valid empty state. */
struct dp_wsrx {
    char *buf; /* the message so far, only while it spans several callbacks */
    size_t len, cap;
    uint64_t total;  /* bytes of the current message received so far, buffered or not */
    bool in_message; /* a message has started and not ended */
    bool binary;     /* the current message is binary (never buffered) */
    bool discard;    /* the current message went over the soft limit: counted, not buffered */
    bool closed;     /* the hard limit was passed: nothing more is accepted */
};

/* One receive callback: `len` payload bytes at `data`, `remaining` bytes the frame's header
 * still announces (lws_remaining_packet_payload), `final` when this ends the message
 * (lws_is_final_fragment), `binary` for the frame's type (read at a message's start). */
struct dp_wsrx_chunk {
    const char *data;
    size_t len;
    uint64_t remaining;
    bool final;
    bool binary;
};

enum dp_wsrx_verdict {
    DP_WSRX_MORE,      /* the message goes on: nothing to do yet */
    DP_WSRX_MESSAGE,   /* a complete text message: *msg, *msg_len (see dp_wsrx_feed) */
    DP_WSRX_TOO_LARGE, /* a message over the soft limit ended: *msg_len is its size */
    DP_WSRX_BINARY,    /* a binary message ended (dropped): *msg_len is its size */
    DP_WSRX_CLOSE,     /* the message (received plus announced) passes the hard limit: close
                        * with 1009; every later feed answers this too */
    DP_WSRX_ENOMEM,    /* the buffer could not grow: close the connection */
};

/* Feeds one callback's chunk. Before anything is buffered, the message's received bytes plus
 * the bytes the current frame still announces are compared with `hard_limit` (close) and
 * `max_size` (drop and answer message_too_large at the end), without any sum that can
 * overflow: a 63-bit frame length closes at once. On DP_WSRX_MESSAGE, *msg is either the
 * chunk's own data (a message whole in one callback: no copy) or the reassembly buffer; it is
 * borrowed until dp_wsrx_release, which the caller calls after every verdict but MORE. */
enum dp_wsrx_verdict dp_wsrx_feed(struct dp_wsrx *rx, uint64_t max_size, uint64_t hard_limit,
                                  const struct dp_wsrx_chunk *c, const char **msg, size_t *msg_len);

/* Frees the reassembly buffer after a completed message (buffers are rare, and not kept idle).
 * Keeps the closed state. */
void dp_wsrx_release(struct dp_wsrx *rx);

/* Frees everything (NULL-safe contents); the storage can be reused as a new empty state. */
void dp_wsrx_fini(struct dp_wsrx *rx);

#endif
