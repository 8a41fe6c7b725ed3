/* Client frames (PROTOCOL.md), pure: parse and validate what a client sends, and build the
 * frames the data plane itself answers with (connected, ack, error, history, pong, kicked).
 * No I/O and no globals: unit-tested and fuzzed (fuzz_dp_frame). */
#ifndef DP_FRAME_H
#define DP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sb_err.h"

/* Limits on fields that have no other bound (bytes). */
#define DP_FRAME_REF_MAX      128
#define DP_FRAME_META_MAX     32 /* metadata entries */
#define DP_FRAME_META_KEY_MAX 128
#define DP_FRAME_META_VAL_MAX 4096
#define DP_FRAME_TEXT_MAX     256 /* custom_status, device/activity fields, filter */
#define DP_FRAME_HISTORY_MAX  1000
#define DP_FRAME_HISTORY_DEF  50

enum dp_frame_type {
    DP_FRAME_JOIN = 1,
    DP_FRAME_LEAVE,
    DP_FRAME_MESSAGE,
    DP_FRAME_SUBSCRIBE,
    DP_FRAME_UNSUBSCRIBE,
    DP_FRAME_PUBLISH,
    DP_FRAME_TYPING,
    DP_FRAME_PRESENCE,
    DP_FRAME_HISTORY,
    DP_FRAME_PING,
    DP_FRAME_EDIT, /* history (docs/history.md) */
    DP_FRAME_DELETE,
    DP_FRAME_REACT,
    DP_FRAME_REFRESH, /* a new token for the connection (PROTOCOL.md, authentication) */
};
#define DP_FRAME_LAST DP_FRAME_REFRESH

struct dp_frame_kv {
    const char *key;
    const char *value;
};

/* A validated client frame. Strings are borrowed from `root` (or, for `data`, from the input
 * text): valid until dp_frame_fini and while the input text lives. Absent optional strings are
 * NULL. */
struct dp_frame {
    enum dp_frame_type type;
    const char *ref;
    const char *room_id;    /* join, leave, message, typing, history, edit, delete, react */
    const char *channel_id; /* subscribe, unsubscribe, publish */
    const char *filter;     /* subscribe (optional) */
    const char *thread_id;  /* message (optional) */
    const char *data;       /* message, publish, edit: the exact bytes the client sent */
    size_t data_len;
    struct dp_frame_kv *metadata; /* message (optional); heap, n_metadata entries */
    size_t n_metadata;
    bool has_since; /* join */
    int64_t since;
    bool typing;                                 /* typing */
    const char *status;                          /* presence */
    const char *device_type, *device_name;       /* presence (optional) */
    const char *activity_type, *activity_detail; /* presence (optional) */
    const char *custom_status;                   /* presence (optional) */
    int limit;                                   /* history, 1..1000, default 50 */
    bool has_before, has_after;                  /* history */
    int64_t before, after;
    const char *message_id; /* edit, delete, react */
    const char *emoji;      /* react, 1..64 bytes (the control plane checks it further) */
    bool remove;            /* react (optional): remove the reaction */
    const char *token;      /* refresh: the new JWT; subscribe (optional): a subscription
                               token (both checked by dp_auth) */
    json_t *root;
};

/* Why a frame was refused: a protocol code, a precise sentence, and the frame's `ref` when it
 * had a valid one (else ""), so the error frame can echo it. */
struct dp_frame_error {
    const char *code; /* "invalid_message" */
    char message[160];
    char ref[DP_FRAME_REF_MAX + 1];
    bool has_ref;
};

/* Parses and validates `text` (len bytes, need not be NUL-terminated). On SB_OK fills *out
 * (release with dp_frame_fini). On SB_EINVAL fills *err and leaves *out untouched. Never
 * asserts on input. Pure; any thread. */
enum sb_err dp_frame_parse(const char *text, size_t len, struct dp_frame *out,
                           struct dp_frame_error *err);

/* Releases what dp_frame_parse allocated. */
void dp_frame_fini(struct dp_frame *f);

/* Returns the frame type's name ("join", ...). Pure. */
const char *dp_frame_type_name(enum dp_frame_type type);

/* Finds the top-level member `key` of the JSON object `text` (len bytes, already known to be
 * valid JSON) and returns the raw span of its value in *off / *vlen. SB_ENOTFOUND if absent,
 * SB_EINVAL if `text` is not an object. Pure. */
enum sb_err dp_frame_find_member(const char *text, size_t len, const char *key, size_t *off,
                                 size_t *vlen);

/* Builders. Each returns a new NUL-terminated compact JSON text in *out (free()) and its length
 * in *out_len; `ref` may be NULL (then no "ref" member). SB_ENOMEM on failure. Pure. */
/* connected: with "resumed":true when session_id is a resumed session (docs/delivery.md); a
 * new session has no "resumed" member. */
enum sb_err dp_frame_format_connected(const char *connection_id, const char *session_id,
                                      const char *user_id, const char *node_id, bool resumed,
                                      char **out, size_t *out_len);
/* {"type":"ack","ref":..} plus "room_id" if non-NULL, "id" if non-NULL, "seq" if has_seq. */
enum sb_err dp_frame_format_ack(const char *ref, const char *room_id, const char *id, bool has_seq,
                                int64_t seq, char **out, size_t *out_len);
enum sb_err dp_frame_format_error(const char *ref, const char *code, const char *message,
                                  char **out, size_t *out_len);
enum sb_err dp_frame_format_pong(const char *ref, char **out, size_t *out_len);
/* {"type":"token_expiring","expires_at":..} and the `refresh` ack {"type":"ack","ref":..,
 * "expires_at":..} (expires_at_ms 0: no expiry, the member is left out). */
enum sb_err dp_frame_format_token_expiring(int64_t expires_at_ms, char **out, size_t *out_len);
enum sb_err dp_frame_format_refreshed(const char *ref, int64_t expires_at_ms, char **out,
                                      size_t *out_len);
enum sb_err dp_frame_format_kicked(const char *reason, char **out, size_t *out_len);
/* {"type":"history","ref":..,"room_id":..,"messages":[m0,m1,...]}: each message is spliced as
 * the raw JSON text given (msgs[i], lens[i]), oldest first. */
enum sb_err dp_frame_format_history(const char *ref, const char *room_id, const char *const *msgs,
                                    const size_t *lens, size_t n, char **out, size_t *out_len);

/* Reads "room_id" and "seq" of a message frame (JSON text). Returns SB_OK with *seq > 0 and the
 * room id copied into room (cap bytes), else SB_ENOTFOUND. Pure. */
enum sb_err dp_frame_peek_room_seq(const char *json, size_t len, char *room, size_t cap,
                                   int64_t *seq);

#endif
