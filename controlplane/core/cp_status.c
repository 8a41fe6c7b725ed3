/* Operation outcomes and their gRPC form; the code -> status mapping itself is the error table
 * of common/sb_err.c. */
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
    return (grpc_status_code)sb_code_info(code)->grpc_status;
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

bool cp_status_size_ok(struct cp_status *st, size_t len, int64_t max)
{
    if (max <= 0 || (int64_t)len <= max)
        return true;
    cp_status_set(st, SB_CODE_MESSAGE_TOO_LARGE, "data is %zu bytes; the limit is %lld", len,
                  (long long)max);
    return false;
}
