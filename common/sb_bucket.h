/* Token bucket: `rate` tokens per second refill a bucket of `burst` tokens; each take costs
 * one. Integer arithmetic in milli-tokens, no clock of its own (the caller passes a monotonic
 * time in ms). A zero-initialised bucket starts full on its first take. Pure. */
#ifndef SB_BUCKET_H
#define SB_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

struct sb_bucket {
    int64_t milli;   /* tokens * 1000 */
    int64_t last_ms; /* time of the last refill */
    bool primed;     /* false: never used (full on the first take) */
};

/* Takes one token at `now_ms`: true if there was one. `rate` <= 0 disables the limit (always
 * true, the bucket untouched); `burst` < 1 counts as 1. When refused, *retry_ms (if not NULL)
 * gets how long until the next token. */
bool sb_bucket_take(struct sb_bucket *b, int64_t rate, int64_t burst, int64_t now_ms,
                    int64_t *retry_ms);

#endif
