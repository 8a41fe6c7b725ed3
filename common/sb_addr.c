/* Loopback checks for the refusal to start an unauthenticated port beyond this machine
 * (docs/security.md). Text only: no lookup, so a name other than localhost counts as remote. */
#include "sb_addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

bool sb_addr_is_loopback(const char *host)
{
    if (host == NULL || host[0] == '\0')
        return false;
    size_t n = strlen(host);
    if ((n == 9 || (n == 10 && host[9] == '.')) && strncasecmp(host, "localhost", 9) == 0)
        return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return false;
}

static bool has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

bool sb_addr_is_local(const char *hostport)
{
    if (hostport == NULL || hostport[0] == '\0')
        return false;
    const char *s = hostport;
    if (has_prefix(s, "unix:") || has_prefix(s, "unix-abstract:"))
        return true;
    if (has_prefix(s, "ipv4:"))
        s += 5;
    else if (has_prefix(s, "ipv6:"))
        s += 5;
    else if (has_prefix(s, "dns:///"))
        s += 7;
    else if (has_prefix(s, "dns:"))
        s += 4;
    char host[256];
    size_t len;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL)
            return false;
        s++;
        len = (size_t)(end - s);
    } else {
        const char *colon = strrchr(s, ':');
        /* Two colons and no brackets: a bare IPv6 address without a port. */
        if (colon != NULL && strchr(s, ':') != colon)
            colon = NULL;
        len = colon != NULL ? (size_t)(colon - s) : strlen(s);
    }
    if (len == 0 || len >= sizeof(host))
        return false;
    memcpy(host, s, len);
    host[len] = '\0';
    return sb_addr_is_loopback(host);
}
