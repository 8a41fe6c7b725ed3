/* switchboard.v1.Messages, the history half (docs/history.md): SaveMessage, GetHistory,
 * EditMessage, DeleteMessage, AddReaction, RemoveReaction, SearchMessages: the requests'
 * checks and the Message answers (edit trail and reactions from the ext record) around the
 * flows cp_roommsg.c (save, read), cp_msgupdate.c (edits, deletions, reactions) and
 * cp_search.c. */
#include "cp_rpc.h"

#include <stdlib.h>
#include <string.h>

#include "cp_msgext.h"
#include "cp_msgupdate.h"
#include "cp_roommsg.h"
#include "cp_search.h"
#include "sb_time.h"
#include "switchboard/v1/messages.pb-c.h"

#define MAX_METADATA   64
#define MAX_META_KEY   128
#define MAX_META_VALUE 1024
#define MAX_QUERY      256

/* ---------------------------------------------------------------- Message -> protobuf */

/* Every allocation of one answer, freed together after it was packed. */
struct arena {
    void **p;
    size_t n, cap;
    struct cp_msgext *ext; /* parsed ext texts */
    size_t n_ext, cap_ext;
    bool failed;
};

static void *arena_alloc(struct arena *a, size_t n, size_t size)
{
    if (a->failed || n == 0)
        return NULL;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        void **p = realloc(a->p, cap * sizeof(*p));
        if (p == NULL) {
            a->failed = true;
            return NULL;
        }
        a->p = p;
        a->cap = cap;
    }
    void *v = calloc(n, size);
    if (v == NULL) {
        a->failed = true;
        return NULL;
    }
    a->p[a->n++] = v;
    return v;
}

static struct cp_msgext *arena_ext(struct arena *a, const char *ext)
{
    if (a->failed)
        return NULL;
    if (a->n_ext == a->cap_ext) {
        size_t cap = a->cap_ext ? a->cap_ext * 2 : 8;
        struct cp_msgext *p = realloc(a->ext, cap * sizeof(*p));
        if (p == NULL) {
            a->failed = true;
            return NULL;
        }
        a->ext = p;
        a->cap_ext = cap;
    }
    struct cp_msgext *x = &a->ext[a->n_ext];
    if (cp_msgext_parse(ext, x) != SB_OK) {
        a->failed = true;
        return NULL;
    }
    a->n_ext++;
    return x;
}

static void arena_free(struct arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->p[i]);
    free(a->p);
    for (size_t i = 0; i < a->n_ext; i++)
        cp_msgext_free(&a->ext[i]);
    free(a->ext);
    memset(a, 0, sizeof(*a));
}

/* Fills *pm from msg (borrowing msg's strings); edits and reactions from its ext. */
static void to_proto(struct arena *a, const struct cp_message *msg, Switchboard__V1__Message *pm)
{
    Switchboard__V1__Message init = SWITCHBOARD__V1__MESSAGE__INIT;
    *pm = init;
    pm->id = msg->id;
    pm->seq = msg->seq;
    pm->room_id = msg->room_id;
    pm->user_id = msg->user_id ? msg->user_id : "";
    pm->thread_id = msg->thread_id ? msg->thread_id : "";
    if (!msg->deleted) {
        pm->data.data = (uint8_t *)msg->data;
        pm->data.len = msg->data_len;
    }
    pm->timestamp = msg->timestamp;
    pm->deleted = msg->deleted;
    pm->deleted_at = msg->deleted ? msg->deleted_at : 0;
    if (msg->n_metadata > 0) {
        Switchboard__V1__Message__MetadataEntry *ents =
            arena_alloc(a, msg->n_metadata, sizeof(*ents));
        Switchboard__V1__Message__MetadataEntry **ptrs =
            arena_alloc(a, msg->n_metadata, sizeof(*ptrs));
        if (ents == NULL || ptrs == NULL)
            return;
        for (size_t k = 0; k < msg->n_metadata; k++) {
            Switchboard__V1__Message__MetadataEntry me =
                SWITCHBOARD__V1__MESSAGE__METADATA_ENTRY__INIT;
            me.key = msg->metadata[k].key;
            me.value = msg->metadata[k].value;
            ents[k] = me;
            ptrs[k] = &ents[k];
        }
        pm->metadata = ptrs;
        pm->n_metadata = msg->n_metadata;
    }
    if (msg->deleted || msg->ext == NULL || msg->ext[0] == '\0')
        return;
    struct cp_msgext *x = arena_ext(a, msg->ext);
    if (x == NULL)
        return;
    if (x->n_edits > 0) {
        Switchboard__V1__Edit *ed = arena_alloc(a, x->n_edits, sizeof(*ed));
        Switchboard__V1__Edit **ep = arena_alloc(a, x->n_edits, sizeof(*ep));
        if (ed == NULL || ep == NULL)
            return;
        for (size_t i = 0; i < x->n_edits; i++) {
            Switchboard__V1__Edit e = SWITCHBOARD__V1__EDIT__INIT;
            e.editor_id = x->edits[i].editor_id;
            e.previous_data.data = (uint8_t *)x->edits[i].previous_data;
            e.previous_data.len = x->edits[i].previous_len;
            e.edited_at = x->edits[i].edited_at;
            ed[i] = e;
            ep[i] = &ed[i];
        }
        pm->edits = ep;
        pm->n_edits = x->n_edits;
    }
    if (x->n_reactions > 0) {
        Switchboard__V1__Reaction *re = arena_alloc(a, x->n_reactions, sizeof(*re));
        Switchboard__V1__Reaction **rp = arena_alloc(a, x->n_reactions, sizeof(*rp));
        if (re == NULL || rp == NULL)
            return;
        for (size_t i = 0; i < x->n_reactions; i++) {
            Switchboard__V1__Reaction r = SWITCHBOARD__V1__REACTION__INIT;
            r.emoji = x->reactions[i].emoji;
            r.user_ids = x->reactions[i].user_ids;
            r.n_user_ids = x->reactions[i].n_users;
            re[i] = r;
            rp[i] = &re[i];
        }
        pm->reactions = rp;
        pm->n_reactions = x->n_reactions;
    }
}

bool cp_rpc_history_message(const struct cp_message *msg, cp_rpc_message_fn *fn, void *arg)
{
    struct arena a = {0};
    Switchboard__V1__Message pm;
    to_proto(&a, msg, &pm);
    bool ok = !a.failed;
    if (ok)
        fn(arg, &pm);
    arena_free(&a);
    return ok;
}

static void reply_message(struct cp_call *call, const struct cp_message *msg)
{
    struct arena a = {0};
    Switchboard__V1__Message pm;
    to_proto(&a, msg, &pm);
    if (a.failed)
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
    else
        cp_call_reply(call, &pm.base);
    arena_free(&a);
}

/* GetHistoryResponse and SearchMessagesResponse: both one repeated Message field. */
static void reply_messages(struct cp_call *call, const struct cp_message *const *msgs, size_t n,
                           bool search)
{
    struct arena a = {0};
    Switchboard__V1__Message *arr = arena_alloc(&a, n, sizeof(*arr));
    Switchboard__V1__Message **ptrs = arena_alloc(&a, n, sizeof(*ptrs));
    for (size_t i = 0; !a.failed && i < n; i++) {
        to_proto(&a, msgs[i], &arr[i]);
        ptrs[i] = &arr[i];
    }
    if (a.failed) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
    } else if (search) {
        Switchboard__V1__SearchMessagesResponse resp =
            SWITCHBOARD__V1__SEARCH_MESSAGES_RESPONSE__INIT;
        resp.messages = ptrs;
        resp.n_messages = n;
        cp_call_reply(call, &resp.base);
    } else {
        Switchboard__V1__GetHistoryResponse resp = SWITCHBOARD__V1__GET_HISTORY_RESPONSE__INIT;
        resp.messages = ptrs;
        resp.n_messages = n;
        cp_call_reply(call, &resp.base);
    }
    arena_free(&a);
}

/* ---------------------------------------------------------------- GetHistory */

static void history_done(void *arg, const struct cp_status *st, const struct cp_history_result *res)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(call, st);
        return;
    }
    reply_messages(call, res->messages, res->n_messages, false);
}

void cp_rpc_messages_history(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__GetHistoryRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_optional_id(call, "thread_id", req->thread_id))
        return;
    if (req->limit < 0 || req->before_seq < 0 || req->after_seq < 0 || req->before_time < 0 ||
        req->after_time < 0) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                      "limit and the before/after bounds must not be negative");
        return;
    }
    /* proto3 cannot tell 0 from unset: a zero bound is no bound. */
    struct cp_history_query q = {
        .room_id = req->room_id,
        .limit = req->limit == 0 ? CP_RPC_DEFAULT_LIMIT
                                 : (req->limit > CP_RPC_MAX_LIMIT ? CP_RPC_MAX_LIMIT : req->limit),
        .has_before_seq = req->before_seq > 0,
        .before_seq = req->before_seq,
        .has_after_seq = req->after_seq > 0,
        .after_seq = req->after_seq,
        .before_time = req->before_time,
        .after_time = req->after_time,
        .thread_id = req->thread_id};
    cp_roommsg_history(c, &q, history_done, call);
}

/* ---------------------------------------------------------------- SaveMessage */

struct save_call {
    struct cp_call *call;
    const Switchboard__V1__SaveMessageRequest *req; /* borrowed until the call is finished */
};

/* Answers from the request when the stored message cannot be read back (trimmed at once). */
static void save_reply_from_request(struct cp_call *call,
                                    const Switchboard__V1__SaveMessageRequest *req, const char *id,
                                    int64_t seq)
{
    Switchboard__V1__Message pm = SWITCHBOARD__V1__MESSAGE__INIT;
    pm.id = (char *)id;
    pm.seq = seq;
    pm.room_id = req->room_id;
    pm.user_id = req->user_id;
    pm.thread_id = req->thread_id;
    pm.data = req->data;
    pm.timestamp = sb_time_now_ms();
    struct arena a = {0};
    Switchboard__V1__Message__MetadataEntry *ents = arena_alloc(&a, req->n_metadata, sizeof(*ents));
    Switchboard__V1__Message__MetadataEntry **ptrs =
        arena_alloc(&a, req->n_metadata, sizeof(*ptrs));
    for (size_t i = 0; !a.failed && i < req->n_metadata; i++) {
        Switchboard__V1__Message__MetadataEntry me = SWITCHBOARD__V1__MESSAGE__METADATA_ENTRY__INIT;
        me.key = req->metadata[i]->key;
        me.value = req->metadata[i]->value;
        ents[i] = me;
        ptrs[i] = &ents[i];
    }
    pm.metadata = ptrs;
    pm.n_metadata = a.failed ? 0 : req->n_metadata;
    if (a.failed)
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
    else
        cp_call_reply(call, &pm.base);
    arena_free(&a);
}

static void saved(void *arg, const struct cp_status *st, const char *message_id, int64_t seq,
                  const struct cp_message *stored)
{
    struct save_call *sc = arg;
    if (st->code != SB_CODE_NONE)
        cp_call_fail(sc->call, st);
    else if (stored != NULL)
        reply_message(sc->call, stored);
    else
        save_reply_from_request(sc->call, sc->req, message_id, seq);
    free(sc);
}

void cp_rpc_history_save(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__SaveMessageRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_data(call, &req->data, c->set.max_message_size) ||
        !cp_check_optional_id(call, "user_id", req->user_id) ||
        !cp_check_optional_id(call, "thread_id", req->thread_id))
        return;
    if (req->n_metadata > MAX_METADATA) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "metadata has more than %d entries",
                      MAX_METADATA);
        return;
    }
    for (size_t i = 0; i < req->n_metadata; i++) {
        if (!cp_check_text(call, "metadata key", req->metadata[i]->key, MAX_META_KEY) ||
            !cp_check_text(call, "metadata value", req->metadata[i]->value, MAX_META_VALUE))
            return;
    }
    struct save_call *sc = malloc(sizeof(*sc));
    if (sc == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    *sc = (struct save_call){call, req};
    struct cp_kv kv[MAX_METADATA];
    for (size_t i = 0; i < req->n_metadata; i++)
        kv[i] = (struct cp_kv){req->metadata[i]->key, req->metadata[i]->value};
    struct cp_publish p = {.room_id = req->room_id,
                           .user_id = req->user_id,
                           .data = (const char *)req->data.data,
                           .data_len = req->data.len,
                           .thread_id = req->thread_id,
                           .metadata = kv,
                           .n_metadata = req->n_metadata};
    cp_roommsg_save(c, &p, saved, sc);
}

static bool set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* ---------------------------------------------------------------- edit, delete, react */

struct upd_call {
    struct cp_call *call;
    bool delete;
};

static void upd_done(void *arg, const struct cp_status *st, const struct cp_message *m)
{
    struct upd_call *uc = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(uc->call, st);
    } else if (uc->delete) {
        Switchboard__V1__DeleteMessageResponse resp =
            SWITCHBOARD__V1__DELETE_MESSAGE_RESPONSE__INIT;
        cp_call_reply(uc->call, &resp.base);
    } else if (m == NULL) {
        cp_call_failf(uc->call, SB_CODE_INTERNAL, "out of memory");
    } else {
        reply_message(uc->call, m);
    }
    free(uc);
}

static void upd_start(struct cp_ctx *c, struct cp_call *call, const struct cp_msgupdate *u)
{
    struct upd_call *uc = malloc(sizeof(*uc));
    if (uc == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    uc->call = call;
    uc->delete = u->kind == CP_MSG_DELETE;
    cp_msgupdate_apply(c, u, upd_done, uc);
}

void cp_rpc_history_edit(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__EditMessageRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_id(call, "message_id", req->message_id) ||
        !cp_check_optional_id(call, "editor_id", req->editor_id) ||
        !cp_check_data(call, &req->data, c->set.max_message_size))
        return;
    struct cp_msgupdate t = {.kind = CP_MSG_EDIT,
                             .room_id = req->room_id,
                             .message_id = req->message_id,
                             .actor = req->editor_id,
                             .data = (const char *)req->data.data,
                             .data_len = req->data.len};
    upd_start(c, call, &t);
}

void cp_rpc_history_delete(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__DeleteMessageRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_id(call, "message_id", req->message_id) ||
        !cp_check_optional_id(call, "deleter_id", req->deleter_id))
        return;
    struct cp_msgupdate t = {.kind = CP_MSG_DELETE,
                             .room_id = req->room_id,
                             .message_id = req->message_id,
                             .actor = req->deleter_id};
    upd_start(c, call, &t);
}

static void react(struct cp_ctx *c, struct cp_call *call, const char *room_id,
                  const char *message_id, const char *user_id, const char *emoji, bool add)
{
    if (!cp_check_id(call, "room_id", room_id) || !cp_check_id(call, "message_id", message_id) ||
        !cp_check_id(call, "user_id", user_id))
        return;
    if (!cp_msgext_emoji_valid(emoji)) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                      "emoji must be 1-%d bytes of UTF-8 without control characters",
                      CP_MSGEXT_MAX_EMOJI_BYTES);
        return;
    }
    struct cp_msgupdate t = {.kind = add ? CP_MSG_REACT_ADD : CP_MSG_REACT_REMOVE,
                             .room_id = room_id,
                             .message_id = message_id,
                             .actor = user_id,
                             .emoji = emoji};
    upd_start(c, call, &t);
}

void cp_rpc_history_react(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__AddReactionRequest *req = (const void *)m;
    react(c, call, req->room_id, req->message_id, req->user_id, req->emoji, true);
}

void cp_rpc_history_unreact(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__RemoveReactionRequest *req = (const void *)m;
    react(c, call, req->room_id, req->message_id, req->user_id, req->emoji, false);
}

/* ---------------------------------------------------------------- SearchMessages */

static void search_done(void *arg, const struct cp_status *st, const struct cp_message *const *hits,
                        size_t n)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE)
        cp_call_fail(call, st);
    else
        reply_messages(call, hits, n, true);
}

void cp_rpc_history_search(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__SearchMessagesRequest *req = (const void *)m;
    if (!cp_check_optional_id(call, "room_id", req->room_id) ||
        !cp_check_optional_id(call, "user_id", req->user_id) ||
        !cp_check_text(call, "query", req->query, MAX_QUERY))
        return;
    if (!set(req->query)) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "query is required");
        return;
    }
    if (req->limit < 0) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "limit must not be negative");
        return;
    }
    struct cp_search_query q;
    struct cp_status st;
    if (!cp_search_parse(req->query, &q, &st)) {
        cp_call_fail(call, &st);
        return;
    }
    size_t limit = req->limit == 0
                       ? CP_RPC_DEFAULT_LIMIT
                       : (size_t)(req->limit > CP_RPC_MAX_LIMIT ? CP_RPC_MAX_LIMIT : req->limit);
    cp_search_run(c, &q, req->room_id, req->user_id, limit, search_done, call);
}
