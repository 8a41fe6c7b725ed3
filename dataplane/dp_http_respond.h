/* The one way the data plane answers a plain HTTP request: a complete small response written
 * from inside an HTTP callback (health, metrics, errors, SSE POST answers). lws thread only. */
#ifndef DP_HTTP_RESPOND_H
#define DP_HTTP_RESPOND_H

#include <stddef.h>

struct lws;

/* Writes status, content type, `cache-control: no-store` and `body` (len bytes, borrowed;
 * copied into the shared scratch buffer) and completes the transaction. Returns what the
 * callback must return: 0, or -1 to close the connection. Never blocks. */
int dp_http_respond(struct lws *wsi, unsigned int status, const char *content_type,
                    const char *body, size_t len);

/* dp_http_respond with the protocol's error frame as a JSON body:
 * {"type":"error","code":..,"message":..}. */
int dp_http_respond_error(struct lws *wsi, unsigned int status, const char *code,
                          const char *message);

/* The same response from LWS_CALLBACK_HTTP_CONFIRM_UPGRADE, which must return 1 after it: lws
 * completes that transaction itself. */
int dp_http_respond_refusal(struct lws *wsi, unsigned int status, const char *code,
                            const char *message);

#endif
