/* Network addresses as the options give them ("HOST:PORT", "[v6]:PORT", gRPC's "ipv4:" and
 * "unix:" forms): is a host only reachable from this machine? Pure, any thread. */
#ifndef SB_ADDR_H
#define SB_ADDR_H

#include <stdbool.h>

/* True when `host` (no port) names the loopback interface: 127.0.0.0/8, ::1, an IPv4-mapped
 * ::ffff:127.x.y.z, or "localhost" (any case, a trailing dot allowed). Everything else is
 * beyond loopback: 0.0.0.0, ::, an empty host, any other address or name. NULL: false. */
bool sb_addr_is_loopback(const char *host);

/* True when the address `hostport` ("127.0.0.1:50051", "[::1]:8080", "localhost:1",
 * "ipv4:127.0.0.1:1", "ipv6:[::1]:1", "dns:localhost:1", "unix:/path", "unix-abstract:x") can
 * only be reached from this machine: a loopback host, or a Unix socket. A host without a port
 * is read as a host. NULL or "": false (gRPC would listen on every interface). */
bool sb_addr_is_local(const char *hostport);

#endif
