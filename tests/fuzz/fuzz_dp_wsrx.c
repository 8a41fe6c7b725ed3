/* Fuzz target: WebSocket message reassembly (dp_wsrx_feed) driven the way libwebsockets drives
 * it. The input is a sequence of frame headers: 4 bytes of limits, then 11-byte records
 * (flags: bit 0 FIN, bit 1 binary, bit 2 control; 8 bytes big-endian declared payload length;
 * 2 bytes callback size), each frame's payload delivered in callbacks of that size, up to a
 * total budget. A model computed with 128-bit sums decides what every callback must answer:
 * close exactly when received plus announced bytes pass the hard limit, message_too_large
 * exactly when a message ends above the soft limit, otherwise the bytes fed, in order; the
 * buffer never grows past the soft limit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_wsrx.h"

#define BUDGET (1u << 16)

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint64_t soft = 1 + ((uint64_t)data[0] << 8 | data[1]) % 4096;
    uint64_t hard = soft + ((uint64_t)data[2] << 8 | data[3]) % 8192;
    data += 4;
    size -= 4;
    struct dp_wsrx rx = {0};
    static char payload[BUDGET];
    static char model[8192 + 4096];
    unsigned __int128 total = 0; /* the model's bytes of the current message */
    bool in_msg = false, binary = false, closed = false;
    size_t spent = 0;
    for (; size >= 11 && spent < BUDGET; data += 11, size -= 11) {
        bool fin = data[0] & 1, bin = data[0] & 2, control = data[0] & 4;
        uint64_t declared = be64(data + 1);
        size_t step = 1 + ((size_t)data[9] << 8 | data[10]);
        if (control)
            continue; /* lws answers pings and closes itself: no receive callback */
        if (!in_msg) {
            in_msg = true;
            binary = bin;
            total = 0;
        }
        uint64_t left = declared;
        do {
            size_t len = left < step ? (size_t)left : step;
            if (len > BUDGET - spent)
                goto out; /* the peer went away mid-frame */
            for (size_t i = 0; i < len; i++)
                payload[spent + i] = (char)(spent + i);
            const struct dp_wsrx_chunk c = {payload + spent, len, left - len, fin && left == len,
                                            bin};
            const char *m = NULL;
            size_t n = 0;
            enum dp_wsrx_verdict v = dp_wsrx_feed(&rx, soft, hard, &c, &m, &n);
            if (closed || total + len + (left - len) > hard) {
                if (v != DP_WSRX_CLOSE)
                    abort();
                closed = true;
                goto out;
            }
            if (v == DP_WSRX_CLOSE || v == DP_WSRX_ENOMEM)
                abort();
            if (total + len <= soft)
                memcpy(model + (size_t)total, payload + spent, len);
            total += len;
            spent += len;
            left -= len;
            if (rx.cap > soft)
                abort();
            if (!c.final) {
                if (v != DP_WSRX_MORE)
                    abort();
                continue;
            }
            in_msg = false;
            if (binary) {
                if (v != DP_WSRX_BINARY || n != (size_t)total)
                    abort();
            } else if (total > soft) {
                if (v != DP_WSRX_TOO_LARGE || n != (size_t)total)
                    abort();
            } else if (v != DP_WSRX_MESSAGE || n != (size_t)total || memcmp(m, model, n) != 0) {
                abort();
            }
            dp_wsrx_release(&rx);
        } while (left > 0);
    }
out:
    dp_wsrx_fini(&rx);
    return 0;
}
