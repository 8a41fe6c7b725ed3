/* Random ids from the kernel's CSPRNG, so they cannot be guessed (connection ids are
 * capabilities for SSE POSTs) and never repeat across processes or restarts. */
#include "sb_id.h"

#include <stdint.h>
#include <string.h>
#include <sys/random.h>

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

/* Random bytes are fetched in blocks (one getrandom call per ~45 ids instead of one per id:
 * the control plane makes an id per message); each thread has its own block. */
#define POOL_BYTES 1024

static void random_bytes(uint8_t *out, size_t n)
{
    static _Thread_local uint8_t pool[POOL_BYTES];
    static _Thread_local size_t left;
    if (left < n) {
        size_t got = 0;
        while (got < sizeof(pool)) {
            ssize_t r = getrandom(pool + got, sizeof(pool) - got, 0);
            if (r > 0)
                got += (size_t)r;
        }
        left = sizeof(pool);
    }
    memcpy(out, pool + sizeof(pool) - left, n);
    memset(pool + sizeof(pool) - left, 0, n); /* used bytes do not stay behind */
    left -= n;
}

void sb_id_new(const char *prefix, char out[SB_ID_LEN])
{
    uint8_t rnd[22];
    random_bytes(rnd, sizeof(rnd));
    size_t plen = strnlen(prefix, 8);
    memcpy(out, prefix, plen);
    out[plen] = '-';
    for (size_t i = 0; i < sizeof(rnd); i++)
        out[plen + 1 + i] = alphabet[rnd[i] & 63];
    out[plen + 1 + sizeof(rnd)] = '\0';
}
