/* sb_map: the hash map both planes use (put, replace, get, remove, growth, iteration with
 * removal of the current entry, heap and embedded lifetimes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sb_map.h"

static void test_sb_map_basic(void **state)
{
    struct sb_map m;
    sb_map_init(&m);
    int a = 1, b = 2;
    assert_null(sb_map_get(&m, "x"));
    assert_null(sb_map_remove(&m, "x"));
    assert_int_equal(sb_map_put(&m, "x", &a), SB_OK);
    assert_ptr_equal(sb_map_get(&m, "x"), &a);
    assert_int_equal(sb_map_put(&m, "x", &b), SB_OK); /* replaces */
    assert_int_equal(sb_map_size(&m), 1);
    assert_ptr_equal(sb_map_get(&m, "x"), &b);
    assert_null(sb_map_get(&m, "y"));
    assert_ptr_equal(sb_map_remove(&m, "x"), &b);
    assert_int_equal(sb_map_size(&m), 0);
    sb_map_fini(&m);
    sb_map_fini(&m); /* fini leaves an empty map */
}

static void test_sb_map_grow_and_iterate(void **state)
{
    struct sb_map *m = sb_map_create();
    assert_non_null(m);
    enum { N = 1000 };
    static int vals[N];
    char key[16];
    for (int i = 0; i < N; i++) {
        vals[i] = i;
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(sb_map_put(m, key, &vals[i]), SB_OK);
    }
    assert_int_equal(sb_map_size(m), N);
    assert_true(m->nbuckets >= N);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_ptr_equal(sb_map_get(m, key), &vals[i]);
    }
    /* every entry once; removing the one just returned is allowed */
    static char seen[N];
    struct sb_map_iter it = {0};
    const char *k;
    void *v;
    size_t n = 0;
    while (sb_map_next(m, &it, &k, &v)) {
        int i = *(int *)v;
        assert_false(seen[i]);
        seen[i] = 1;
        snprintf(key, sizeof(key), "k%d", i);
        assert_string_equal(k, key);
        if (i % 2 == 0)
            assert_ptr_equal(sb_map_remove(m, k), v);
        n++;
    }
    assert_int_equal(n, N);
    assert_int_equal(sb_map_size(m), N / 2);
    struct sb_map_iter it2;
    sb_map_iter_init(m, &it2);
    struct sb_map_entry *e;
    n = 0;
    while ((e = sb_map_iter_next(m, &it2)) != NULL) {
        assert_int_equal(*(int *)e->value % 2, 1);
        n++;
    }
    assert_int_equal(n, N / 2);
    sb_map_destroy(m);
    sb_map_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sb_map_basic),
        cmocka_unit_test(test_sb_map_grow_and_iterate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
