/* Unique ids for connections ("c-"), sessions ("s-"), messages ("m-"), rooms ("r-") and nodes. */
#ifndef SB_ID_H
#define SB_ID_H

#include <stddef.h>

/* Longest id sb_id_new writes, including the NUL. */
#define SB_ID_LEN 40

/* Writes `prefix` followed by "-" and 22 random url-safe characters (132 bits from getrandom)
 * into `out` (SB_ID_LEN bytes). `prefix` must be at most 8 characters. Any thread. */
void sb_id_new(const char *prefix, char out[SB_ID_LEN]);

#endif
