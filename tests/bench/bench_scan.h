/* Cheap scanning of the server's JSON text frames for the load client: finds a key and reads its
 * number or string without a full JSON parse (the client reads millions of frames per second).
 * Pure functions; any thread; inputs need not be NUL-terminated. */
#ifndef BENCH_SCAN_H
#define BENCH_SCAN_H

#include <stddef.h>
#include <stdint.h>

enum bench_frame {
    BENCH_FRAME_OTHER = 0,
    BENCH_FRAME_CONNECTED,
    BENCH_FRAME_ACK,
    BENCH_FRAME_ERROR,
    BENCH_FRAME_MESSAGE,
    BENCH_FRAME_JOIN,
    BENCH_FRAME_PRESENCE,
};

/* Keys the publisher puts into `data` (chosen so no server field can be mistaken for them). */
#define BENCH_KEY_SENT_NS "sbt"
#define BENCH_KEY_COUNTER "sbn"

/* Pointer to the first byte of the value of the first `"key"` in buf[0..len) (after the colon and
 * any blanks), or NULL when absent or truncated. `key` is given without quotes. */
const char *bench_scan_value(const char *buf, size_t len, const char *key);

/* One pass for several keys: vals[k] gets the value of the first `"keys[k]"` (as
 * bench_scan_value gives it) or NULL. String values are skipped whole, so a key is only found
 * where a key stands (a quoted token followed by a colon); no escapes are expected. At most
 * BENCH_SCAN_KEYS_MAX keys. Returns how many were found. */
#define BENCH_SCAN_KEYS_MAX 8
size_t bench_scan_keys(const char *buf, size_t len, const char *const *keys, size_t n,
                       const char **vals);

/* Parses the integer at p (a value from bench_scan_value/bench_scan_keys; NULL allowed) up to
 * end into *out. 0 on success, -1 when not a number. */
int bench_parse_i64(const char *p, const char *end, int64_t *out);

/* Reads the integer value of `key` into *out. 0 on success, -1 when absent or not a number. */
int bench_scan_i64(const char *buf, size_t len, const char *key, int64_t *out);

/* Copies the string value of `key` (no escapes expected) into out (cap bytes incl. NUL).
 * 0 on success, -1 when absent, not a string or too long. */
int bench_scan_str(const char *buf, size_t len, const char *key, char *out, size_t cap);

/* The frame's `type`. */
enum bench_frame bench_scan_type(const char *buf, size_t len);

/* NATS server operations, read from the byte stream of a connection (nats-server's websocket
 * listener may split one operation across frames or batch many in one). */
enum bench_nats_op {
    BENCH_NATS_MORE = 0, /* incomplete: keep the bytes, read more */
    BENCH_NATS_MSG,      /* MSG <subject> <sid> [reply-to] <#bytes>\r\n<payload>\r\n */
    BENCH_NATS_PING,
    BENCH_NATS_PONG,
    BENCH_NATS_INFO,
    BENCH_NATS_OK,
    BENCH_NATS_ERR,   /* -ERR '...' */
    BENCH_NATS_OTHER, /* a line the client does not know */
    BENCH_NATS_BAD,   /* a MSG line whose size is not a number or over max_payload */
};

/* Parses the operation at the head of buf[0..len). *used = the bytes it takes (0 with MORE; the
 * whole buffer with BAD). For MSG, *data and *data_len are its payload; for ERR and OTHER the line
 * without its line end. Pure. */
enum bench_nats_op bench_nats_next(const char *buf, size_t len, size_t max_payload, size_t *used,
                                   const char **data, size_t *data_len);

/* WebSocket (RFC 6455) framing for the load client's lean receive path. */
enum bench_ws_res {
    BENCH_WS_MORE = 0, /* incomplete header or payload: keep the bytes, read more */
    BENCH_WS_FRAME,    /* one whole frame at the head of the buffer */
    BENCH_WS_BAD,      /* masked server frame, reserved bits, 64-bit length with the top bit set,
                        * payload over max_payload, or a control frame over 125 bytes / fragmented */
};

struct bench_ws_frame {
    uint8_t opcode; /* 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong */
    uint8_t fin;
    const unsigned char *payload;
    size_t payload_len;
    size_t frame_len; /* header + payload: the bytes to skip to the next frame */
};

/* Parses the server frame at the head of buf[0..len) (server frames are never masked). Pure. */
enum bench_ws_res bench_ws_parse(const unsigned char *buf, size_t len, size_t max_payload,
                                 struct bench_ws_frame *f);

/* Writes a client frame (FIN set, payload masked with `mask`, as RFC 6455 requires of clients)
 * into out; returns its length, or 0 when it does not fit in cap. Pure. */
size_t bench_ws_client_frame(unsigned char *out, size_t cap, uint8_t opcode, const void *payload,
                             size_t len, const unsigned char mask[4]);

#endif
