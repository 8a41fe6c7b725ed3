/* Fuzz target: the ext text of a stored message (cp_msgext.h), which comes back from the Store
 * and could be anything after a bad write. Parsing never fails on content; what is rendered into
 * client JSON must keep the message frame valid JSON; every write gives back text that parses
 * and holds the change. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_msgext.h"

static void check_frame(const char *ext)
{
    struct cp_buf b;
    cp_buf_init(&b);
    cp_buf_puts(&b, "{\"type\":\"message\"");
    cp_msgext_render(&b, ext);
    cp_buf_putc(&b, '}');
    if (b.failed)
        abort();
    json_t *v = json_loadb(b.data, b.len, 0, NULL); /* data may repeat keys */
    if (v == NULL)
        abort();
    json_decref(v);
    cp_buf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *ext = malloc(size + 1);
    if (ext == NULL)
        return 0;
    memcpy(ext, data, size);
    ext[size] = '\0';
    struct cp_msgext x;
    if (cp_msgext_parse(ext, &x) != SB_OK)
        abort();
    cp_msgext_free(&x);
    check_frame(ext);

    char *out = NULL;
    bool changed = false;
    if (cp_msgext_react(ext, "+1", "fuzz", true, &out, &changed) == SB_OK && changed) {
        if (cp_msgext_parse(out, &x) != SB_OK)
            abort();
        bool found = false;
        for (size_t i = 0; i < x.n_reactions; i++)
            for (size_t k = 0; k < x.reactions[i].n_users; k++)
                found |= strcmp(x.reactions[i].emoji, "+1") == 0 &&
                         strcmp(x.reactions[i].user_ids[k], "fuzz") == 0;
        if (!found)
            abort();
        cp_msgext_free(&x);
        check_frame(out);
    }
    free(out);
    out = NULL;
    if (cp_msgext_add_edit(ext, "fuzz", "{\"a\":1}", 7, 42, &out) == SB_OK) {
        if (out == NULL || cp_msgext_parse(out, &x) != SB_OK || x.n_edits == 0 ||
            x.edits[x.n_edits - 1].edited_at != 42)
            abort();
        cp_msgext_free(&x);
        check_frame(out);
    }
    free(out);
    free(ext);
    return 0;
}
