/* Random ids from the kernel's CSPRNG, so they cannot be guessed (connection ids are
 * capabilities for SSE POSTs) and never repeat across processes or restarts. */
#include "sb_id.h"

#include <stdint.h>
#include <string.h>
#include <sys/random.h>

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

void sb_id_new(const char *prefix, char out[SB_ID_LEN])
{
    uint8_t rnd[22];
    size_t got = 0;
    while (got < sizeof(rnd)) {
        ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    size_t plen = strnlen(prefix, 8);
    memcpy(out, prefix, plen);
    out[plen] = '-';
    for (size_t i = 0; i < sizeof(rnd); i++)
        out[plen + 1 + i] = alphabet[rnd[i] & 63];
    out[plen + 1 + sizeof(rnd)] = '\0';
}
