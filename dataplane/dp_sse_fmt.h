/* Server-Sent Events text, pure: event rendering and the stream position carried in `id:`.
 * A position is "room_id:seq,room_id:seq" (last seq seen per room on this stream), so a
 * reconnecting EventSource's Last-Event-ID rejoins each room with `since`. */
#ifndef DP_SSE_FMT_H
#define DP_SSE_FMT_H

#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "sb_ident.h"

/* The position of a stream that has seen no room message yet: an `id:` needs a value, and an
 * empty one would clear the client's Last-Event-ID. Not a valid entry ("room:seq"). */
#define DP_SSE_POS_EMPTY "-"

/* Most rooms one stream position tracks (the rest are left out of the id). */
#define DP_SSE_POS_MAX 64

struct dp_sse_pos_entry {
    char room_id[SB_IDENT_MAX + 1];
    int64_t seq;
};

/* A stream position: caller's storage, zero-initialised; dp_sse_fmt_pos_fini frees it. */
struct dp_sse_pos {
    struct dp_sse_pos_entry *v;
    size_t n, cap;
};

/* Renders one frame (`json`, len bytes; a JSON object whose "type" names the event) as
 * "event: <type>\ndata: <line>\n...\n\n". Raw line breaks in the JSON (whitespace only, since
 * JSON strings cannot hold them) start new `data:` lines, which EventSource joins with "\n".
 * *out is new and NUL-terminated (free()). SB_ENOMEM on failure. Pure. */
enum sb_err dp_sse_fmt_event(const char *json, size_t len, char **out, size_t *out_len);

/* Records `seq` for `room_id` (a valid id): raises the room's seq, or adds the room while fewer
 * than DP_SSE_POS_MAX are tracked. SB_EINVAL for an invalid id, SB_EFULL when full, SB_ENOMEM.
 * Pure. */
enum sb_err dp_sse_fmt_pos_set(struct dp_sse_pos *pos, const char *room_id, int64_t seq);

/* Returns the seq recorded for `room_id`, or -1. Pure. */
int64_t dp_sse_fmt_pos_get(const struct dp_sse_pos *pos, const char *room_id);

/* Writes the position as "r1:17,r2:5" (DP_SSE_POS_EMPTY when it has no room) into `out` (cap
 * bytes, NUL-terminated). Returns the length, or 0 if it does not fit. Pure. */
size_t dp_sse_fmt_pos_encode(const struct dp_sse_pos *pos, char *out, size_t cap);

/* Parses `s` (len bytes, e.g. a Last-Event-ID header) into `pos` (cleared first). Entries are
 * "room_id:seq" separated by ',', split at the last ':' (ids may contain ':'); seq is decimal
 * 0..INT64_MAX; repeated rooms keep the highest seq; DP_SSE_POS_EMPTY is the empty position.
 * SB_EINVAL on any malformed entry (pos is
 * then empty), SB_EFULL beyond DP_SSE_POS_MAX rooms. Pure. */
enum sb_err dp_sse_fmt_pos_parse(const char *s, size_t len, struct dp_sse_pos *pos);

/* Frees the position's storage and empties it. */
void dp_sse_fmt_pos_fini(struct dp_sse_pos *pos);

#endif
