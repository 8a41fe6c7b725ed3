/* Connection, size and rate limits (cp_limits.h). */
#include "cp_limits.h"

#include <stdio.h>
#include <string.h>

#include "cp_presence.h"
#include "sb_time.h"

bool cp_limits_conn_ok(struct cp_ctx *c, const char *user_id, const char *conn_id,
                       struct cp_status *st)
{
    int max = c->set.max_connections_per_user;
    if (max <= 0)
        return true;
    if (cp_presence_conn(&c->presence, conn_id) != NULL)
        return true;
    struct cp_user *u = cp_presence_user(&c->presence, user_id);
    if (u == NULL || u->n_conns < (size_t)max)
        return true;
    char n[24];
    snprintf(n, sizeof(n), "%d", max);
    cp_status_set(st, SB_CODE_CONNECTION_LIMIT_REACHED,
                  "user already has %s open connections (max_connections_per_user)", n);
    return false;
}

bool cp_limits_size_ok(const struct cp_ctx *c, size_t len, struct cp_status *st)
{
    return cp_status_size_ok(st, len, c->set.max_message_size);
}

bool cp_limits_client_request(struct cp_ctx *c, struct cp_user *u,
                              const Switchboard__Internal__V1__ClientRequest *req,
                              struct cp_status *st)
{
    const ProtobufCBinaryData *data;
    switch (req->op_case) {
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_MESSAGE:
        data = req->message != NULL ? &req->message->data : NULL;
        break;
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_PUBLISH:
        data = req->publish != NULL ? &req->publish->data : NULL;
        break;
    default:
        return true;
    }
    /* A refused size costs no token. */
    if (data != NULL && !cp_limits_size_ok(c, data->len, st))
        return false;
    int64_t retry = 0;
    if (sb_bucket_take(&u->rate, c->set.max_messages_per_second, c->set.rate_limit_burst,
                       sb_time_mono_ms(), &retry))
        return true;
    char why[128];
    snprintf(why, sizeof(why), "more than %d messages per second (burst %d); retry in %lld ms",
             c->set.max_messages_per_second, c->set.rate_limit_burst, (long long)retry);
    cp_status_set(st, SB_CODE_RATE_LIMITED, "%s", why);
    return false;
}
