/* switchboard.internal.v1.Peer/Publish: another replica forwards a publish into a room this
 * replica sequences (docs/distributed.md). Answers FAILED_PRECONDITION "not_sequencer: ..."
 * when this replica does not (or no longer) sequence the room; never forwards again. */
#include "cp_rpc_peer.h"

#include <stdlib.h>

#include "cp_check.h"
#include "cp_peer.h"
#include "cp_rooms.h"
#include "sb_ident.h"
#include "switchboard/internal/v1/nodelink.pb-c.h"

#define MAX_METADATA 64

static void done(void *arg, const struct cp_status *st, const char *message_id, int64_t seq)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE) {
        if (cp_peer_is_not_sequencer(st))
            cp_call_status(call, GRPC_STATUS_FAILED_PRECONDITION, st->msg);
        else
            cp_call_fail(call, st);
        return;
    }
    Switchboard__Internal__V1__PeerPublishResponse resp =
        SWITCHBOARD__INTERNAL__V1__PEER_PUBLISH_RESPONSE__INIT;
    resp.message_id = (char *)message_id;
    resp.seq = seq;
    cp_call_reply(call, &resp.base);
}

void cp_rpc_peer_publish(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__Internal__V1__PeerPublishRequest *req = (const void *)m;
    if (c->publish_via == NULL) { /* no shared store: nothing is forwarded between replicas */
        cp_call_status(call, GRPC_STATUS_FAILED_PRECONDITION,
                       "not_sequencer: this control plane runs the memory store");
        return;
    }
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_optional_id(call, "user_id", req->user_id) ||
        !cp_check_optional_id(call, "thread_id", req->thread_id) ||
        !cp_check_data(call, &req->data, c->set.max_message_size))
        return;
    if (req->n_metadata > MAX_METADATA) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "too many metadata entries");
        return;
    }
    struct cp_kv *kv = req->n_metadata ? calloc(req->n_metadata, sizeof(*kv)) : NULL;
    if (req->n_metadata > 0 && kv == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    for (size_t i = 0; i < req->n_metadata; i++) {
        kv[i].key = req->metadata[i]->key;
        kv[i].value = req->metadata[i]->value;
    }
    struct cp_publish p = {.room_id = req->room_id,
                           .user_id = req->user_id,
                           .require_member = false, /* checked by the forwarding replica */
                           .data = (const char *)req->data.data,
                           .data_len = req->data.len,
                           .thread_id = req->thread_id,
                           .metadata = kv,
                           .n_metadata = req->n_metadata,
                           .idem_key = req->idempotency_key,
                           .no_forward = true,
                           .no_deliver = req->no_deliver};
    cp_rooms_publish(c, &p, done, call);
    free(kv);
}
