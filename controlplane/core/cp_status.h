/* Outcomes of control-plane operations: a protocol error code plus a sentence, and their gRPC
 * form (status code from the error table of sb_err.h, message "code: sentence"). Pure; any
 * thread. */
#ifndef CP_STATUS_H
#define CP_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "sb_err.h"

#define CP_STATUS_MSG_MAX 256

/* An operation's result. code == SB_CODE_NONE means success (msg empty). */
struct cp_status {
    enum sb_code code;
    char msg[CP_STATUS_MSG_MAX]; /* a human sentence without the code, e.g. "room r1 ..." */
};

/* Sets `st` to success. */
void cp_status_ok(struct cp_status *st);

/* Sets `st` to `code` with a printf-formatted sentence (truncated to fit). */
void cp_status_set(struct cp_status *st, enum sb_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True when `len` bytes of message data fit `max` (0: no limit); else sets `st` to
 * message_too_large with the sizes and returns false. */
bool cp_status_size_ok(struct cp_status *st, size_t len, int64_t max);

/* The gRPC status of a protocol code (the error table; SB_CODE_NONE -> GRPC_STATUS_OK). */
grpc_status_code cp_status_grpc_code(enum sb_code code);

/* Writes the gRPC status message "code: sentence" (e.g. "room_not_found: room r1 does not
 * exist") into `out`; returns `out`. */
const char *cp_status_grpc_message(const struct cp_status *st, char *out, size_t out_len);

#endif
