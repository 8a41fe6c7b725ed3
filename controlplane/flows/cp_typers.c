/* Typing entries in a map (lookup by room and user) and a FIFO list (expiry): every entry
 * has the same timeout, so a refresh moves it to the tail and the head expires first. */
#include "cp_typers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cp_typers_init(struct cp_typers *t, int64_t timeout_ms)
{
    memset(t, 0, sizeof(*t));
    sb_map_init(&t->entries);
    t->timeout_ms = timeout_ms;
}

static void unlink_entry(struct cp_typers *t, struct cp_typers_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        t->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        t->tail = e->prev;
    e->prev = e->next = NULL;
}

static void append_entry(struct cp_typers *t, struct cp_typers_entry *e)
{
    e->prev = t->tail;
    e->next = NULL;
    if (t->tail)
        t->tail->next = e;
    else
        t->head = e;
    t->tail = e;
}

static void entry_free(struct cp_typers_entry *e)
{
    free(e->room_id);
    free(e->user_id);
    free(e);
}

void cp_typers_fini(struct cp_typers *t)
{
    struct cp_typers_entry *e = t->head;
    while (e != NULL) {
        struct cp_typers_entry *next = e->next;
        entry_free(e);
        e = next;
    }
    sb_map_fini(&t->entries);
    t->head = t->tail = NULL;
}

static size_t make_key(char *out, size_t cap, const char *room_id, const char *user_id)
{
    int n = snprintf(out, cap, "%s\n%s", room_id, user_id);
    return n < 0 ? 0 : (size_t)n;
}

int cp_typers_start(struct cp_typers *t, const char *room_id, const char *user_id, int64_t mono_ms)
{
    size_t klen = strlen(room_id) + strlen(user_id) + 1;
    char *key = malloc(klen + 1);
    if (key == NULL)
        return -1;
    make_key(key, klen + 1, room_id, user_id);
    struct cp_typers_entry *e = sb_map_get(&t->entries, key);
    if (e != NULL) {
        free(key);
        unlink_entry(t, e);
        e->expires = mono_ms + t->timeout_ms;
        append_entry(t, e);
        return 0;
    }
    e = calloc(1, sizeof(*e) + klen + 1);
    if (e == NULL) {
        free(key);
        return -1;
    }
    memcpy(e->key, key, klen + 1);
    free(key);
    e->room_id = strdup(room_id);
    e->user_id = strdup(user_id);
    if (e->room_id == NULL || e->user_id == NULL || sb_map_put(&t->entries, e->key, e) != SB_OK) {
        entry_free(e);
        return -1;
    }
    e->expires = mono_ms + t->timeout_ms;
    append_entry(t, e);
    return 1;
}

static void remove_entry(struct cp_typers *t, struct cp_typers_entry *e)
{
    sb_map_remove(&t->entries, e->key);
    unlink_entry(t, e);
    entry_free(e);
}

struct cp_typers_entry *cp_typers_find(const struct cp_typers *t, const char *room_id,
                                       const char *user_id)
{
    size_t klen = strlen(room_id) + strlen(user_id) + 1;
    char *key = malloc(klen + 1);
    if (key == NULL)
        return NULL;
    make_key(key, klen + 1, room_id, user_id);
    struct cp_typers_entry *e = sb_map_get(&t->entries, key);
    free(key);
    return e;
}

bool cp_typers_stop(struct cp_typers *t, const char *room_id, const char *user_id)
{
    size_t klen = strlen(room_id) + strlen(user_id) + 1;
    char *key = malloc(klen + 1);
    if (key == NULL)
        return false;
    make_key(key, klen + 1, room_id, user_id);
    struct cp_typers_entry *e = sb_map_get(&t->entries, key);
    free(key);
    if (e == NULL)
        return false;
    remove_entry(t, e);
    return true;
}

void cp_typers_expire(struct cp_typers *t, int64_t mono_ms, cp_typers_stopped_fn *fn, void *arg)
{
    while (t->head != NULL && t->head->expires <= mono_ms) {
        struct cp_typers_entry *e = t->head;
        sb_map_remove(&t->entries, e->key);
        unlink_entry(t, e);
        if (fn != NULL)
            fn(arg, e->room_id, e->user_id);
        entry_free(e);
    }
}

void cp_typers_stop_matching(struct cp_typers *t, const char *room_id, const char *user_id,
                             cp_typers_stopped_fn *fn, void *arg)
{
    struct cp_typers_entry *e = t->head;
    while (e != NULL) {
        struct cp_typers_entry *next = e->next;
        if ((room_id == NULL || strcmp(e->room_id, room_id) == 0) &&
            (user_id == NULL || strcmp(e->user_id, user_id) == 0)) {
            sb_map_remove(&t->entries, e->key);
            unlink_entry(t, e);
            if (fn != NULL)
                fn(arg, e->room_id, e->user_id);
            entry_free(e);
        }
        e = next;
    }
}

int64_t cp_typers_next_deadline(const struct cp_typers *t)
{
    return t->head ? t->head->expires : 0;
}

void cp_typers_list(const struct cp_typers *t, const char *room_id, cp_typers_stopped_fn *fn,
                    void *arg)
{
    for (const struct cp_typers_entry *e = t->head; e != NULL; e = e->next) {
        if (strcmp(e->room_id, room_id) == 0)
            fn(arg, e->room_id, e->user_id);
    }
}
