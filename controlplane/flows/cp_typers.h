/* Who is typing where, with expiry: a typing=true starts or refreshes an entry that expires
 * after the typing timeout. Pure state; the caller delivers the frames and keeps the Store
 * document typing/<room>/<user> that lets every replica answer GetTypingUsers (cp_typing.c).
 * Thread: the completion-queue thread only. */
#ifndef CP_TYPERS_H
#define CP_TYPERS_H

#include <stdbool.h>
#include <stdint.h>

#include "sb_map.h"

struct cp_typers_entry {
    char *room_id;
    char *user_id;
    int64_t expires;       /* monotonic ms */
    int64_t written_until; /* Unix ms: expires_at last written to the document (cp_typing.c) */
    int64_t started_at;    /* Unix ms, set by the caller on a new entry (cp_typing.c) */
    struct cp_typers_entry *prev, *next;
    char key[]; /* room_id "\n" user_id */
};

struct cp_typers {
    struct sb_map entries;               /* key -> entry */
    struct cp_typers_entry *head, *tail; /* by expiry (one fixed timeout) */
    int64_t timeout_ms;
};

void cp_typers_init(struct cp_typers *t, int64_t timeout_ms);
void cp_typers_fini(struct cp_typers *t);

/* Starts or refreshes. Returns 1 when the user was not typing in the room (deliver
 * typing:true), 0 on a refresh, -1 on ENOMEM. */
int cp_typers_start(struct cp_typers *t, const char *room_id, const char *user_id, int64_t mono_ms);

/* The entry of (room, user), or NULL. Borrowed until the next change. */
struct cp_typers_entry *cp_typers_find(const struct cp_typers *t, const char *room_id,
                                       const char *user_id);

/* Stops. Returns true when the user was typing (deliver typing:false). */
bool cp_typers_stop(struct cp_typers *t, const char *room_id, const char *user_id);

typedef void cp_typers_stopped_fn(void *arg, const char *room_id, const char *user_id);

/* Removes every expired entry, calling `fn` for each before it is freed. */
void cp_typers_expire(struct cp_typers *t, int64_t mono_ms, cp_typers_stopped_fn *fn, void *arg);

/* Removes the entries matching `room_id` and `user_id` (NULL matches any), calling `fn` for
 * each before it is freed. */
void cp_typers_stop_matching(struct cp_typers *t, const char *room_id, const char *user_id,
                             cp_typers_stopped_fn *fn, void *arg);

/* Monotonic ms of the next expiry, 0 when nobody types. */
int64_t cp_typers_next_deadline(const struct cp_typers *t);

/* Calls `fn` for every user typing in `room_id`. */
void cp_typers_list(const struct cp_typers *t, const char *room_id, cp_typers_stopped_fn *fn,
                    void *arg);

#endif
