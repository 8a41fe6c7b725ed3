/* Fuzz target: client frames (dp_frame_parse) and the raw `data` span it extracts. Checks that
 * an accepted frame's data span lies inside the input and is itself valid JSON, and that the
 * answer builders accept whatever ref was echoed. */
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "dp_frame.h"
#include "dp_sse_fmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct dp_frame f;
    struct dp_frame_error err;
    char *out;
    size_t n;
    if (dp_frame_parse(text, size, &f, &err) != SB_OK) {
        if (dp_frame_format_error(err.has_ref ? err.ref : NULL, err.code, err.message, &out, &n) ==
            SB_OK)
            free(out);
        return 0;
    }
    if (f.data != NULL) {
        if (f.data < text || f.data + f.data_len > text + size || f.data_len == 0)
            abort();
        json_t *v = json_loadb(f.data, f.data_len, JSON_DECODE_ANY, NULL);
        if (v == NULL)
            abort();
        json_decref(v);
    }
    if (dp_frame_format_ack(f.ref, f.room_id, NULL, false, 0, &out, &n) == SB_OK) {
        char *ev;
        size_t evn;
        if (dp_sse_fmt_event(out, n, &ev, &evn) == SB_OK)
            free(ev);
        free(out);
    }
    dp_frame_fini(&f);
    return 0;
}
