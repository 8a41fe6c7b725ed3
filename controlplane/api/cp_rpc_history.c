/* switchboard.v1.Messages, the history half (docs/history.md): SaveMessage, GetHistory,
 * EditMessage, DeleteMessage, AddReaction, RemoveReaction, SearchMessages.
 *
 * Edits, deletions and reactions are one Store message_update each; the edit callback checks
 * the permissions against the stored message (so a concurrent change cannot slip by) and the
 * members' roles read just before. Members then get a live frame (message_edited,
 * message_deleted, reaction) from the replica that made the change, with seq 0 so that data
 * planes never take it for a duplicate room message. */
#include "cp_rpc.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_json.h"
#include "cp_msgext.h"
#include "cp_msgupdate.h"
#include "cp_rooms.h"
#include "sb_ident.h"
#include "sb_log.h"
#include "sb_time.h"
#include "switchboard/v1/messages.pb-c.h"

#define MAX_METADATA   64
#define MAX_META_KEY   128
#define MAX_META_VALUE 1024
#define MAX_QUERY      256
#define MAX_TOKENS     16
#define SEARCH_PAGE    200
#define ROOM_PAGE      100

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
    c->store->ops->history_query(c->store, &q, NULL, history_done, call);
}

/* ---------------------------------------------------------------- SaveMessage */

struct save {
    struct cp_ctx *c;
    struct cp_call *call;
    const Switchboard__V1__SaveMessageRequest *req; /* borrowed until the call ends */
    int64_t seq;
    char id[SB_ID_LEN];
};

/* Answers from the request when the stored message cannot be read back (trimmed at once). */
static void save_reply_from_request(struct save *s)
{
    const Switchboard__V1__SaveMessageRequest *req = s->req;
    Switchboard__V1__Message pm = SWITCHBOARD__V1__MESSAGE__INIT;
    pm.id = s->id;
    pm.seq = s->seq;
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
        cp_call_failf(s->call, SB_CODE_INTERNAL, "out of memory");
    else
        cp_call_reply(s->call, &pm.base);
    arena_free(&a);
}

static void save_read(void *arg, const struct cp_status *st, const struct cp_history_result *res)
{
    struct save *s = arg;
    if (st->code == SB_CODE_NONE && res->n_messages == 1 && res->messages[0]->seq == s->seq)
        reply_message(s->call, res->messages[0]);
    else
        save_reply_from_request(s);
    free(s);
}

static void save_stored(void *arg, const struct cp_status *st, const char *message_id, int64_t seq)
{
    struct save *s = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(s->call, st);
        free(s);
        return;
    }
    snprintf(s->id, sizeof(s->id), "%s", message_id);
    s->seq = seq;
    /* Read it back for the stored timestamp (the publish answer has only id and seq). */
    struct cp_history_query q = {
        .room_id = s->req->room_id, .limit = 1, .has_after_seq = true, .after_seq = seq - 1};
    s->c->store->ops->history_query(s->c->store, &q, NULL, save_read, s);
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
    struct cp_kv *kv = req->n_metadata ? calloc(req->n_metadata, sizeof(*kv)) : NULL;
    struct save *s = calloc(1, sizeof(*s));
    if ((req->n_metadata > 0 && kv == NULL) || s == NULL) {
        free(kv);
        free(s);
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    for (size_t i = 0; i < req->n_metadata; i++) {
        kv[i].key = req->metadata[i]->key;
        kv[i].value = req->metadata[i]->value;
    }
    s->c = c;
    s->call = call;
    s->req = req;
    struct cp_publish p = {.room_id = req->room_id,
                           .user_id = req->user_id,
                           .require_member = false,
                           .data = (const char *)req->data.data,
                           .data_len = req->data.len,
                           .thread_id = req->thread_id,
                           .metadata = kv,
                           .n_metadata = req->n_metadata,
                           .no_deliver = true};
    cp_rooms_publish(c, &p, save_stored, s);
    free(kv);
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

static void upd_start(struct cp_ctx *c, struct cp_call *call, const struct cp_msg_update *u)
{
    struct upd_call *uc = malloc(sizeof(*uc));
    if (uc == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    uc->call = call;
    uc->delete = u->kind == CP_MSG_DELETE;
    cp_msg_update(c, u, upd_done, uc);
}

void cp_rpc_history_edit(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__EditMessageRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_id(call, "message_id", req->message_id) ||
        !cp_check_optional_id(call, "editor_id", req->editor_id) ||
        !cp_check_data(call, &req->data, c->set.max_message_size))
        return;
    struct cp_msg_update t = {.kind = CP_MSG_EDIT,
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
    struct cp_msg_update t = {.kind = CP_MSG_DELETE,
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
    struct cp_msg_update t = {.kind = add ? CP_MSG_REACT_ADD : CP_MSG_REACT_REMOVE,
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

struct search {
    struct cp_ctx *c;
    struct cp_call *call;
    char *tokens[MAX_TOKENS]; /* the query's words (owned), all must appear */
    size_t n_tokens;
    const char *user_id; /* NULL: any */
    const char *room_id; /* NULL: several rooms */
    size_t limit;
    int64_t cutoff;  /* messages older are out of retention (0: none) */
    bool list_all;   /* every room, by room_list pages */
    bool more_rooms; /* another room_list page exists */
    char *after_id;  /* room_list page token */
    char **rooms;    /* the rooms to scan now */
    size_t n_rooms, next_room;
    /* The room being scanned: pages downwards from its newest message. */
    const char *cur;
    bool has_before;
    int64_t before_seq;
    size_t room_hits;
    struct cp_message **hits; /* owned */
    size_t n_hits;
    struct cp_status err; /* set: finish with it */
    bool done;
    /* Trampoline: the memory store answers inline; keep the stack flat. */
    bool stepping, again;
};

static void search_free(struct search *s)
{
    for (size_t i = 0; i < s->n_rooms; i++)
        free(s->rooms[i]);
    free(s->rooms);
    for (size_t i = 0; i < s->n_hits; i++)
        cp_message_free(s->hits[i]);
    free(s->hits);
    free(s->after_id);
    for (size_t i = 0; i < s->n_tokens; i++)
        free(s->tokens[i]);
    free(s);
}

static bool text_matches(json_t *v, const char *q, int depth)
{
    if (depth > 64)
        return false;
    if (json_is_string(v))
        return strcasestr(json_string_value(v), q) != NULL;
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (text_matches(e, q, depth + 1))
                return true;
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e)
        {
            if (text_matches(e, q, depth + 1))
                return true;
        }
    }
    return false;
}

/* Every token of the query appears (case-insensitively) in some string of data. */
static bool message_matches(const struct cp_message *m, char *const *tokens, size_t n)
{
    if (m->deleted || m->data == NULL || m->data_len == 0)
        return false;
    json_t *v = json_loadb(m->data, m->data_len, JSON_DECODE_ANY, NULL);
    bool ok = v != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = text_matches(v, tokens[i], 0);
    json_decref(v);
    return ok;
}

static int newest_first(const void *a, const void *b)
{
    const struct cp_message *x = *(const struct cp_message *const *)a;
    const struct cp_message *y = *(const struct cp_message *const *)b;
    if (x->timestamp != y->timestamp)
        return x->timestamp > y->timestamp ? -1 : 1;
    int r = strcmp(x->room_id, y->room_id);
    if (r != 0)
        return r;
    return x->seq > y->seq ? -1 : (x->seq < y->seq ? 1 : 0);
}

/* Keeps the newest `limit` hits. */
static void search_prune(struct search *s)
{
    if (s->n_hits > 1)
        qsort(s->hits, s->n_hits, sizeof(*s->hits), newest_first);
    while (s->n_hits > s->limit)
        cp_message_free(s->hits[--s->n_hits]);
}

static void search_step(struct search *s);

static void search_history(void *arg, const struct cp_status *st,
                           const struct cp_history_result *res)
{
    struct search *s = arg;
    bool room_done = true;
    if (st->code != SB_CODE_NONE) {
        /* A room gone or left since it was listed is skipped; a named room is an error. */
        if (s->room_id != NULL ||
            (st->code != SB_CODE_ROOM_NOT_FOUND && st->code != SB_CODE_NOT_ROOM_MEMBER))
            s->err = *st;
    } else {
        room_done = res->n_messages < SEARCH_PAGE;
        for (size_t i = res->n_messages; i > 0; i--) {
            const struct cp_message *m = res->messages[i - 1];
            if (s->cutoff != 0 && m->timestamp < s->cutoff) {
                room_done = true;
                break;
            }
            if (!message_matches(m, s->tokens, s->n_tokens))
                continue;
            struct cp_message *d = cp_message_dup(m);
            struct cp_message **h = realloc(s->hits, (s->n_hits + 1) * sizeof(*h));
            if (d == NULL || h == NULL) {
                cp_message_free(d);
                if (h != NULL)
                    s->hits = h;
                cp_status_set(&s->err, SB_CODE_INTERNAL, "out of memory");
                break;
            }
            s->hits = h;
            s->hits[s->n_hits++] = d;
            if (++s->room_hits >= s->limit) {
                room_done = true;
                break;
            }
        }
        if (res->n_messages > 0) {
            s->has_before = true;
            s->before_seq = res->messages[0]->seq;
        } else {
            room_done = true;
        }
    }
    if (room_done) {
        s->cur = NULL;
        search_prune(s);
    }
    search_step(s);
}

static void search_rooms(void *arg, const struct cp_status *st, const struct cp_room *const *rooms,
                         size_t n, bool more)
{
    struct search *s = arg;
    for (size_t i = 0; i < s->n_rooms; i++)
        free(s->rooms[i]);
    free(s->rooms);
    s->rooms = NULL;
    s->n_rooms = s->next_room = 0;
    s->more_rooms = false;
    if (st->code != SB_CODE_NONE) {
        s->err = *st;
    } else if (n > 0) {
        s->rooms = calloc(n, sizeof(*s->rooms));
        char *after = strdup(rooms[n - 1]->id);
        if (s->rooms == NULL || after == NULL) {
            free(after);
            cp_status_set(&s->err, SB_CODE_INTERNAL, "out of memory");
        } else {
            free(s->after_id);
            s->after_id = after;
            s->more_rooms = more;
            for (size_t i = 0; i < n && s->err.code == SB_CODE_NONE; i++) {
                s->rooms[i] = strdup(rooms[i]->id);
                if (s->rooms[i] == NULL)
                    cp_status_set(&s->err, SB_CODE_INTERNAL, "out of memory");
                s->n_rooms = i + 1;
            }
        }
    }
    search_step(s);
}

static void search_user_rooms(void *arg, const struct cp_status *st, const char *const *ids,
                              size_t n)
{
    struct search *s = arg;
    if (st->code != SB_CODE_NONE) {
        s->err = *st;
    } else if (n > 0) {
        s->rooms = calloc(n, sizeof(*s->rooms));
        for (size_t i = 0; s->rooms != NULL && i < n; i++) {
            s->rooms[i] = strdup(ids[i]);
            s->n_rooms = i + 1;
            if (s->rooms[i] == NULL)
                break;
        }
        if (s->rooms == NULL || s->rooms[s->n_rooms - 1] == NULL)
            cp_status_set(&s->err, SB_CODE_INTERNAL, "out of memory");
    }
    search_step(s);
}

/* Starts the next store read, or answers. Returns true when `s` is gone. */
static bool search_advance(struct search *s)
{
    struct cp_store *store = s->c->store;
    if (s->err.code == SB_CODE_NONE && s->cur == NULL) {
        if (s->next_room < s->n_rooms) {
            s->cur = s->rooms[s->next_room++];
            s->has_before = false;
            s->room_hits = 0;
        } else if (s->list_all && s->more_rooms) {
            struct cp_room_query q = {
                .after_id = s->after_id, .include_archived = true, .limit = ROOM_PAGE};
            store->ops->room_list(store, &q, search_rooms, s);
            return false;
        }
    }
    if (s->err.code != SB_CODE_NONE || s->cur == NULL) {
        if (s->err.code != SB_CODE_NONE)
            cp_call_fail(s->call, &s->err);
        else
            reply_messages(s->call, (const struct cp_message *const *)s->hits, s->n_hits, true);
        search_free(s);
        return true;
    }
    struct cp_history_query q = {.room_id = s->cur,
                                 .limit = SEARCH_PAGE,
                                 .has_before_seq = s->has_before,
                                 .before_seq = s->before_seq};
    /* A search for a user in a named room needs that user's membership. */
    store->ops->history_query(store, &q, s->room_id != NULL ? s->user_id : NULL, search_history, s);
    return false;
}

static void search_step(struct search *s)
{
    if (s->stepping) {
        s->again = true;
        return;
    }
    s->stepping = true;
    for (;;) {
        s->again = false;
        if (search_advance(s))
            return;
        if (!s->again)
            break;
    }
    s->stepping = false;
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
    struct search *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    s->c = c;
    s->call = call;
    for (const char *q = req->query; *q != '\0';) {
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
            q++;
        size_t len = strcspn(q, " \t\n\r");
        if (len == 0)
            break;
        if (s->n_tokens == MAX_TOKENS) {
            search_free(s);
            cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "query has more than %d words",
                          MAX_TOKENS);
            return;
        }
        s->tokens[s->n_tokens] = strndup(q, len);
        if (s->tokens[s->n_tokens] == NULL) {
            search_free(s);
            cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
            return;
        }
        s->n_tokens++;
        q += len;
    }
    if (s->n_tokens == 0) {
        search_free(s);
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "query has no words");
        return;
    }
    s->user_id = set(req->user_id) ? req->user_id : NULL;
    s->room_id = set(req->room_id) ? req->room_id : NULL;
    s->limit = req->limit == 0
                   ? CP_RPC_DEFAULT_LIMIT
                   : (size_t)(req->limit > CP_RPC_MAX_LIMIT ? CP_RPC_MAX_LIMIT : req->limit);
    if (c->set.message_retention_ms > 0)
        s->cutoff = sb_time_now_ms() - c->set.message_retention_ms;
    cp_status_ok(&s->err);
    if (s->room_id != NULL) {
        s->rooms = calloc(1, sizeof(*s->rooms));
        if (s->rooms != NULL)
            s->rooms[0] = strdup(s->room_id);
        if (s->rooms == NULL || s->rooms[0] == NULL) {
            search_free(s);
            cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
            return;
        }
        s->n_rooms = 1;
        search_step(s);
    } else if (s->user_id != NULL) {
        c->store->ops->user_rooms(c->store, s->user_id, search_user_rooms, s);
    } else {
        s->list_all = true;
        s->more_rooms = true;
        search_step(s);
    }
}
