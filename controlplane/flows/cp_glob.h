/* Channel id patterns for ListChannels: `*` matches any run of characters inside one
 * dot-separated segment (never a '.'), `**` any run including dots; every other character
 * matches itself. Pure; any thread. */
#ifndef CP_GLOB_H
#define CP_GLOB_H

#include <stdbool.h>

/* Longest pattern accepted, in bytes. */
#define CP_GLOB_MAX 256

/* True when `pattern` is a usable pattern: at most CP_GLOB_MAX bytes of channel id characters
 * ([A-Za-z0-9._:@-]) and '*'. The empty pattern is valid (it matches everything). */
bool cp_glob_is_valid(const char *pattern);

/* True when `pattern` (valid) matches all of `text`. The empty pattern and "**" match any
 * text. Runs in O(len(pattern) * len(text)), never backtracks exponentially. */
bool cp_glob_match(const char *pattern, const char *text);

#endif
