/* The callbacks' shared context: found from any wsi through the lws context's user pointer, and
 * the one scratch buffer every batched or small write is assembled in. */
#include "dp_ctx.h"

#include "dp_pss.h"

#include <stdlib.h>

#include <libwebsockets.h>

struct dp_ctx *dp_ctx_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

unsigned char *dp_ctx_scratch(struct dp_ctx *c, size_t n)
{
    if (LWS_PRE + n > c->scratch_cap || (c->scratch_cap > (1u << 20) && n < 65536)) {
        size_t cap = LWS_PRE + (n > 65536 ? n : 65536);
        unsigned char *b = realloc(c->scratch, cap);
        if (b == NULL)
            return NULL;
        c->scratch = b;
        c->scratch_cap = cap;
    }
    return c->scratch + LWS_PRE;
}

void dp_ctx_fini(struct dp_ctx *c)
{
    dp_pss_ident_destroy(c->upgrading);
    c->upgrading = NULL;
    free(c->scratch);
    c->scratch = NULL;
    c->scratch_cap = 0;
}
