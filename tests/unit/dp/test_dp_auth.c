/* Client identity at the edge: the start-up refusals, development mode, tokens through a real
 * key set loaded from a file (dp_keys), the `refresh` rule (same user), the JWK Set URL rule, and
 * a live session's token: token_expiring once, the 4001 close after exp + leeway. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dp_auth.h"
#include "dp_config.h"
#include "dp_frame.h"
#include "dp_keys.h"
#include "dp_session.h"
#include "dp_token.h"
#include "sb_jwt.h"
#include "sb_time.h"

static const char SECRET[] = "0123456789abcdef0123456789abcdef-unit";

static struct dp_config base(void)
{
    struct dp_config c;
    memset(&c, 0, sizeof(c));
    c.listen = "127.0.0.1:8080";
    strcpy(c.host, "127.0.0.1");
    c.jwks_refresh = 300000;
    c.jwt_leeway = 5000;
    return c;
}

static void test_config_refusals(void **state)
{
    (void)state;
    char why[512];
    struct dp_config c = base();
    assert_false(dp_auth_config_ok(&c, why, sizeof(why))); /* no way in */
    assert_non_null(strstr(why, "--jwt-hmac-secret-file"));
    c.dev_mode = 1;
    assert_true(dp_auth_config_ok(&c, why, sizeof(why))); /* dev mode on loopback */
    strcpy(c.host, "0.0.0.0");
    c.listen = "0.0.0.0:8080";
    assert_false(dp_auth_config_ok(&c, why, sizeof(why)));
    assert_non_null(strstr(why, "--allow-insecure"));
    c.allow_insecure = 1;
    assert_true(dp_auth_config_ok(&c, why, sizeof(why)));
    c = base();
    strcpy(c.host, "0.0.0.0");
    c.jwks_url = "http://auth.example.com/jwks.json"; /* plain http beyond loopback */
    assert_false(dp_auth_config_ok(&c, why, sizeof(why)));
    c.jwks_url = "https://auth.example.com/jwks.json";
    assert_true(dp_auth_config_ok(&c, why, sizeof(why))); /* tokens: safe beyond loopback */
}

static void test_url_rule(void **state)
{
    (void)state;
    assert_true(dp_keys_url_is_allowed("https://auth.example.com/.well-known/jwks.json"));
    assert_true(dp_keys_url_is_allowed("http://127.0.0.1:9000/jwks"));
    assert_true(dp_keys_url_is_allowed("http://localhost/jwks"));
    assert_true(dp_keys_url_is_allowed("http://[::1]:80/jwks"));
    assert_false(dp_keys_url_is_allowed("http://auth.example.com/jwks"));
    assert_false(dp_keys_url_is_allowed("http://127.0.0.1@evil.example.com/jwks"));
    assert_false(dp_keys_url_is_allowed("http://127.0.0.1.evil.example.com/jwks"));
    assert_false(dp_keys_url_is_allowed("file:///etc/jwks.json"));
    assert_false(dp_keys_url_is_allowed("https://"));
    assert_false(dp_keys_url_is_allowed(NULL));
}

static void test_dev_mode(void **state)
{
    (void)state;
    struct dp_config c = base();
    struct dp_auth a;
    char user[SB_IDENT_MAX + 1], why[160];
    struct sb_jwt_claims *cl = (void *)1;
    dp_auth_init(&a, &c, NULL);
    assert_false(dp_auth_check(&a, NULL, "alice", user, &cl, why, sizeof(why)));
    assert_null(cl);
    assert_non_null(strstr(why, "development mode"));
    assert_false(dp_auth_check(&a, NULL, NULL, user, &cl, why, sizeof(why)));
    assert_non_null(strstr(why, "missing token"));
    c.dev_mode = 1;
    dp_auth_init(&a, &c, NULL);
    assert_true(dp_auth_check(&a, NULL, "alice", user, &cl, why, sizeof(why)));
    assert_string_equal(user, "alice");
    assert_null(cl);
    assert_false(dp_auth_check(&a, NULL, "bad user", user, &cl, why, sizeof(why)));
    assert_false(dp_auth_check(&a, "a.b.c", NULL, user, &cl, why, sizeof(why)));
    assert_non_null(strstr(why, "without token keys")); /* dev mode without keys: no tokens */
}

static char *mint(const char *sub, int64_t exp_s)
{
    char payload[256], *t = NULL;
    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"exp\":%lld,\"info\":{\"n\":\"A\"}}", sub,
             (long long)exp_s);
    assert_int_equal(
        sb_jwt_sign_hmac("HS256", (const unsigned char *)SECRET, strlen(SECRET), NULL, payload, &t),
        SB_OK);
    return t;
}

static void test_tokens_and_refresh(void **state)
{
    (void)state;
    char path[] = "/tmp/sb-dp-auth-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, SECRET, strlen(SECRET)), (ssize_t)strlen(SECRET));
    assert_int_equal(write(fd, "\n", 1), 1); /* an editor's newline is not part of it */
    close(fd);
    struct dp_config c = base();
    c.jwt_hmac_secret_file = path;
    struct dp_keys *keys = NULL;
    char why[160];
    assert_int_equal(dp_keys_create(&c, &keys, why, sizeof(why)), SB_OK);
    assert_non_null(keys);
    struct dp_auth a;
    dp_auth_init(&a, &c, keys);
    int64_t now_s = sb_time_now_ms() / 1000;
    char user[SB_IDENT_MAX + 1];
    struct sb_jwt_claims *cl = NULL;
    char *t = mint("alice", now_s + 600);
    /* a token wins over ?user_id= (not in dev mode: ignored) */
    assert_true(dp_auth_check(&a, t, "mallory", user, &cl, why, sizeof(why)));
    assert_string_equal(user, "alice");
    assert_string_equal(cl->info, "{\"n\":\"A\"}");
    dp_auth_claims_free(cl);
    /* refresh: the same user only */
    char *other = mint("bob", now_s + 600);
    assert_false(dp_auth_refresh(&a, other, "alice", &cl, why, sizeof(why)));
    assert_non_null(strstr(why, "another user"));
    assert_true(dp_auth_refresh(&a, t, "alice", &cl, why, sizeof(why)));
    dp_auth_claims_free(cl);
    char *old = mint("alice", now_s - 60);
    assert_false(dp_auth_check(&a, old, NULL, user, &cl, why, sizeof(why)));
    assert_string_equal(why, sb_jwt_result_name(SB_JWT_EXPIRED));
    assert_null(strstr(why, "eyJ")); /* never the token */
    /* the cache: a token seen again is not verified again */
    uint64_t misses = a.cache_misses;
    assert_true(dp_auth_check(&a, t, NULL, user, &cl, why, sizeof(why)));
    dp_auth_claims_free(cl);
    assert_true(dp_auth_check(&a, t, NULL, user, &cl, why, sizeof(why)));
    assert_string_equal(cl->info, "{\"n\":\"A\"}");
    dp_auth_claims_free(cl);
    assert_int_equal(a.cache_misses, misses);
    assert_true(a.cache_hits >= 2);
    /* ... until the keys change: a token of the old secret is then refused, not served from the
     * cache (rewrite the file; the refresh thread swaps the set within about a second) */
    uint64_t gen = dp_keys_generation(keys);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("another-secret-of-at-least-32-bytes-long", f);
    fclose(f);
    for (int i = 0; i < 60 && dp_keys_generation(keys) == gen; i++)
        usleep(50000);
    assert_true(dp_keys_generation(keys) > gen);
    assert_false(dp_auth_check(&a, t, NULL, user, &cl, why, sizeof(why)));
    assert_string_equal(why, sb_jwt_result_name(SB_JWT_BAD_SIGNATURE));
    free(t);
    free(other);
    free(old);
    dp_auth_fini(&a);
    dp_keys_destroy(keys);
    unlink(path);
    /* a secret file that does not load stops the start */
    c.jwt_hmac_secret_file = "/nonexistent/secret";
    assert_int_not_equal(dp_keys_create(&c, &keys, why, sizeof(why)), SB_OK);
    assert_non_null(strstr(why, "/nonexistent/secret"));
}

static void noop(struct dp_session *s)
{
    (void)s;
}

static const struct dp_session_ops ops = {noop, noop};

static const char *frame_at(struct dp_session *s, size_t i)
{
    struct dp_buf *b = dp_session_peek(s, i);
    return b != NULL ? b->json : "";
}

static void test_live_expiry(void **state)
{
    (void)state;
    struct dp_session *s =
        dp_session_create(DP_TRANSPORT_WS, "alice", &ops, 64, 1 << 20, DP_OVERFLOW_DISCONNECT);
    s->state = DP_SESSION_OPEN;
    s->auth = calloc(1, sizeof(*s->auth));
    int64_t exp = 1796008767000LL;
    s->auth->exp_ms = exp;
    dp_token_check(s, exp - 120000, 5000); /* two minutes left: nothing */
    assert_int_equal(dp_session_queued(s), 0);
    dp_token_check(s, exp - 59000, 5000); /* under a minute: the notice, once */
    dp_token_check(s, exp - 30000, 5000);
    assert_int_equal(dp_session_queued(s), 1);
    assert_string_equal(
        frame_at(s, 0),
        "{\"type\":\"token_expiring\",\"expires_at\":\"2026-11-30T03:19:27.000Z\"}");
    dp_token_check(s, exp + 5000, 5000); /* within the leeway: still open */
    assert_false(s->close_pending);
    dp_token_check(s, exp + 5001, 5000);
    assert_true(s->close_pending);
    assert_int_equal(s->close_code, 4001);
    assert_string_equal(s->close_reason, "token_expired");
    assert_non_null(strstr(frame_at(s, 1), "\"code\":\"unauthorized\""));
    dp_session_destroy(s);
}

static void test_refresh_frame(void **state)
{
    (void)state;
    struct dp_frame f;
    struct dp_frame_error err;
    const char *ok = "{\"type\":\"refresh\",\"ref\":\"r1\",\"token\":\"a.b.c\"}";
    assert_int_equal(dp_frame_parse(ok, strlen(ok), &f, &err), SB_OK);
    assert_int_equal(f.type, DP_FRAME_REFRESH);
    assert_string_equal(f.token, "a.b.c");
    dp_frame_fini(&f);
    const char *missing = "{\"type\":\"refresh\",\"ref\":\"r2\"}";
    assert_int_equal(dp_frame_parse(missing, strlen(missing), &f, &err), SB_EINVAL);
    assert_string_equal(err.code, "invalid_message");
    assert_string_equal(err.ref, "r2");
    const char *num = "{\"type\":\"refresh\",\"token\":7}";
    assert_int_equal(dp_frame_parse(num, strlen(num), &f, &err), SB_EINVAL);
    char *t;
    size_t n;
    assert_int_equal(dp_frame_format_refreshed("r1", 1796008767000LL, &t, &n), SB_OK);
    assert_string_equal(
        t, "{\"type\":\"ack\",\"ref\":\"r1\",\"expires_at\":\"2026-11-30T03:19:27.000Z\"}");
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_refusals), cmocka_unit_test(test_url_rule),
        cmocka_unit_test(test_dev_mode),        cmocka_unit_test(test_tokens_and_refresh),
        cmocka_unit_test(test_live_expiry),     cmocka_unit_test(test_refresh_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
