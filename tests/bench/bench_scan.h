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

/* Reads the integer value of `key` into *out. 0 on success, -1 when absent or not a number. */
int bench_scan_i64(const char *buf, size_t len, const char *key, int64_t *out);

/* Copies the string value of `key` (no escapes expected) into out (cap bytes incl. NUL).
 * 0 on success, -1 when absent, not a string or too long. */
int bench_scan_str(const char *buf, size_t len, const char *key, char *out, size_t cap);

/* The frame's `type`. */
enum bench_frame bench_scan_type(const char *buf, size_t len);

#endif
