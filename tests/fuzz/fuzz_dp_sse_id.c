/* Fuzz target: SSE stream positions from Last-Event-ID (dp_sse_fmt_pos_parse). An accepted
 * position must encode and parse back to the same rooms and seqs. The input also goes through
 * the SSE event renderer as if it were a frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_sse_fmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dp_sse_pos p = {0}, q = {0};
    if (dp_sse_fmt_pos_parse((const char *)data, size, &p) == SB_OK) {
        char buf[DP_SSE_POS_MAX * (SB_IDENT_MAX + 24) + 1];
        size_t n = dp_sse_fmt_pos_encode(&p, buf, sizeof(buf));
        if (n == 0 || dp_sse_fmt_pos_parse(buf, n, &q) != SB_OK || q.n != p.n)
            abort();
        for (size_t i = 0; i < p.n; i++)
            if (dp_sse_fmt_pos_get(&q, p.v[i].room_id) != p.v[i].seq)
                abort();
    }
    dp_sse_fmt_pos_fini(&p);
    dp_sse_fmt_pos_fini(&q);
    char *ev;
    size_t evn;
    if (dp_sse_fmt_event((const char *)data, size, &ev, &evn) == SB_OK) {
        if (evn < 8 || memcmp(ev, "event: ", 7) != 0 || ev[evn - 1] != '\n')
            abort();
        free(ev);
    }
    return 0;
}
