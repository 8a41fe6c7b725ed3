/* Who is typing where, with expiry: a typing=true starts or refreshes an entry that expires
 * after the typing timeout. Pure state; the caller delivers the frames and keeps the Store
 * document typing/<room>/<user> that lets every replica answer GetTypingUsers (cp_users.c).
 * Thread: the completion-queue thread only. */
#ifndef CP_TYPING_H
#define CP_TYPING_H

#include <stdbool.h>
#include <stdint.h>

#include "sb_map.h"

struct cp_typing_entry {
    char *room_id;
    char *user_id;
    int64_t expires;       /* monotonic ms */
    int64_t written_until; /* Unix ms: expires_at last written to the document (cp_users.c) */
    int64_t started_at;    /* Unix ms, set by the caller on a new entry (cp_users.c) */
    struct cp_typing_entry *prev, *next;
    char key[]; /* room_id "\n" user_id */
};

struct cp_typing {
    struct sb_map entries;               /* key -> entry */
    struct cp_typing_entry *head, *tail; /* by expiry (one fixed timeout) */
    int64_t timeout_ms;
};

void cp_typing_init(struct cp_typing *t, int64_t timeout_ms);
void cp_typing_fini(struct cp_typing *t);

/* Starts or refreshes. Returns 1 when the user was not typing in the room (deliver
 * typing:true), 0 on a refresh, -1 on ENOMEM. */
int cp_typing_start(struct cp_typing *t, const char *room_id, const char *user_id, int64_t mono_ms);

/* The entry of (room, user), or NULL. Borrowed until the next change. */
struct cp_typing_entry *cp_typing_find(const struct cp_typing *t, const char *room_id,
                                       const char *user_id);

/* Stops. Returns true when the user was typing (deliver typing:false). */
bool cp_typing_stop(struct cp_typing *t, const char *room_id, const char *user_id);

typedef void cp_typing_stopped_fn(void *arg, const char *room_id, const char *user_id);

/* Removes every expired entry, calling `fn` for each before it is freed. */
void cp_typing_expire(struct cp_typing *t, int64_t mono_ms, cp_typing_stopped_fn *fn, void *arg);

/* Removes the entries matching `room_id` and `user_id` (NULL matches any), calling `fn` for
 * each before it is freed. */
void cp_typing_stop_matching(struct cp_typing *t, const char *room_id, const char *user_id,
                             cp_typing_stopped_fn *fn, void *arg);

/* Monotonic ms of the next expiry, 0 when nobody types. */
int64_t cp_typing_next_deadline(const struct cp_typing *t);

/* Calls `fn` for every user typing in `room_id`. */
void cp_typing_list(const struct cp_typing *t, const char *room_id, cp_typing_stopped_fn *fn,
                    void *arg);

#endif
