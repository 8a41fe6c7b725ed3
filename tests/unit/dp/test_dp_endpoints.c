/* dp_endpoints: the --controlplane list, literals and names (lookups through a fake). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_endpoints.h"

static int fail_cp; /* the fake's "cp.example" lookup fails when set */

static enum sb_err fake_lookup(const char *host, char ***out, size_t *n)
{
    static const char *const cp[] = {"10.0.0.3", "10.0.0.1", "fd00::1", "10.0.0.2"};
    static const char *const local[] = {"::1", "127.0.0.1"};
    static const char *const v6[] = {"fd00::2", "fd00::1"};
    const char *const *src = NULL;
    size_t k = 0;
    if (strcmp(host, "cp.example") == 0 && !fail_cp) {
        src = cp;
        k = 4;
    } else if (strcmp(host, "localhost") == 0) {
        src = local;
        k = 2;
    } else if (strcmp(host, "v6only.example") == 0) {
        src = v6;
        k = 2;
    } else {
        return SB_EUNAVAIL;
    }
    char **v = calloc(k, sizeof(*v));
    for (size_t i = 0; i < k; i++)
        v[i] = strdup(src[i]);
    *out = v;
    *n = k;
    return SB_OK;
}

static void expect(struct dp_endpoints *e, const char *const *want, size_t n_want)
{
    char **v = NULL;
    size_t n = 0;
    assert_int_equal(dp_endpoints_resolve(e, &v, &n), SB_OK);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(v[i], want[i]);
    dp_endpoints_free_list(v, n);
}

static void test_dp_endpoints_literals_in_order(void **state)
{
    (void)state;
    enum sb_err err;
    struct dp_endpoints *e =
        dp_endpoints_parse(" 127.0.0.1:2, [::1]:3 ,127.0.0.1:1,127.0.0.1:2", fake_lookup, &err);
    assert_non_null(e);
    assert_false(dp_endpoints_has_names(e));
    const char *const want[] = {"127.0.0.1:2", "[::1]:3", "127.0.0.1:1"};
    expect(e, want, 3);
    dp_endpoints_destroy(e);
}

static void test_dp_endpoints_name_sorted_ipv4_kept_on_failure(void **state)
{
    (void)state;
    enum sb_err err;
    struct dp_endpoints *e = dp_endpoints_parse("cp.example:50051,127.0.0.9:7", fake_lookup, &err);
    assert_non_null(e);
    assert_true(dp_endpoints_has_names(e));
    const char *const want[] = {"10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051",
                                "127.0.0.9:7"};
    fail_cp = 0;
    expect(e, want, 4);
    fail_cp = 1; /* DNS hiccup: the last answer stands */
    expect(e, want, 4);
    fail_cp = 0;
    dp_endpoints_destroy(e);
}

static void test_dp_endpoints_localhost_is_one_replica(void **state)
{
    (void)state;
    enum sb_err err;
    struct dp_endpoints *e = dp_endpoints_parse("localhost:1,v6only.example:2", fake_lookup, &err);
    assert_non_null(e);
    const char *const want[] = {"127.0.0.1:1", "[fd00::1]:2", "[fd00::2]:2"};
    expect(e, want, 3);
    dp_endpoints_destroy(e);
}

static void test_dp_endpoints_unknown_name_gives_nothing(void **state)
{
    (void)state;
    enum sb_err err;
    struct dp_endpoints *e = dp_endpoints_parse("nowhere.example:1", fake_lookup, &err);
    assert_non_null(e);
    expect(e, NULL, 0);
    dp_endpoints_destroy(e);
}

static void test_dp_endpoints_bad_lists(void **state)
{
    (void)state;
    const char *bad[] = {"", " , ", "host", "host:", "host:x", ":80", "[::1:80", "h:70000", "h:0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum sb_err err = SB_OK;
        assert_null(dp_endpoints_parse(bad[i], fake_lookup, &err));
        assert_int_equal(err, SB_EINVAL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dp_endpoints_literals_in_order),
        cmocka_unit_test(test_dp_endpoints_name_sorted_ipv4_kept_on_failure),
        cmocka_unit_test(test_dp_endpoints_localhost_is_one_replica),
        cmocka_unit_test(test_dp_endpoints_unknown_name_gives_nothing),
        cmocka_unit_test(test_dp_endpoints_bad_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
