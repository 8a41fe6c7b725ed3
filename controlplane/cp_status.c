/* Protocol error code -> gRPC status code, following API.md's mapping: not found -> NOT_FOUND,
 * already exists/member/subscribed -> ALREADY_EXISTS, full/limit/rate -> RESOURCE_EXHAUSTED,
 * banned/permission -> PERMISSION_DENIED, bad arguments -> INVALID_ARGUMENT, archived/expired ->
 * FAILED_PRECONDITION, store unreachable -> UNAVAILABLE. */
#include "cp_status.h"

#include <stdarg.h>
#include <stdio.h>

void cp_status_ok(struct cp_status *st)
{
    st->code = SB_CODE_NONE;
    st->msg[0] = '\0';
}

void cp_status_set(struct cp_status *st, enum sb_code code, const char *fmt, ...)
{
    st->code = code;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        st->msg[0] = '\0';
}

grpc_status_code cp_status_grpc_code(enum sb_code code)
{
    switch (code) {
    case SB_CODE_NONE:
        return GRPC_STATUS_OK;
    case SB_CODE_INVALID_MESSAGE:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case SB_CODE_MESSAGE_TOO_LARGE:
    case SB_CODE_RATE_LIMITED:
    case SB_CODE_ROOM_FULL:
    case SB_CODE_ROOM_LIMIT_REACHED:
    case SB_CODE_CHANNEL_LIMIT_REACHED:
    case SB_CODE_CONNECTION_LIMIT_REACHED:
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case SB_CODE_UNAUTHORIZED:
        return GRPC_STATUS_UNAUTHENTICATED;
    case SB_CODE_PERMISSION_DENIED:
    case SB_CODE_BANNED:
        return GRPC_STATUS_PERMISSION_DENIED;
    case SB_CODE_ROOM_NOT_FOUND:
    case SB_CODE_NOT_ROOM_MEMBER:
    case SB_CODE_CHANNEL_NOT_FOUND:
    case SB_CODE_NOT_SUBSCRIBED:
    case SB_CODE_INVITE_NOT_FOUND:
    case SB_CODE_MESSAGE_NOT_FOUND:
    case SB_CODE_CONNECTION_NOT_FOUND:
        return GRPC_STATUS_NOT_FOUND;
    case SB_CODE_ROOM_ALREADY_EXISTS:
    case SB_CODE_ALREADY_ROOM_MEMBER:
    case SB_CODE_ALREADY_SUBSCRIBED:
    case SB_CODE_CHANNEL_ALREADY_EXISTS:
        return GRPC_STATUS_ALREADY_EXISTS;
    case SB_CODE_CONFLICT:
        return GRPC_STATUS_ABORTED;
    case SB_CODE_ROOM_ARCHIVED:
    case SB_CODE_INVITE_EXPIRED:
        return GRPC_STATUS_FAILED_PRECONDITION;
    case SB_CODE_HISTORY_GAP:
        return GRPC_STATUS_OUT_OF_RANGE;
    case SB_CODE_UNAVAILABLE:
        return GRPC_STATUS_UNAVAILABLE;
    case SB_CODE_INTERNAL:
    case SB_CODE_COUNT:
        break;
    }
    return GRPC_STATUS_INTERNAL;
}

const char *cp_status_grpc_message(const struct cp_status *st, char *out, size_t out_len)
{
    enum sb_code code = st->code == SB_CODE_NONE ? SB_CODE_NONE : st->code;
    if (code == SB_CODE_NONE)
        snprintf(out, out_len, "%s", "");
    else
        snprintf(out, out_len, "%s: %s", sb_code_name(code), st->msg);
    return out;
}

const char *cp_status_unimplemented(const char *method, int issue, char *out, size_t out_len)
{
    snprintf(out, out_len, "unimplemented: %s lands with issue %d", method, issue);
    return out;
}
