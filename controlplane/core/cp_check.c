/* Field checks of gRPC requests (see cp_check.h). */
#include "cp_check.h"

#include <string.h>

#include "sb_ident.h"
#include "sb_json.h"

/* `valid` decides; `rule` completes the sentence "<what> must be ...". */
static bool check_ident(struct cp_call *call, const char *what, const char *value,
                        bool (*valid)(const char *), const char *rule)
{
    if (value == NULL || value[0] == '\0') {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "%s is required", what);
        return false;
    }
    if (!valid(value)) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                      "%s must be 1-%d characters of A-Z a-z 0-9 . _ : @ -%s", what, SB_IDENT_MAX,
                      rule);
        return false;
    }
    return true;
}

bool cp_check_id(struct cp_call *call, const char *what, const char *value)
{
    return check_ident(call, what, value, sb_ident_is_valid, "");
}

bool cp_check_channel_id(struct cp_call *call, const char *what, const char *value)
{
    return check_ident(call, what, value, sb_ident_is_valid_channel,
                       ", optionally ending in #<user_id>[,<user_id>...]");
}

bool cp_check_optional_id(struct cp_call *call, const char *what, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return true;
    return cp_check_id(call, what, value);
}

bool cp_check_json(struct cp_call *call, const char *what, const ProtobufCBinaryData *data)
{
    if (!sb_json_is_valid((const char *)data->data, data->len)) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "%s is not valid JSON", what);
        return false;
    }
    return true;
}

bool cp_check_data(struct cp_call *call, const ProtobufCBinaryData *data, int64_t max_size)
{
    struct cp_status st;
    if (!cp_status_size_ok(&st, data->len, max_size)) {
        cp_call_fail(call, &st);
        return false;
    }
    return cp_check_json(call, "data", data);
}

bool cp_check_text(struct cp_call *call, const char *what, const char *s, size_t max)
{
    if (s == NULL)
        return true;
    if (strlen(s) > max) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "%s is longer than %zu bytes", what, max);
        return false;
    }
    if (!sb_json_is_utf8(s)) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "%s is not valid UTF-8", what);
        return false;
    }
    return true;
}
