/* Plain HTTP: liveness, readiness, Prometheus metrics and the demo page's static files. File
 * names are matched against a strict alphabet (no '/', no leading '.'), so nothing outside
 * web_root can be named. */
#include "dp_http.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dp_config.h"
#include "dp_ctx.h"
#include "dp_http_respond.h"
#include "dp_hub.h"
#include "dp_link.h"
#include "dp_metrics.h"

static const char *mime_of(const char *name)
{
    static const struct {
        const char *ext, *mime;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].mime;
    return NULL;
}

static bool safe_name(const char *name)
{
    if (name[0] == '\0' || name[0] == '.' || strlen(name) > 64)
        return false;
    for (const char *c = name; *c != '\0'; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-'))
            return false;
    }
    return true;
}

static int not_found(struct lws *wsi)
{
    static const char body[] = "not found\n";
    return dp_http_respond(wsi, HTTP_STATUS_NOT_FOUND, "text/plain; charset=utf-8", body,
                           sizeof(body) - 1);
}

static int serve_file(struct lws *wsi, const char *path)
{
    struct dp_ctx *ctx = dp_ctx_of(wsi);
    const char *name = strcmp(path, "/") == 0 ? "index.html" : path + 1;
    const char *mime = safe_name(name) ? mime_of(name) : NULL;
    if (mime == NULL)
        return not_found(wsi);
    char file[1024];
    int n = snprintf(file, sizeof(file), "%s/%s", ctx->cfg->web_root, name);
    struct stat st;
    if (n < 0 || (size_t)n >= sizeof(file) || stat(file, &st) != 0 || !S_ISREG(st.st_mode))
        return not_found(wsi);
    int r = lws_serve_http_file(wsi, file, mime, NULL, 0);
    if (r < 0 || (r > 0 && lws_http_transaction_completed(wsi)))
        return -1;
    return 0;
}

int dp_http_callback(struct lws *wsi, enum lws_callback_reasons reason, struct dp_pss *pss,
                     void *in, size_t len, bool *handled)
{
    struct dp_ctx *ctx = dp_ctx_of(wsi);
    (void)pss;
    (void)len;
    *handled = true;
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        const char *path = in;
        if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0 &&
            lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) <= 0) {
            static const char body[] = "method not allowed\n";
            return dp_http_respond(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8",
                                   body, sizeof(body) - 1);
        }
        if (strcmp(path, "/healthz") == 0)
            return dp_http_respond(wsi, HTTP_STATUS_OK, "text/plain; charset=utf-8", "ok\n", 3);
        if (strcmp(path, "/readyz") == 0) {
            if (dp_hub_ready(ctx->hub))
                return dp_http_respond(wsi, HTTP_STATUS_OK, "text/plain; charset=utf-8", "ready\n",
                                       6);
            return dp_http_respond(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                   "text/plain; charset=utf-8", "control plane not linked\n", 25);
        }
        if (strcmp(path, "/metrics") == 0) {
            char body[8192];
            dp_metrics.link_up = dp_hub_ready(ctx->hub);
            if (ctx->link != NULL) {
                dp_metrics.link_streams_up = dp_link_streams_up(ctx->link);
                dp_metrics.link_reconnects_total = dp_link_reconnects(ctx->link);
                dp_metrics.link_failovers_total = dp_link_failovers(ctx->link);
            }
            size_t n = dp_metrics_format(&dp_metrics, body, sizeof(body));
            return dp_http_respond(wsi, HTTP_STATUS_OK, "text/plain; version=0.0.4", body, n);
        }
        if (strcmp(path, "/ws") == 0) {
            static const char body[] = "WebSocket upgrade required\n";
            return dp_http_respond(wsi, 426, "text/plain; charset=utf-8", body, sizeof(body) - 1);
        }
        return serve_file(wsi, path);
    }
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    default:
        *handled = false;
        return 0;
    }
}
