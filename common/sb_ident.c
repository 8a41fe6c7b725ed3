/* Identifier rules: a conservative alphabet that is safe in URLs, etcd keys, logs and
 * SSE ids without escaping. */
#include "sb_ident.h"

#include <string.h>

static bool ident_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '@' || c == '-';
}

bool sb_ident_is_valid(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return false;
    size_t i = 0;
    for (; s[i] != '\0'; i++) {
        if (i >= SB_IDENT_MAX || !ident_char((unsigned char)s[i]))
            return false;
    }
    return true;
}

bool sb_ident_is_valid_channel(const char *s)
{
    if (s == NULL || s[0] == '\0' || s[0] == '#')
        return false;
    bool users = false; /* past the '#' */
    size_t part = 0;    /* bytes of the current base or user id */
    size_t i = 0;
    for (; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= SB_IDENT_MAX)
            return false;
        if (ident_char(c)) {
            part++;
        } else if (c == '#' && !users) {
            users = true;
            part = 0;
        } else if (c == ',' && users && part > 0) {
            part = 0;
        } else {
            return false;
        }
    }
    return part > 0;
}

const char *sb_ident_channel_users(const char *s)
{
    const char *h = s != NULL ? strchr(s, '#') : NULL;
    return h != NULL ? h + 1 : NULL;
}
