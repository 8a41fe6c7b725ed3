/* Unit tests of cp_auth: the authorization metadata of a call against a key set, and the
 * metadata an outgoing call carries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <grpc/grpc.h>

#include "cp_auth.h"

#define KEY  "0123456789abcdef0123456789abcdef"
#define KEY2 "another-key-of-thirty-two-bytes!"

static struct sb_secret *keys(void)
{
    struct sb_secret *s = NULL;
    const char *text = KEY "\n" KEY2 "\n";
    assert_int_equal(sb_secret_parse(text, strlen(text), 16, &s, NULL, 0), SB_OK);
    return s;
}

/* One metadata array of `n` (key, value) pairs, slices static. */
static void md_of(grpc_metadata_array *a, grpc_metadata *m, const char *const *kv, size_t n)
{
    memset(a, 0, sizeof(*a));
    for (size_t i = 0; i < n; i++) {
        m[i].key = grpc_slice_from_static_string(kv[2 * i]);
        m[i].value = grpc_slice_from_static_string(kv[2 * i + 1]);
    }
    a->metadata = m;
    a->count = n;
}

static enum cp_auth check(const struct sb_secret *s, const char *const *kv, size_t n)
{
    grpc_metadata_array a;
    grpc_metadata m[4];
    md_of(&a, m, kv, n);
    return cp_auth_check(s, &a);
}

static void test_cp_auth_check_cases(void **state)
{
    struct sb_secret *s = keys();
    const char *none[] = {"user-agent", "x"};
    assert_int_equal(check(s, none, 0), CP_AUTH_MISSING);
    assert_int_equal(check(s, none, 1), CP_AUTH_MISSING);
    const char *ok[] = {"user-agent", "x", "authorization", "Bearer " KEY};
    assert_int_equal(check(s, ok, 2), CP_AUTH_OK);
    const char *ok2[] = {"authorization", "bearer " KEY2};
    assert_int_equal(check(s, ok2, 1), CP_AUTH_OK);
    const char *wrong[] = {"authorization", "Bearer " KEY "x"};
    assert_int_equal(check(s, wrong, 1), CP_AUTH_INVALID);
    const char *basic[] = {"authorization", "Basic " KEY};
    assert_int_equal(check(s, basic, 1), CP_AUTH_INVALID);
    const char *bare[] = {"authorization", KEY};
    assert_int_equal(check(s, bare, 1), CP_AUTH_INVALID);
    const char *empty[] = {"authorization", "Bearer "};
    assert_int_equal(check(s, empty, 1), CP_AUTH_INVALID);
    /* Only the first authorization entry counts: a wrong one first is not rescued. */
    const char *two[] = {"authorization", "Bearer nope", "authorization", "Bearer " KEY};
    assert_int_equal(check(s, two, 2), CP_AUTH_INVALID);
    /* No keys configured: every call passes. */
    assert_int_equal(check(NULL, none, 0), CP_AUTH_OK);
    sb_secret_destroy(s);
}

static void test_cp_auth_md_sends_the_first_key(void **state)
{
    struct sb_secret *s = keys();
    grpc_metadata m;
    assert_int_equal(cp_auth_md(s, &m), 1);
    assert_int_equal(grpc_slice_str_cmp(m.key, "authorization"), 0);
    assert_int_equal(grpc_slice_str_cmp(m.value, "Bearer " KEY), 0);
    /* What we send is what we accept. */
    grpc_metadata_array a = {.count = 1, .capacity = 1, .metadata = &m};
    assert_int_equal(cp_auth_check(s, &a), CP_AUTH_OK);
    cp_auth_md_release(&m);
    assert_int_equal(cp_auth_md(NULL, &m), 0);
    cp_auth_md_release(&m);
    sb_secret_destroy(s);
}

int main(void)
{
    grpc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cp_auth_check_cases),
        cmocka_unit_test(test_cp_auth_md_sends_the_first_key),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    grpc_shutdown();
    return rc;
}
