/* Arrays of heap strings with a separate count (the shape protobuf-c gives repeated strings):
 * a deep copy and its release. Pure; any thread. */
#ifndef SB_STRV_H
#define SB_STRV_H

#include <stddef.h>

#include "sb_err.h"

/* *out = a copy of the n strings of `in` (NULL when n is 0). SB_ENOMEM leaves *out NULL. */
enum sb_err sb_strv_dup(char *const *in, size_t n, char ***out);

/* Frees the n strings and the array (NULL-safe). */
void sb_strv_free(char **v, size_t n);

#endif
