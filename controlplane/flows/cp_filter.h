/* Subscription filters on message metadata (docs/channels.md):
 *   priority == high
 *   region != eu
 *   priority in [high, medium]
 *   region not in [eu, "us west"]
 *   priority in [high, medium] and region != eu
 * Conditions are joined by `and`. A value is a bare word of [A-Za-z0-9._:@+/-] or a quoted
 * string ("..." or '...', no escapes). Keys are bare words. Keywords are lowercase. A key the
 * message does not carry fails `==` and `in` and passes `!=` and `not in`. Comparisons are
 * exact, byte for byte. Pure; any thread. */
#ifndef CP_FILTER_H
#define CP_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "cp_store.h"
#include "sb_err.h"

/* Limits: longer or bigger filters are refused by cp_filter_parse. */
#define CP_FILTER_MAX        256 /* bytes of filter text */
#define CP_FILTER_MAX_CONDS  16
#define CP_FILTER_MAX_VALUES 32 /* per `in` list */

struct cp_filter;

/* Parses `text` (len bytes, need not be NUL-terminated). Blank text is "no filter": SB_OK with
 * *out = NULL (which cp_filter_match treats as matching everything). On a syntax error
 * returns SB_EINVAL and writes a sentence into err (errlen bytes; may be NULL); SB_ENOMEM.
 * *out is new: free with cp_filter_free. */
enum sb_err cp_filter_parse(const char *text, size_t len, struct cp_filter **out, char *err,
                            size_t errlen);

/* True when the metadata (n entries, borrowed) satisfies every condition; NULL f: true. */
bool cp_filter_match(const struct cp_filter *f, const struct cp_kv *meta, size_t n);

/* NULL is fine. */
void cp_filter_free(struct cp_filter *f);

#endif
