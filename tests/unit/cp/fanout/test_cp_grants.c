/* Connection grants: copied from NodeLink with every bound checked again, and the per-stream
 * table (replace on refresh, remove on close, clear when the stream ends). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_grants.h"

typedef Switchboard__Internal__V1__Grants Grants;

static void test_copy(void **state)
{
    (void)state;
    char *ch[] = {"news", "private-*"};
    char *rooms[] = {"r1"};
    Grants g = SWITCHBOARD__INTERNAL__V1__GRANTS__INIT;
    g.info.data = (uint8_t *)"{\"name\":\"Alice\"}";
    g.info.len = strlen((char *)g.info.data);
    g.channels = ch;
    g.n_channels = 2;
    g.rooms = rooms;
    g.n_rooms = 1;
    g.expires_at = 1796008767000LL;
    struct cp_grants *out = NULL;
    char why[160];
    assert_int_equal(cp_grants_from_pb(&g, &out, why, sizeof(why)), SB_OK);
    assert_string_equal(out->info, "{\"name\":\"Alice\"}");
    assert_int_equal(out->n_channels, 2);
    assert_string_equal(out->channels[1], "private-*");
    assert_int_equal(out->n_rooms, 1);
    assert_string_equal(out->rooms[0], "r1");
    assert_int_equal(out->expires_at, 1796008767000LL);
    cp_grants_free(out);

    Grants empty = SWITCHBOARD__INTERNAL__V1__GRANTS__INIT;
    assert_int_equal(cp_grants_from_pb(&empty, &out, why, sizeof(why)), SB_OK);
    assert_null(out->info);
    assert_int_equal(out->n_channels + out->n_rooms, 0);
    cp_grants_free(out);
}

static void refused(Grants *g, const char *want)
{
    struct cp_grants *out = NULL;
    char why[160] = "";
    assert_int_equal(cp_grants_from_pb(g, &out, why, sizeof(why)), SB_EINVAL);
    assert_null(out);
    assert_non_null(strstr(why, want));
}

static void test_bounds(void **state)
{
    (void)state;
    Grants g = SWITCHBOARD__INTERNAL__V1__GRANTS__INIT;
    g.info.data = (uint8_t *)"[1,2]"; /* not an object */
    g.info.len = 5;
    refused(&g, "info");
    g.info.data = (uint8_t *)"{\"a\":1,\"a\":2}"; /* duplicate keys */
    g.info.len = strlen((char *)g.info.data);
    refused(&g, "info");
    char *big = malloc(CP_GRANTS_MAX_INFO + 16);
    memset(big, ' ', CP_GRANTS_MAX_INFO + 16);
    big[0] = '{';
    big[CP_GRANTS_MAX_INFO + 15] = '}';
    g.info.data = (uint8_t *)big;
    g.info.len = CP_GRANTS_MAX_INFO + 16;
    refused(&g, "info");
    free(big);
    g.info.len = 0;

    char *many[CP_GRANTS_MAX_LIST + 1];
    for (size_t i = 0; i <= CP_GRANTS_MAX_LIST; i++)
        many[i] = "c";
    g.channels = many;
    g.n_channels = CP_GRANTS_MAX_LIST + 1;
    refused(&g, "channels");
    g.n_channels = CP_GRANTS_MAX_LIST; /* at the bound: fine */
    struct cp_grants *out = NULL;
    char why[160];
    assert_int_equal(cp_grants_from_pb(&g, &out, why, sizeof(why)), SB_OK);
    cp_grants_free(out);
    g.n_channels = 0;

    char *bad[] = {"r1", ""};
    g.rooms = bad;
    g.n_rooms = 2;
    refused(&g, "rooms");
    char longer[CP_GRANTS_MAX_ENTRY + 2];
    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    bad[1] = longer;
    refused(&g, "rooms");
}

static struct cp_grants *one(const char *room)
{
    char *rooms[] = {(char *)room};
    Grants g = SWITCHBOARD__INTERNAL__V1__GRANTS__INIT;
    g.rooms = rooms;
    g.n_rooms = 1;
    struct cp_grants *out = NULL;
    char why[160];
    assert_int_equal(cp_grants_from_pb(&g, &out, why, sizeof(why)), SB_OK);
    return out;
}

static void test_table(void **state)
{
    (void)state;
    struct sb_map t = {0};
    assert_int_equal(cp_grants_put(&t, "c-1", one("a")), SB_OK);
    assert_int_equal(cp_grants_put(&t, "c-2", one("b")), SB_OK);
    assert_string_equal(cp_grants_get(&t, "c-1")->rooms[0], "a");
    /* a refresh replaces (the old copy is freed: ASan would report a leak) */
    assert_int_equal(cp_grants_put(&t, "c-1", one("c")), SB_OK);
    assert_string_equal(cp_grants_get(&t, "c-1")->rooms[0], "c");
    cp_grants_remove(&t, "c-1");
    assert_null(cp_grants_get(&t, "c-1"));
    cp_grants_remove(&t, "c-9"); /* unknown: ignored */
    assert_non_null(cp_grants_get(&t, "c-2"));
    cp_grants_clear(&t);
    assert_null(cp_grants_get(&t, "c-2"));
    assert_int_equal(sb_map_size(&t), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
