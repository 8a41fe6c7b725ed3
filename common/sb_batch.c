/* NodeLink batch framing (see sb_batch.h). */
#include "sb_batch.h"

#define ITEMS_TAG 0x0a /* field 1, wire type 2 (length-delimited) */

size_t sb_batch_header_len(size_t len)
{
    size_t n = 2;
    for (uint64_t v = len; v >= 0x80; v >>= 7)
        n++;
    return n;
}

size_t sb_batch_header_put(uint8_t *dst, size_t len)
{
    size_t o = 0;
    dst[o++] = ITEMS_TAG;
    uint64_t v = len;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        dst[o++] = v ? (b | 0x80) : b;
    } while (v);
    return o;
}

size_t sb_batch_header_get(const uint8_t *p, size_t avail, uint64_t *len)
{
    if (avail < 2 || p[0] != ITEMS_TAG)
        return 0;
    uint64_t v = 0;
    for (size_t i = 1; i < avail && i < SB_BATCH_HEADER_MAX; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * (i - 1));
        if ((p[i] & 0x80) == 0) {
            *len = v;
            return i + 1;
        }
    }
    return 0;
}

size_t sb_batch_prefix_len(const uint8_t *p, size_t total, size_t max)
{
    size_t at = 0;
    while (at < total) {
        uint64_t body;
        size_t h = sb_batch_header_get(p + at, total - at, &body);
        if (h == 0 || body > total - at - h)
            return total;
        size_t next = at + h + (size_t)body;
        if (next > max && at > 0)
            break;
        at = next;
        if (at >= max)
            break;
    }
    return at;
}
