/* Message search (see cp_search.h): a list of rooms to scan (one, the user's, or room_list
 * pages), each scanned downwards from its newest message, the hits kept to the newest `limit`
 * after every room. */
#include "cp_search.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_steps.h"
#include "sb_time.h"

#define SEARCH_PAGE 200 /* messages per history read */
#define ROOM_PAGE   100 /* rooms per room_list read */

/* ---------------------------------------------------------------- query, matching */

void cp_search_query_fini(struct cp_search_query *q)
{
    for (size_t i = 0; i < q->n_words; i++)
        free(q->words[i]);
    q->n_words = 0;
}

bool cp_search_parse(const char *text, struct cp_search_query *q, struct cp_status *st)
{
    q->n_words = 0;
    for (const char *p = text; *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        size_t len = strcspn(p, " \t\n\r");
        if (len == 0)
            break;
        if (q->n_words == CP_SEARCH_MAX_WORDS) {
            cp_search_query_fini(q);
            cp_status_set(st, SB_CODE_INVALID_MESSAGE, "query has more than %d words",
                          CP_SEARCH_MAX_WORDS);
            return false;
        }
        q->words[q->n_words] = strndup(p, len);
        if (q->words[q->n_words] == NULL) {
            cp_search_query_fini(q);
            cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
            return false;
        }
        q->n_words++;
        p += len;
    }
    if (q->n_words == 0) {
        cp_status_set(st, SB_CODE_INVALID_MESSAGE, "query has no words");
        return false;
    }
    return true;
}

static bool text_matches(const json_t *v, const char *word, int depth)
{
    if (depth > 64)
        return false;
    if (json_is_string(v))
        return strcasestr(json_string_value(v), word) != NULL;
    size_t i;
    const char *k;
    json_t *e;
    if (json_is_array(v)) {
        json_array_foreach(v, i, e)
        {
            if (text_matches(e, word, depth + 1))
                return true;
        }
    } else if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, e)
        {
            if (text_matches(e, word, depth + 1))
                return true;
        }
    }
    return false;
}

bool cp_search_matches(const struct cp_message *m, const struct cp_search_query *q)
{
    if (m->deleted || m->data == NULL || m->data_len == 0)
        return false;
    json_t *v = json_loadb(m->data, m->data_len, JSON_DECODE_ANY, NULL);
    bool ok = v != NULL;
    for (size_t i = 0; ok && i < q->n_words; i++)
        ok = text_matches(v, q->words[i], 0);
    json_decref(v);
    return ok;
}

/* ---------------------------------------------------------------- the walk */

struct search {
    struct cp_ctx *c;
    cp_search_fn *cb;
    void *arg;
    struct cp_search_query q;
    char *user_id; /* NULL: any */
    char *room_id; /* NULL: several rooms */
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
    struct cp_status err;  /* set: finish with it */
    struct cp_steps steps; /* the memory store answers inline: keep the stack flat */
};

static void rooms_clear(struct search *s)
{
    for (size_t i = 0; i < s->n_rooms; i++)
        free(s->rooms[i]);
    free(s->rooms);
    s->rooms = NULL;
    s->n_rooms = s->next_room = 0;
}

static void search_free(struct search *s)
{
    rooms_clear(s);
    for (size_t i = 0; i < s->n_hits; i++)
        cp_message_free(s->hits[i]);
    free(s->hits);
    free(s->after_id);
    free(s->user_id);
    free(s->room_id);
    cp_search_query_fini(&s->q);
    free(s);
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

/* Takes a copy of hit `m`; false (s->err set) on ENOMEM. */
static bool keep_hit(struct search *s, const struct cp_message *m)
{
    struct cp_message *d = cp_message_dup(m);
    struct cp_message **h = realloc(s->hits, (s->n_hits + 1) * sizeof(*h));
    if (h != NULL)
        s->hits = h;
    if (d == NULL || h == NULL) {
        cp_message_free(d);
        cp_status_set(&s->err, SB_CODE_INTERNAL, "out of memory");
        return false;
    }
    s->hits[s->n_hits++] = d;
    return true;
}

/* One page of the current room, newest last: true when the room is done. */
static bool scan_page(struct search *s, const struct cp_history_result *res)
{
    bool room_done = res->n_messages < SEARCH_PAGE;
    for (size_t i = res->n_messages; i > 0; i--) {
        const struct cp_message *m = res->messages[i - 1];
        if (s->cutoff != 0 && m->timestamp < s->cutoff)
            return true;
        if (!cp_search_matches(m, &s->q))
            continue;
        if (!keep_hit(s, m))
            return true;
        if (++s->room_hits >= s->limit)
            return true;
    }
    if (res->n_messages == 0)
        return true;
    s->has_before = true;
    s->before_seq = res->messages[0]->seq;
    return room_done;
}

static void search_history(void *arg, const struct cp_status *st,
                           const struct cp_history_result *res)
{
    struct search *s = arg;
    bool room_done = true;
    if (st->code == SB_CODE_NONE)
        room_done = scan_page(s, res);
    else if (s->room_id != NULL ||
             (st->code != SB_CODE_ROOM_NOT_FOUND && st->code != SB_CODE_NOT_ROOM_MEMBER))
        s->err = *st; /* a room gone or left since it was listed is skipped */
    if (room_done) {
        s->cur = NULL;
        search_prune(s);
    }
    search_step(s);
}

/* s->rooms = copies of ids[0..n-1]; false (s->err set) on ENOMEM. */
static bool rooms_set(struct search *s, const char *const *ids, size_t n)
{
    rooms_clear(s);
    if (n == 0)
        return true;
    s->rooms = calloc(n, sizeof(*s->rooms));
    for (size_t i = 0; s->rooms != NULL && i < n; i++) {
        s->rooms[i] = strdup(ids[i]);
        s->n_rooms = i + 1;
        if (s->rooms[i] == NULL)
            break;
    }
    if (s->rooms != NULL && s->rooms[n - 1] != NULL)
        return true;
    cp_status_set(&s->err, SB_CODE_INTERNAL, "out of memory");
    return false;
}

static void search_rooms(void *arg, const struct cp_status *st, const struct cp_room *const *rooms,
                         size_t n, bool more)
{
    struct search *s = arg;
    rooms_clear(s);
    s->more_rooms = false;
    if (st->code != SB_CODE_NONE) {
        s->err = *st;
    } else if (n > 0) {
        const char **ids = calloc(n, sizeof(*ids));
        char *after = strdup(rooms[n - 1]->id);
        for (size_t i = 0; ids != NULL && i < n; i++)
            ids[i] = rooms[i]->id;
        if (ids == NULL || after == NULL) {
            free(after);
            cp_status_set(&s->err, SB_CODE_INTERNAL, "out of memory");
        } else if (rooms_set(s, ids, n)) {
            free(s->after_id);
            s->after_id = after;
            s->more_rooms = more;
        } else {
            free(after);
        }
        free(ids);
    }
    search_step(s);
}

static void search_user_rooms(void *arg, const struct cp_status *st, const char *const *ids,
                              size_t n)
{
    struct search *s = arg;
    if (st->code != SB_CODE_NONE)
        s->err = *st;
    else
        rooms_set(s, ids, n);
    search_step(s);
}

/* Starts the next store read, or answers. Returns true when `s` is gone. */
static bool search_advance(void *ud)
{
    struct search *s = ud;
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
        bool ok = s->err.code == SB_CODE_NONE;
        s->cb(s->arg, &s->err, ok ? (const struct cp_message *const *)s->hits : NULL,
              ok ? s->n_hits : 0);
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
    cp_steps_run(&s->steps, search_advance, s);
}

static char *dup_set(const char *s, bool *ok)
{
    if (s == NULL || s[0] == '\0')
        return NULL;
    char *d = strdup(s);
    *ok = *ok && d != NULL;
    return d;
}

void cp_search_run(struct cp_ctx *c, struct cp_search_query *q, const char *room_id,
                   const char *user_id, size_t limit, cp_search_fn *cb, void *arg)
{
    struct search *s = calloc(1, sizeof(*s));
    bool ok = s != NULL;
    if (s != NULL) {
        *s = (struct search){.c = c, .cb = cb, .arg = arg, .q = *q, .limit = limit};
        q->n_words = 0; /* the words are s's now */
        s->user_id = dup_set(user_id, &ok);
        s->room_id = dup_set(room_id, &ok);
    }
    if (!ok) {
        if (s != NULL)
            search_free(s);
        else
            cp_search_query_fini(q);
        struct cp_status st;
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL, 0);
        return;
    }
    if (c->set.message_retention_ms > 0)
        s->cutoff = sb_time_now_ms() - c->set.message_retention_ms;
    cp_status_ok(&s->err);
    if (s->room_id != NULL) {
        const char *ids[1] = {s->room_id};
        rooms_set(s, ids, 1); /* ENOMEM: s->err, the answer of the first step */
        search_step(s);
    } else if (s->user_id != NULL) {
        c->store->ops->user_rooms(c->store, s->user_id, search_user_rooms, s);
    } else {
        s->list_all = true;
        s->more_rooms = true;
        search_step(s);
    }
}
