/* Authorizer calls. The rule that matters: only an OK status with a parsed answer saying
 * `allow` allows; everything else (any status, a deadline, a cancelled call, an unparsable
 * answer, no channel) denies. Denials are cached like allows when the backend asks for it;
 * failures are never cached, so a backend that comes back is asked again at once. */
#include "cp_authorizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "cp_tag.h"
#include "cp_unary.h"
#include "sb_json.h"
#include "sb_log.h"
#include "sb_map.h"
#include "sb_pb.h"
#include "sb_time.h"
#include "switchboard/v1/authorizer.pb-c.h"

#define METHOD   "/switchboard.v1.Authorizer/Authorize"
#define INFO_MAX 4096 /* the same bound as a token's info claim */

struct answer {
    enum cp_authz_answer answer;
    char *info;   /* NULL: none */
    char *reason; /* never NULL */
    int64_t until_mono;
};

struct acall {
    struct cp_tag tag;
    struct authz *a;
    cp_authz_fn *cb;
    void *arg;
    char *key; /* cache key */
    struct cp_unary u;
    struct acall *prev, *next;
};

struct authz {
    grpc_channel *ch;
    void *cq;
    int64_t timeout_ms;
    struct sb_map cache; /* key -> struct answer */
    struct acall *calls;
    bool stopping;
};

static void answer_free(struct answer *an)
{
    if (an == NULL)
        return;
    free(an->info);
    free(an->reason);
    free(an);
}

static void cache_clear(struct authz *a)
{
    struct sb_map_iter it = {0};
    void *v;
    while (sb_map_next(&a->cache, &it, NULL, &v))
        answer_free(v);
    sb_map_fini(&a->cache);
}

/* "user \x1f action \x1f target": ids never hold control characters. */
static char *cache_key(const struct cp_authz_req *r)
{
    size_t n = strlen(r->user_id) + strlen(r->action) + strlen(r->target) + 3;
    char *k = malloc(n);
    if (k != NULL)
        snprintf(k, n, "%s\x1f%s\x1f%s", r->user_id, r->action, r->target);
    return k;
}

static void remember(struct authz *a, const char *key, const struct answer *an, int64_t ttl_ms)
{
    if (ttl_ms <= 0)
        return;
    if (ttl_ms > CP_AUTHORIZER_MAX_TTL_MS)
        ttl_ms = CP_AUTHORIZER_MAX_TTL_MS;
    if (sb_map_size(&a->cache) >= CP_AUTHORIZER_MAX_CACHED)
        cache_clear(a); /* bounded: a flood of distinct targets costs re-asking, not memory */
    struct answer *copy = calloc(1, sizeof(*copy));
    if (copy == NULL)
        return;
    copy->answer = an->answer;
    copy->info = an->info != NULL ? strdup(an->info) : NULL;
    copy->reason = strdup(an->reason);
    copy->until_mono = sb_time_mono_ms() + ttl_ms;
    if (copy->reason == NULL || (an->info != NULL && copy->info == NULL)) {
        answer_free(copy);
        return;
    }
    answer_free(sb_map_remove(&a->cache, key));
    if (sb_map_put(&a->cache, key, copy) != SB_OK)
        answer_free(copy);
}

static void acall_free(struct authz *a, struct acall *ac)
{
    if (ac->prev)
        ac->prev->next = ac->next;
    else if (a->calls == ac)
        a->calls = ac->next;
    if (ac->next)
        ac->next->prev = ac->prev;
    cp_unary_fini(&ac->u);
    free(ac->key);
    free(ac);
}

/* The backend's info must be a JSON object of bounded size to reach a roster. */
static char *valid_info(const ProtobufCBinaryData *b)
{
    if (b->len == 0 || b->len > INFO_MAX || !sb_json_is_valid((const char *)b->data, b->len))
        return NULL;
    size_t i = 0;
    while (i < b->len &&
           (b->data[i] == ' ' || b->data[i] == '\t' || b->data[i] == '\n' || b->data[i] == '\r'))
        i++;
    if (i == b->len || b->data[i] != '{')
        return NULL;
    char *s = malloc(b->len + 1);
    if (s != NULL) {
        memcpy(s, b->data, b->len);
        s[b->len] = '\0';
    }
    return s;
}

static void call_done(struct cp_tag *t, bool ok)
{
    struct acall *ac = CP_CONTAINER_OF(t, struct acall, tag);
    struct authz *a = ac->a;
    struct answer an = {.answer = CP_AUTHZ_UNAVAILABLE};
    char reason[200];
    int64_t ttl = 0;
    ProtobufCMessage *m = NULL;
    if (ok && ac->u.status == GRPC_STATUS_OK && ac->u.recv != NULL &&
        sb_pb_unpack(ac->u.recv, &switchboard__v1__authorize_response__descriptor, 1 << 16, &m) ==
            SB_OK) {
        Switchboard__V1__AuthorizeResponse *r = (void *)m;
        an.answer = r->allow ? CP_AUTHZ_ALLOW : CP_AUTHZ_DENY;
        an.info = r->allow ? valid_info(&r->info) : NULL;
        snprintf(reason, sizeof(reason), "%s",
                 r->reason != NULL && r->reason[0] != '\0' && sb_json_is_utf8(r->reason)
                     ? r->reason
                     : (r->allow ? "allowed by the authorizer" : "denied by the authorizer"));
        ttl = r->cache_ttl_ms;
    } else {
        snprintf(reason, sizeof(reason), "the authorizer did not answer (status %d)",
                 ok ? (int)ac->u.status : -1);
        SB_LOG_WARN("cp", "authorizer call failed: denied", "status=%d",
                    ok ? (int)ac->u.status : -1);
    }
    an.reason = reason;
    if (an.answer != CP_AUTHZ_UNAVAILABLE && !a->stopping)
        remember(a, ac->key, &an, ttl);
    ac->cb(ac->arg, an.answer, an.info, an.reason);
    free(an.info);
    if (m != NULL)
        protobuf_c_message_free_unpacked(m, NULL);
    acall_free(a, ac);
}

static void deny_now(cp_authz_fn *cb, void *arg, const char *why)
{
    cb(arg, CP_AUTHZ_UNAVAILABLE, NULL, why);
}

static void authorize(struct cp_ctx *c, const struct cp_authz_req *r, cp_authz_fn *cb, void *arg)
{
    struct authz *a = c->authorizer;
    if (a == NULL || a->stopping) {
        deny_now(cb, arg, "the authorizer is not available");
        return;
    }
    char *key = cache_key(r);
    if (key == NULL) {
        deny_now(cb, arg, "out of memory");
        return;
    }
    struct answer *hit = sb_map_get(&a->cache, key);
    if (hit != NULL && hit->until_mono > sb_time_mono_ms()) {
        free(key);
        cb(arg, hit->answer, hit->info, hit->reason);
        return;
    }
    if (hit != NULL)
        answer_free(sb_map_remove(&a->cache, key));
    struct acall *ac = calloc(1, sizeof(*ac));
    if (ac == NULL) {
        free(key);
        deny_now(cb, arg, "out of memory");
        return;
    }
    ac->a = a;
    ac->cb = cb;
    ac->arg = arg;
    ac->key = key;
    ac->tag.fn = call_done;
    cp_unary_init(&ac->u);
    Switchboard__V1__AuthorizeRequest req = SWITCHBOARD__V1__AUTHORIZE_REQUEST__INIT;
    req.user_id = (char *)r->user_id;
    req.connection_id = (char *)(r->connection_id != NULL ? r->connection_id : "");
    req.action = (char *)r->action;
    req.target = (char *)r->target;
    if (r->info != NULL) {
        req.info.data = (uint8_t *)r->info;
        req.info.len = strlen(r->info);
    }
    if (cp_unary_start(&ac->u, a->ch, a->cq, METHOD, a->timeout_ms, sb_pb_pack(&req.base), NULL, 0,
                       &ac->tag) != SB_OK) {
        acall_free(a, ac);
        deny_now(cb, arg, "cannot call the authorizer");
        return;
    }
    ac->next = a->calls;
    if (a->calls)
        a->calls->prev = ac;
    a->calls = ac;
}

enum sb_err cp_authorizer_start(struct cp_ctx *c, const char *address, int64_t timeout_ms)
{
    struct authz *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return SB_ENOMEM;
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = 1 << 16}},
        {GRPC_ARG_INTEGER, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, {.integer = 100}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, {.integer = 1000}},
    };
    grpc_channel_args ca = {sizeof(args) / sizeof(args[0]), args};
    a->ch = grpc_channel_create(address, creds, &ca);
    grpc_channel_credentials_release(creds);
    if (a->ch == NULL) {
        free(a);
        return SB_ENOMEM;
    }
    a->cq = c->cq;
    a->timeout_ms = timeout_ms;
    sb_map_init(&a->cache);
    c->authorizer = a;
    c->authorize = authorize;
    SB_LOG_INFO("cp", "authorizer configured", "address=%s timeout_ms=%lld", address,
                (long long)timeout_ms);
    return SB_OK;
}

void cp_authorizer_stop(struct cp_ctx *c)
{
    struct authz *a = c->authorizer;
    if (a == NULL)
        return;
    a->stopping = true;
    for (struct acall *ac = a->calls; ac != NULL; ac = ac->next)
        grpc_call_cancel(ac->u.call, NULL);
}

void cp_authorizer_fini(struct cp_ctx *c)
{
    struct authz *a = c->authorizer;
    if (a == NULL)
        return;
    cache_clear(a);
    grpc_channel_destroy(a->ch);
    free(a);
    c->authorizer = NULL;
    c->authorize = NULL;
}
