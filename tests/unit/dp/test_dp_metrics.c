/* dp_metrics: the Prometheus text of the counters, and the refusal of a buffer too small. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dp_metrics.h"

static void test_dp_metrics_format_prometheus(void **state)
{
    struct dp_metrics m = {0};
    m.connections_ws = 3;
    m.frames_in_total = 42;
    m.link_up = 1;
    char out[8192];
    size_t n = dp_metrics_format(&m, out, sizeof(out));
    assert_true(n > 0);
    assert_non_null(strstr(out, "# TYPE switchboard_dp_frames_in_total counter\n"
                                "switchboard_dp_frames_in_total 42\n"));
    assert_non_null(strstr(out, "switchboard_dp_connections{transport=\"websocket\"} 3\n"));
    assert_non_null(strstr(out, "switchboard_dp_link_up 1\n"));
    assert_int_equal(dp_metrics_format(&m, out, 64), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dp_metrics_format_prometheus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
