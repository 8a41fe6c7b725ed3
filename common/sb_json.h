/* JSON validity of bytes that arrive from outside (gRPC `data`, client `data` values): one
 * value, exactly as jansson would accept it, checked by a scanner that builds nothing and asks
 * jansson only where the grammar alone cannot decide. Pure; any thread. */
#ifndef SB_JSON_H
#define SB_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* True if `data` (len bytes) is exactly one valid JSON value (any type, whitespace around it
 * allowed), in UTF-8. */
bool sb_json_is_valid(const char *data, size_t len);

/* The same answer from a full jansson parse (the reference the fast scanner of
 * sb_json_is_valid is tested against). */
bool sb_json_is_valid_jansson(const char *data, size_t len);

/* True if `s` is valid UTF-8 (strings that end up in frames must be). */
bool sb_json_is_utf8(const char *s);

#endif
