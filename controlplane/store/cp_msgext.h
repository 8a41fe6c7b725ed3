/* The `ext` text of a stored message (struct cp_message.ext): its edit trail and reactions, as
 * one JSON object the stores keep verbatim and only this module reads or writes
 * (docs/history.md):
 *
 *   {"edits":[{"editor_id":"alice","previous_data":"{\"text\":\"hi\"}","edited_at":1700000000000}],
 *    "reactions":[{"emoji":"+1","user_ids":["bob","carol"]}]}
 *
 * previous_data is the replaced `data` as JSON text inside a string, so it is given back byte
 * for byte. editor_id "" is the backend. Edits are oldest first; reactions keep the order of
 * each emoji's first reaction, users the order they reacted in. A missing, empty or unreadable
 * ext reads as no edits and no reactions (a write replaces an unreadable one).
 * Pure; any thread. */
#ifndef CP_MSGEXT_H
#define CP_MSGEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_buf.h"
#include "sb_err.h"

/* The trail keeps the newest CP_MSGEXT_MAX_EDITS edits, and drops older ones while the kept
 * previous_data exceed CP_MSGEXT_MAX_EDIT_BYTES in total (the newest edit is always kept). */
#define CP_MSGEXT_MAX_EDITS      20
#define CP_MSGEXT_MAX_EDIT_BYTES (256 * 1024)
/* An emoji is 1..64 bytes of UTF-8 without control characters. */
#define CP_MSGEXT_MAX_EMOJI_BYTES 64
/* Different emoji per message. */
#define CP_MSGEXT_MAX_REACTIONS 64

struct cp_msgext_edit {
    char *editor_id;     /* "" for the backend */
    char *previous_data; /* JSON text, NUL-terminated */
    size_t previous_len;
    int64_t edited_at; /* Unix ms */
};

struct cp_msgext_reaction {
    char *emoji;
    char **user_ids;
    size_t n_users;
};

struct cp_msgext {
    struct cp_msgext_edit *edits; /* oldest first */
    size_t n_edits;
    struct cp_msgext_reaction *reactions;
    size_t n_reactions;
};

/* True if `emoji` is a valid reaction: non-empty, at most CP_MSGEXT_MAX_EMOJI_BYTES bytes,
 * valid UTF-8, no C0/C1 control characters nor DEL. */
bool cp_msgext_emoji_valid(const char *emoji);

/* Appends an edit (the data it replaces) to the trail of `ext` (NULL: none), applying the
 * limits above. *out gets the new ext text (free with free()). SB_ENOMEM. */
enum sb_err cp_msgext_add_edit(const char *ext, const char *editor_id, const char *prev,
                               size_t prev_len, int64_t edited_at, char **out);

/* Adds (add) or removes `user_id`'s `emoji` reaction. *changed says whether anything changed
 * (a user reacts once per emoji; removing a reaction that is not there changes nothing); when
 * it did, *out gets the new ext text (free with free()), else *out is NULL. An emoji with no
 * user left is dropped; an ext left empty becomes NULL (*changed true, *out NULL).
 * SB_EFULL: adding a new emoji beyond CP_MSGEXT_MAX_REACTIONS. SB_ENOMEM. */
enum sb_err cp_msgext_react(const char *ext, const char *emoji, const char *user_id, bool add,
                            char **out, bool *changed);

/* Parses `ext` into `x` (owned strings; free with cp_msgext_free). NULL, "" or unreadable
 * text give an empty result. SB_ENOMEM. */
enum sb_err cp_msgext_parse(const char *ext, struct cp_msgext *x);

void cp_msgext_free(struct cp_msgext *x);

/* Appends the client JSON members for `ext`, each preceded by a comma, only when non-empty:
 *   ,"edits":[{"editor_id":"alice","previous_data":<the JSON>,"edited_at":"<RFC 3339>"}]
 *   ,"reactions":[{"emoji":"+1","user_ids":["bob"],"count":1}]
 * (editor_id left out for the backend). */
void cp_msgext_render(struct cp_buf *b, const char *ext);

#endif
