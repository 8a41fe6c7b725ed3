/* A whole small HTTP response in one go: headers into a stack buffer, the body through the
 * shared scratch buffer (lws_write needs LWS_PRE bytes of headroom before it). */
#include "dp_http_respond.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "dp_ctx.h"
#include "dp_frame.h"

static int write_response(struct lws *wsi, unsigned int status, const char *content_type,
                          const char *body, size_t len)
{
    unsigned char hdr[LWS_PRE + 2048];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;
    if (lws_add_http_common_headers(wsi, status, content_type, (lws_filepos_t)len, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    if (len > 0) {
        unsigned char *b = dp_ctx_scratch(dp_ctx_of(wsi), len);
        if (b == NULL)
            return -1;
        memcpy(b, body, len);
        if (lws_write(wsi, b, len, LWS_WRITE_HTTP_FINAL) < 0)
            return -1;
    }
    return 0;
}

int dp_http_respond(struct lws *wsi, unsigned int status, const char *content_type,
                    const char *body, size_t len)
{
    if (write_response(wsi, status, content_type, body, len) != 0)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int respond_error(struct lws *wsi, unsigned int status, const char *code,
                         const char *message, bool complete)
{
    char *t;
    size_t n;
    if (dp_frame_format_error(NULL, code, message, &t, &n) != SB_OK)
        return -1;
    int r = complete ? dp_http_respond(wsi, status, "application/json", t, n)
                     : write_response(wsi, status, "application/json", t, n);
    free(t);
    return r;
}

int dp_http_respond_error(struct lws *wsi, unsigned int status, const char *code,
                          const char *message)
{
    return respond_error(wsi, status, code, message, true);
}

int dp_http_respond_refusal(struct lws *wsi, unsigned int status, const char *code,
                            const char *message)
{
    return respond_error(wsi, status, code, message, false);
}
