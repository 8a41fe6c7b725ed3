/* switchboard.v1.Channels (CreateChannel, DeleteChannel, ListChannels, Subscribe, Unsubscribe,
 * ListSubscribers) and Messages.BroadcastToChannel: validation and conversion around
 * cp_channels.c. */
#include "cp_rpc.h"

#include <stdlib.h>
#include <string.h>

#include "cp_channels.h"
#include "cp_filter.h"
#include "switchboard/v1/channels.pb-c.h"
#include "switchboard/v1/messages.pb-c.h"

#define MAX_METADATA   64
#define MAX_META_KEY   128
#define MAX_META_VALUE 1024
#define MAX_IDEM_KEY   128

/* Checks a protobuf map given as parallel key/value getters. */
static bool check_meta(struct cp_call *call, size_t n, const char *const *keys,
                       const char *const *values)
{
    if (n > MAX_METADATA) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "metadata has more than %d entries",
                      MAX_METADATA);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (keys[i] == NULL || keys[i][0] == '\0') {
            cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "metadata keys must not be empty");
            return false;
        }
        if (!cp_check_text(call, "metadata key", keys[i], MAX_META_KEY) ||
            !cp_check_text(call, "metadata value", values[i], MAX_META_VALUE))
            return false;
    }
    return true;
}

/* Metadata map entries (any protoc-c map entry type: key, value after the base) as cp_kv. */
#define META_KV(kv, entries, n)                                                                    \
    do {                                                                                           \
        for (size_t i_ = 0; i_ < (n); i_++) {                                                      \
            (kv)[i_].key = (entries)[i_]->key;                                                     \
            (kv)[i_].value = (entries)[i_]->value != NULL ? (entries)[i_]->value : "";             \
        }                                                                                          \
    } while (0)

static bool check_kv(struct cp_call *call, const struct cp_kv *kv, size_t n)
{
    const char **k = n ? calloc(n, sizeof(*k)) : NULL;
    const char **v = n ? calloc(n, sizeof(*v)) : NULL;
    if (n > 0 && (k == NULL || v == NULL)) {
        free(k);
        free(v);
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        k[i] = kv[i].key;
        v[i] = kv[i].value;
    }
    bool ok = check_meta(call, n, k, v);
    free(k);
    free(v);
    return ok;
}

/* ---------------------------------------------------------------- Channel */

static void reply_channel(struct cp_call *call, const struct cp_channel_info *ch)
{
    Switchboard__V1__Channel pb = SWITCHBOARD__V1__CHANNEL__INIT;
    Switchboard__V1__Channel__MetadataEntry *e =
        ch->n_metadata ? calloc(ch->n_metadata, sizeof(*e)) : NULL;
    Switchboard__V1__Channel__MetadataEntry **p =
        ch->n_metadata ? calloc(ch->n_metadata, sizeof(*p)) : NULL;
    if (ch->n_metadata > 0 && (e == NULL || p == NULL)) {
        free(e);
        free(p);
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    for (size_t i = 0; i < ch->n_metadata; i++) {
        Switchboard__V1__Channel__MetadataEntry x = SWITCHBOARD__V1__CHANNEL__METADATA_ENTRY__INIT;
        x.key = ch->metadata[i].key;
        x.value = ch->metadata[i].value;
        e[i] = x;
        p[i] = &e[i];
    }
    pb.id = (char *)ch->id;
    pb.metadata = p;
    pb.n_metadata = ch->n_metadata;
    pb.created_at = ch->created_at;
    pb.subscriber_count = ch->subscriber_count;
    pb.client_publish = ch->client_publish;
    cp_call_reply(call, &pb.base);
    free(e);
    free(p);
}

static void created(void *arg, const struct cp_status *st, const struct cp_channel_info *ch)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE)
        cp_call_fail(call, st);
    else
        reply_channel(call, ch);
}

void cp_rpc_channels_create(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__CreateChannelRequest *req = (const void *)m;
    if (!cp_check_channel_id(call, "channel_id", req->channel_id))
        return;
    struct cp_kv *kv = req->n_metadata ? calloc(req->n_metadata, sizeof(*kv)) : NULL;
    if (req->n_metadata > 0 && kv == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    META_KV(kv, req->metadata, req->n_metadata);
    if (check_kv(call, kv, req->n_metadata))
        cp_channels_create(c, req->channel_id, kv, req->n_metadata, req->client_publish != 0,
                           created, call);
    free(kv);
}

/* ---------------------------------------------------------------- the rest */

void cp_rpc_channels_delete(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__DeleteChannelRequest *req = (const void *)m;
    if (!cp_check_channel_id(call, "channel_id", req->channel_id))
        return;
    cp_channels_delete(c, req->channel_id, cp_call_done_empty, call);
}

static void listed(void *arg, const struct cp_status *st, const struct cp_channel_info *chs,
                   size_t n)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(call, st);
        return;
    }
    Switchboard__V1__ListChannelsResponse resp = SWITCHBOARD__V1__LIST_CHANNELS_RESPONSE__INIT;
    Switchboard__V1__Channel *arr = n ? calloc(n, sizeof(*arr)) : NULL;
    Switchboard__V1__Channel **ptrs = n ? calloc(n, sizeof(*ptrs)) : NULL;
    size_t n_meta = 0;
    for (size_t i = 0; i < n; i++)
        n_meta += chs[i].n_metadata;
    Switchboard__V1__Channel__MetadataEntry *e = n_meta ? calloc(n_meta, sizeof(*e)) : NULL;
    Switchboard__V1__Channel__MetadataEntry **ep = n_meta ? calloc(n_meta, sizeof(*ep)) : NULL;
    if ((n > 0 && (arr == NULL || ptrs == NULL)) || (n_meta > 0 && (e == NULL || ep == NULL))) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        Switchboard__V1__Channel ch = SWITCHBOARD__V1__CHANNEL__INIT;
        ch.id = (char *)chs[i].id;
        ch.created_at = chs[i].created_at;
        ch.subscriber_count = chs[i].subscriber_count;
        ch.client_publish = chs[i].client_publish;
        ch.metadata = ep + k;
        ch.n_metadata = chs[i].n_metadata;
        for (size_t j = 0; j < chs[i].n_metadata; j++, k++) {
            Switchboard__V1__Channel__MetadataEntry x =
                SWITCHBOARD__V1__CHANNEL__METADATA_ENTRY__INIT;
            x.key = chs[i].metadata[j].key;
            x.value = chs[i].metadata[j].value;
            e[k] = x;
            ep[k] = &e[k];
        }
        arr[i] = ch;
        ptrs[i] = &arr[i];
    }
    resp.channels = ptrs;
    resp.n_channels = n;
    cp_call_reply(call, &resp.base);
out:
    free(arr);
    free(ptrs);
    free(e);
    free(ep);
}

void cp_rpc_channels_list(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__ListChannelsRequest *req = (const void *)m;
    cp_channels_list(c, req->pattern, listed, call);
}

void cp_rpc_channels_subscribe(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__SubscribeRequest *req = (const void *)m;
    if (!cp_check_channel_id(call, "channel_id", req->channel_id) ||
        !cp_check_id(call, "user_id", req->user_id) ||
        !cp_check_text(call, "filter", req->filter, CP_FILTER_MAX))
        return;
    struct cp_subscribe s = {.channel_id = req->channel_id,
                             .user_id = req->user_id,
                             .filter = req->filter,
                             .client = false};
    cp_channels_subscribe(c, &s, cp_call_done_empty, call);
}

void cp_rpc_channels_unsubscribe(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__UnsubscribeRequest *req = (const void *)m;
    if (!cp_check_channel_id(call, "channel_id", req->channel_id) ||
        !cp_check_id(call, "user_id", req->user_id))
        return;
    cp_channels_unsubscribe(c, req->channel_id, req->user_id, cp_call_done_empty, call);
}

static void subscribers(void *arg, const struct cp_status *st, const char *const *ids, size_t n)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(call, st);
        return;
    }
    Switchboard__V1__ListSubscribersResponse resp =
        SWITCHBOARD__V1__LIST_SUBSCRIBERS_RESPONSE__INIT;
    resp.user_ids = (char **)ids;
    resp.n_user_ids = n;
    cp_call_reply(call, &resp.base);
}

void cp_rpc_channels_subscribers(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__ListSubscribersRequest *req = (const void *)m;
    if (!cp_check_channel_id(call, "channel_id", req->channel_id))
        return;
    cp_channels_subscribers(c, req->channel_id, subscribers, call);
}

/* ---------------------------------------------------------------- BroadcastToChannel */

static void broadcast_done(void *arg, const struct cp_status *st, const char *message_id)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(call, st);
        return;
    }
    Switchboard__V1__BroadcastToChannelResponse resp =
        SWITCHBOARD__V1__BROADCAST_TO_CHANNEL_RESPONSE__INIT;
    resp.message_id = (char *)message_id;
    cp_call_reply(call, &resp.base);
}

void cp_rpc_messages_to_channel(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__BroadcastToChannelRequest *req = (const void *)m;
    if (!cp_check_channel_id(call, "channel_id", req->channel_id) ||
        !cp_check_data(call, &req->data, c->set.max_message_size) ||
        !cp_check_optional_id(call, "user_id", req->user_id) ||
        !cp_check_text(call, "idempotency_key", req->idempotency_key, MAX_IDEM_KEY))
        return;
    struct cp_kv *kv = req->n_metadata ? calloc(req->n_metadata, sizeof(*kv)) : NULL;
    if (req->n_metadata > 0 && kv == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    META_KV(kv, req->metadata, req->n_metadata);
    if (check_kv(call, kv, req->n_metadata)) {
        struct cp_channel_publish p = {.channel_id = req->channel_id,
                                       .user_id = req->user_id,
                                       .data = (const char *)req->data.data,
                                       .data_len = req->data.len,
                                       .metadata = kv,
                                       .n_metadata = req->n_metadata,
                                       .idem_key = req->idempotency_key};
        cp_channels_publish(c, &p, broadcast_done, call);
    }
    free(kv);
}
