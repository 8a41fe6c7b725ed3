/* Publish forwarding between control-plane replicas (see cp_peer.h). A `pubreq` owns a deep
 * copy of the publish for its whole life: local attempt, forwards, retries, answer. */
#include "cp_peer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "cp_auth.h"
#include "cp_unary.h"
#include "sb_map.h"
#include "cp_tag.h"
#include "sb_log.h"
#include "sb_pb.h"
#include "sb_time.h"
#include "switchboard/internal/v1/nodelink.pb-c.h"

#define PEER_METHOD     "/switchboard.internal.v1.Peer/Publish"
#define PEER_TIMEOUT_MS 5000
#define RETRY_MS        200

struct pubreq {
    struct cp_ctx *c;
    cp_rooms_publish_fn *cb;
    void *arg;
    char *room_id, *user_id, *thread_id, *idem_key;
    char *data;
    size_t data_len;
    struct cp_kv *metadata;
    size_t n_metadata;
    bool require_member;
    bool no_forward;
    bool no_deliver;
    int64_t deadline; /* monotonic: give up retrying after this */
    int64_t retry_at; /* monotonic, when waiting */
    struct pubreq *next_retry;
    int attempts;
};

struct pcall {
    struct cp_tag tag;
    struct pubreq *pr;
    struct cp_unary u;
    grpc_metadata auth; /* authorization: Bearer <cluster secret>, when one is set */
    struct pcall *prev, *next;
};

struct peers {
    struct sb_map channels; /* address -> grpc_channel */
    struct pcall *calls;
    struct pubreq *retry_head;
    bool stopping;
};

static struct peers *peers_of(struct cp_ctx *c)
{
    if (c->peers == NULL) {
        struct peers *p = calloc(1, sizeof(*p));
        if (p == NULL)
            return NULL;
        sb_map_init(&p->channels);
        c->peers = p;
    }
    return c->peers;
}

bool cp_peer_is_not_sequencer(const struct cp_status *st)
{
    return st->code == SB_CODE_UNAVAILABLE && strncmp(st->msg, "not_sequencer:", 14) == 0;
}

static void pubreq_free(struct pubreq *pr)
{
    free(pr->room_id);
    free(pr->user_id);
    free(pr->thread_id);
    free(pr->idem_key);
    free(pr->data);
    for (size_t i = 0; i < pr->n_metadata; i++) {
        free(pr->metadata[i].key);
        free(pr->metadata[i].value);
    }
    free(pr->metadata);
    free(pr);
}

static void finish(struct pubreq *pr, const struct cp_status *st, const char *id, int64_t seq)
{
    pr->cb(pr->arg, st, id, seq);
    pubreq_free(pr);
}

static void schedule_retry(struct pubreq *pr, const struct cp_status *why)
{
    struct cp_ctx *c = pr->c;
    struct peers *p = peers_of(c);
    int64_t now = sb_time_mono_ms();
    if (p == NULL || p->stopping || now + RETRY_MS > pr->deadline) {
        struct cp_status st;
        cp_status_set(&st, SB_CODE_UNAVAILABLE, "room %s has no reachable sequencer (%s)",
                      pr->room_id, why->msg);
        finish(pr, &st, NULL, 0);
        return;
    }
    pr->retry_at = now + RETRY_MS;
    pr->next_retry = p->retry_head;
    p->retry_head = pr;
}

/* ---------------------------------------------------------------- forwarding call */

static void pcall_free(struct peers *p, struct pcall *pc)
{
    if (pc->prev)
        pc->prev->next = pc->next;
    else if (p != NULL && p->calls == pc)
        p->calls = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    cp_unary_fini(&pc->u);
    cp_auth_md_release(&pc->auth);
    free(pc);
}

static void pcall_done(struct cp_tag *t, bool ok)
{
    struct pcall *pc = CP_CONTAINER_OF(t, struct pcall, tag);
    struct pubreq *pr = pc->pr;
    struct peers *p = pr->c->peers;
    struct cp_status st;
    if (ok && pc->u.status == GRPC_STATUS_OK && pc->u.recv != NULL) {
        ProtobufCMessage *m = NULL;
        if (sb_pb_unpack(pc->u.recv, &switchboard__internal__v1__peer_publish_response__descriptor,
                         1 << 20, &m) == SB_OK) {
            Switchboard__Internal__V1__PeerPublishResponse *r = (void *)m;
            cp_status_ok(&st);
            finish(pr, &st, r->message_id, r->seq);
            protobuf_c_message_free_unpacked(m, NULL);
            pcall_free(p, pc);
            return;
        }
    }
    char *det = grpc_slice_to_c_string(pc->u.details);
    /* Errors the client must see as they are (the holder checked the room: the status
     * message starts with the protocol code) end here; anything about reachability or
     * sequencing (no code, unavailable, internal, a lost compare) is retried. */
    const char *sentence = "";
    enum sb_code code =
        pc->u.status == GRPC_STATUS_OK ? SB_CODE_NONE : sb_code_from_status_message(det, &sentence);
    if (code != SB_CODE_NONE && code != SB_CODE_UNAVAILABLE && code != SB_CODE_INTERNAL &&
        code != SB_CODE_CONFLICT && (int)pc->u.status == sb_code_info(code)->grpc_status) {
        cp_status_set(&st, code, "%s", sentence);
        finish(pr, &st, NULL, 0);
    } else {
        cp_status_set(&st, SB_CODE_UNAVAILABLE, "peer status %d: %s", (int)pc->u.status,
                      det ? det : "");
        SB_LOG_DEBUG("cp", "publish forward failed: retrying", "room=%s status=%d", pr->room_id,
                     (int)pc->u.status);
        schedule_retry(pr, &st);
    }
    gpr_free(det);
    pcall_free(p, pc);
}

static grpc_channel *channel_for(struct peers *p, const char *address)
{
    grpc_channel *ch = sb_map_get(&p->channels, address);
    if (ch != NULL)
        return ch;
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = 64 * 1024 * 1024}},
        {GRPC_ARG_INTEGER, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, {.integer = 100}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, {.integer = 1000}},
    };
    grpc_channel_args ca = {sizeof(args) / sizeof(args[0]), args};
    ch = grpc_channel_create(address, creds, &ca);
    grpc_channel_credentials_release(creds);
    if (ch != NULL && sb_map_put(&p->channels, address, ch) != SB_OK) {
        grpc_channel_destroy(ch);
        ch = NULL;
    }
    return ch;
}

static void forward(struct pubreq *pr, const char *holder)
{
    struct cp_ctx *c = pr->c;
    struct peers *p = peers_of(c);
    struct cp_status st;
    const char *address = c->cluster->ops->peer_address(c->cluster, holder);
    if (p == NULL || address == NULL || c->cq == NULL) {
        cp_status_set(&st, SB_CODE_UNAVAILABLE, "address of replica %s unknown", holder);
        schedule_retry(pr, &st);
        return;
    }
    grpc_channel *ch = channel_for(p, address);
    struct pcall *pc = calloc(1, sizeof(*pc));
    if (ch == NULL || pc == NULL) {
        free(pc);
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        finish(pr, &st, NULL, 0);
        return;
    }
    Switchboard__Internal__V1__PeerPublishRequest req =
        SWITCHBOARD__INTERNAL__V1__PEER_PUBLISH_REQUEST__INIT;
    req.room_id = pr->room_id;
    req.user_id = pr->user_id ? pr->user_id : "";
    req.data.data = (uint8_t *)pr->data;
    req.data.len = pr->data_len;
    req.thread_id = pr->thread_id ? pr->thread_id : "";
    req.idempotency_key = pr->idem_key;
    req.from_cp = c->id;
    req.no_deliver = pr->no_deliver;
    Switchboard__Internal__V1__PeerPublishRequest__MetadataEntry *ents =
        pr->n_metadata ? calloc(pr->n_metadata, sizeof(*ents)) : NULL;
    Switchboard__Internal__V1__PeerPublishRequest__MetadataEntry **eptr =
        pr->n_metadata ? calloc(pr->n_metadata, sizeof(*eptr)) : NULL;
    for (size_t i = 0; ents != NULL && eptr != NULL && i < pr->n_metadata; i++) {
        Switchboard__Internal__V1__PeerPublishRequest__MetadataEntry e =
            SWITCHBOARD__INTERNAL__V1__PEER_PUBLISH_REQUEST__METADATA_ENTRY__INIT;
        e.key = pr->metadata[i].key;
        e.value = pr->metadata[i].value;
        ents[i] = e;
        eptr[i] = &ents[i];
    }
    if (ents != NULL && eptr != NULL) {
        req.metadata = eptr;
        req.n_metadata = pr->n_metadata;
    }
    cp_unary_init(&pc->u);
    grpc_byte_buffer *send = sb_pb_pack(&req.base);
    free(ents);
    free(eptr);
    pc->tag.fn = pcall_done;
    pc->pr = pr;
    size_t n_md = (size_t)cp_auth_md(c->cluster_secret, &pc->auth);
    if (cp_unary_start(&pc->u, ch, c->cq, PEER_METHOD, PEER_TIMEOUT_MS, send, &pc->auth, n_md,
                       &pc->tag) != SB_OK) {
        pcall_free(NULL, pc);
        cp_status_set(&st, SB_CODE_INTERNAL, "cannot start a peer call");
        finish(pr, &st, NULL, 0);
        return;
    }
    pc->next = p->calls;
    if (p->calls)
        p->calls->prev = pc;
    p->calls = pc;
}

/* ---------------------------------------------------------------- local attempt */

static void attempt(struct pubreq *pr);

static void appended(void *arg, const struct cp_status *st, const struct cp_append_result *res)
{
    struct pubreq *pr = arg;
    struct cp_ctx *c = pr->c;
    if (st->code == SB_CODE_NONE) {
        if ((!res->duplicate || res->redeliver) && !pr->no_deliver) {
            if (!res->duplicate)
                c->messages_published++;
            cp_rooms_deliver(c, res->message, res->members, res->n_members, res->members_rev);
        }
        finish(pr, st, res->message->id, res->message->seq);
        return;
    }
    if (res != NULL && res->forward_to != NULL && !pr->no_forward &&
        strcmp(res->forward_to, c->id) != 0) {
        forward(pr, res->forward_to);
        return;
    }
    if (st->code == SB_CODE_UNAVAILABLE && !pr->no_forward && !cp_peer_is_not_sequencer(st)) {
        schedule_retry(pr, st); /* e.g. the sequencer moved mid-commit */
        return;
    }
    finish(pr, st, NULL, 0);
}

static void attempt(struct pubreq *pr)
{
    struct cp_ctx *c = pr->c;
    pr->attempts++;
    const struct cp_publish p = {.room_id = pr->room_id,
                                 .user_id = pr->user_id,
                                 .data = pr->data,
                                 .data_len = pr->data_len,
                                 .thread_id = pr->thread_id,
                                 .metadata = pr->metadata,
                                 .n_metadata = pr->n_metadata,
                                 .idem_key = pr->idem_key};
    char id[SB_ID_LEN];
    struct cp_message draft;
    cp_rooms_draft(&p, id, &draft);
    c->store->ops->message_append(c->store, &draft, pr->require_member ? pr->user_id : NULL,
                                  c->set.max_history_messages, appended, pr);
}

static char *dupn(const char *s)
{
    return (s != NULL && s[0] != '\0') ? strdup(s) : NULL;
}

void cp_peer_publish(struct cp_ctx *c, const struct cp_publish *p, cp_rooms_publish_fn *cb,
                     void *arg)
{
    struct cp_status st;
    struct pubreq *pr = calloc(1, sizeof(*pr));
    bool failed = pr == NULL;
    if (!failed) {
        pr->c = c;
        pr->cb = cb;
        pr->arg = arg;
        pr->room_id = strdup(p->room_id);
        pr->user_id = dupn(p->user_id);
        pr->thread_id = dupn(p->thread_id);
        const char *key = p->idem_key != NULL && p->idem_key[0] != '\0'         ? p->idem_key
                          : p->request_key != NULL && p->request_key[0] != '\0' ? p->request_key
                                                                                : NULL;
        if (key != NULL) {
            pr->idem_key = strdup(key);
        } else {
            /* Our own key, so that a retry after an unknown outcome stores nothing twice. */
            char k[SB_ID_LEN];
            sb_id_new("p", k);
            size_t n = strlen(c->id) + strlen(k) + 2;
            pr->idem_key = malloc(n);
            if (pr->idem_key != NULL)
                snprintf(pr->idem_key, n, "%s/%s", c->id, k);
        }
        pr->data = malloc(p->data_len + 1);
        if (pr->data != NULL) {
            memcpy(pr->data, p->data, p->data_len);
            pr->data[p->data_len] = '\0';
        }
        pr->data_len = p->data_len;
        pr->metadata = p->n_metadata ? calloc(p->n_metadata, sizeof(*pr->metadata)) : NULL;
        pr->n_metadata = pr->metadata ? p->n_metadata : 0;
        for (size_t i = 0; i < pr->n_metadata; i++) {
            pr->metadata[i].key = strdup(p->metadata[i].key ? p->metadata[i].key : "");
            pr->metadata[i].value = strdup(p->metadata[i].value ? p->metadata[i].value : "");
            failed |= pr->metadata[i].key == NULL || pr->metadata[i].value == NULL;
        }
        failed |= pr->room_id == NULL || pr->data == NULL || pr->idem_key == NULL ||
                  (p->n_metadata > 0 && pr->metadata == NULL);
        pr->require_member = p->require_member;
        pr->no_forward = p->no_forward;
        pr->no_deliver = p->no_deliver;
        pr->deadline = sb_time_mono_ms() + c->lease_ttl_ms + 5000;
    }
    if (failed) {
        if (pr != NULL)
            pubreq_free(pr);
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL, 0);
        return;
    }
    attempt(pr);
}

void cp_peer_tick(struct cp_ctx *c, int64_t mono_ms)
{
    struct peers *p = c->peers;
    if (p == NULL)
        return;
    struct pubreq *due = NULL, **pp = &p->retry_head;
    while (*pp != NULL) {
        struct pubreq *pr = *pp;
        if (pr->retry_at <= mono_ms) {
            *pp = pr->next_retry;
            pr->next_retry = due;
            due = pr;
        } else {
            pp = &pr->next_retry;
        }
    }
    while (due != NULL) {
        struct pubreq *pr = due;
        due = pr->next_retry;
        pr->next_retry = NULL;
        attempt(pr);
    }
}

void cp_peer_stop(struct cp_ctx *c)
{
    struct peers *p = c->peers;
    if (p == NULL)
        return;
    p->stopping = true;
    for (struct pcall *pc = p->calls; pc != NULL; pc = pc->next)
        grpc_call_cancel(pc->u.call, NULL);
    struct cp_status st;
    cp_status_set(&st, SB_CODE_UNAVAILABLE, "control plane shutting down");
    while (p->retry_head != NULL) {
        struct pubreq *pr = p->retry_head;
        p->retry_head = pr->next_retry;
        finish(pr, &st, NULL, 0);
    }
}

void cp_peer_fini(struct cp_ctx *c)
{
    struct peers *p = c->peers;
    if (p == NULL)
        return;
    while (p->calls != NULL) {
        struct pcall *pc = p->calls;
        pubreq_free(pc->pr);
        pcall_free(p, pc);
    }
    while (p->retry_head != NULL) {
        struct pubreq *pr = p->retry_head;
        p->retry_head = pr->next_retry;
        pubreq_free(pr);
    }
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&p->channels, &it);
    while ((e = sb_map_iter_next(&p->channels, &it)) != NULL)
        grpc_channel_destroy(e->value);
    sb_map_fini(&p->channels);
    free(p);
    c->peers = NULL;
}
